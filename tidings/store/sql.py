"""The SQL store: SQLite, PostgreSQL and MySQL/MariaDB through SQLAlchemy Core.

The write path is ``commit_batch``: a whole batch of sends and reads in one
transaction (``store.batch.WriteBatch``); the chat list and history are
single indexed queries (``store.rows``).

Membership changes lock the same conversation row, so a member added or
removed concurrently with a send either sees that message or does not,
never half of it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Insert,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.schema import Table

from tidings.chatlist import EntryChange, EntryState
from tidings.errors import ErrorCode, TidingsError, unavailable
from tidings.ids import (
    ConversationId,
    GroupId,
    UserId,
    group_conversation,
    private_conversation,
)
from tidings.models import ChatList, Conversation, Group, Message, ReplyTo, User, now_ms
from tidings.store import (
    AddMembers,
    ConversationHead,
    CreateGroup,
    GroupChange,
    GroupRequest,
    GroupRule,
    MemberPosition,
    Membership,
    Readers,
    RemoveMember,
    SearchPage,
    SearchPosition,
    Segment,
    SegmentRows,
    StoredMessage,
    WriteOutcome,
    WriteRequest,
)
from tidings.store.archive import SqlArchive
from tidings.store.batch import BatchResult, WriteBatch
from tidings.store.deployment import SqlDeployment
from tidings.store.engines import Engines, create_engines, lost_a_race
from tidings.store.files import SqlFiles
from tidings.store.group_changes import GroupChanger, load_group
from tidings.store.keyset import keys_params, where_keys
from tidings.store.loop_thread import LoopThread
from tidings.store.migrate import upgrade
from tidings.store.push import SqlPush
from tidings.store.rows import (
    CHAT_LIST,
    CHAT_LIST_MESSAGE,
    HISTORY_PAGES,
    MESSAGE_COLUMNS,
    NEWEST_FIRST,
    NO_END,
    OLDEST_FIRST,
    REPLY_SEQ,
    attachment_name,
    chat_list_page,
    entry_from_row,
    entry_states,
    message_from_row,
    reply_from_row,
    state_from_row,
    total_unread,
    user_from_row,
    wanted_replies,
)
from tidings.store.schema import (
    ADMIN,
    conversations,
    groups,
    members,
    mentions,
    messages,
    sessions,
    uncounted,
    users,
)
from tidings.store.search import (
    COUNTABLE_KINDS,
    MAX_TERMS,
    PG_TAILS,
    TERMS_BEGINNING,
    indexable,
    indexed_search_params,
    pg_indexed_search_params,
    phrase,
    search_params,
    terms_params,
)
from tidings.store.search_index import ATTACHED_AS, SqliteSearchIndex
from tidings.store.search_pg import PgSearchIndex
from tidings.store.search_pg import usable as pg_search_usable

log = logging.getLogger(__name__)

# Ids per IN (...) list: well under every driver's bound on parameters.
_IN_CHUNK = 500
# pg_trgm's LIKE needs 3 characters to use its index: shorter queries scan.
PG_MIN_INDEXED_CHARS = 3


def _reason(exc: BaseException) -> str:
    """A database error in one line, without statement parameters."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {str(orig or exc).splitlines()[0][:200]}"


_BATCH_ATTEMPTS = 3


def _is_race(exc: BaseException) -> bool:
    """A unique violation or deadlock between concurrent transactions: worth one more run."""
    return isinstance(exc, IntegrityError) or lost_a_race(exc)


class SqlStore:
    """The store on a SQL database. Build it with ``SqlStore.from_url``."""

    def __init__(
        self, engines: Engines, *, pg_partitions: int = 16, search_index: bool = True
    ) -> None:
        self._engines = engines
        self._pg_partitions = pg_partitions
        self._index_search = search_index
        self._writer = engines.writer
        self._reader = engines.reader
        self._dialect = engines.dialect
        self._search_index: SqliteSearchIndex | PgSearchIndex | None = None
        # Issue 23 §3: the blobs of archived history; None until the blob store
        # opens (app.py), and then history and replies read through it.
        self._segments: SegmentRows | None = None
        self._archive = SqlArchive(engines.writer, engines.reader)
        # Private conversations known to exist: never deleted, so never stale.
        self._known_private: set[str] = set()
        self._batch_engine = engines.batch
        # PostgreSQL's batches run on a connection of their own, not pinged
        # (engines.py); its completed statements are counted so a batch that
        # met a dead connection knows whether it may run again.
        self._batch_writer = engines.batch_writer or engines.writer
        self._counting_batches = engines.batch_writer is not None
        self._batch_statements = 0
        if engines.batch_writer is not None:
            event.listen(
                engines.batch_writer.sync_engine,
                "after_cursor_execute",
                self._count_batch_statement,
            )
        # ... and on an event loop of their own (store/loop_thread.py says why).
        self._batch_loop = (
            LoopThread("tidings-batch-pg") if engines.batch_writer is not None else None
        )
        # SQLite's batches: one thread, so they run one at a time and in order.
        self._batch_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="tidings-batch")
            if engines.batch is not None
            else None
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        pg_partitions: int = 16,
        search_index: bool = True,
    ) -> SqlStore:
        engines = create_engines(
            url, sqlite_synchronous=sqlite_synchronous, search_index=search_index
        )
        return cls(engines, pg_partitions=pg_partitions, search_index=search_index)

    @property
    def dialect(self) -> str:
        return self._dialect

    async def open(self) -> None:
        try:
            await upgrade(self._writer, pg_partitions=self._pg_partitions)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable(f"cannot open the database: {_reason(exc)}") from exc
        if self._engines.checkpointer is not None:
            self._engines.checkpointer.start()
        sqlite_index = self._engines.search_index
        if sqlite_index is not None:
            try:
                await asyncio.to_thread(sqlite_index.open)
            except sqlite3.Error as exc:
                raise unavailable(f"cannot open the search index: {exc}") from exc
            sqlite_index.start()
            self._search_index = sqlite_index
        elif self._dialect == "postgresql" and self._index_search:
            async with self._writer.connect() as conn:
                trigram = await pg_search_usable(conn)
            if trigram:
                self._search_index = PgSearchIndex(self._writer)
                self._search_index.start()
            else:
                log.warning("no pg_trgm (migration 0009 could not create it): search scans")

    @property
    def search_index(self) -> SqliteSearchIndex | PgSearchIndex | None:
        """The search index (None on MariaDB, or PostgreSQL without pg_trgm):
        woken after each batch."""
        return self._search_index

    def deployment(self) -> SqlDeployment:
        return SqlDeployment(self._writer)

    def archive(self) -> SqlArchive:
        """The archive's manifest and moves (store/archive.py)."""
        return self._archive

    def use_archive(self, segments: SegmentRows) -> None:
        """Read archived history through ``segments`` from now on."""
        self._segments = segments

    def files(self) -> SqlFiles:
        return SqlFiles(self._writer, self._insert_ignore)

    def push(self) -> SqlPush:
        return SqlPush(self._writer, self._reader)

    async def close(self) -> None:
        if isinstance(self._search_index, PgSearchIndex):
            await self._search_index.close()  # SQLite's closes with its engines
        if self._batch_thread is not None:
            self._batch_thread.shutdown(wait=True)
        if self._batch_loop is not None:
            # Its connection belongs to its loop: closed there, then the loop stops.
            batch_loop, self._batch_loop = self._batch_loop, None
            await batch_loop.run(self._batch_writer.dispose())
            batch_loop.stop()
        await self._engines.dispose()

    async def ping(self) -> None:
        try:
            await self._read(select(1))
        except TidingsError as exc:
            # Readiness shows this message: say what failed, not what to do.
            raise unavailable("the database does not answer") from exc

    # -- the write path ---------------------------------------------------

    async def commit_batch(
        self, requests: Sequence[WriteRequest], separator_gap_ms: int
    ) -> list[WriteOutcome]:
        # Another node may store the same (sender, client_msg_id) between this
        # batch's look-up and its insert (a unique violation), or two nodes'
        # batches may deadlock. Run again: the key is then seen as a repeat and
        # answered with the original, and the rest of the batch is not failed.
        attempts = _BATCH_ATTEMPTS
        reconnected = False
        while True:
            attempts -= 1
            batch = WriteBatch(self._insert_ignore, self._known_private, requests, separator_gap_ms)
            attempt = _Attempt()
            try:
                if self._batch_thread is not None:
                    result = await asyncio.get_running_loop().run_in_executor(
                        self._batch_thread, self._run_in_batch_thread, batch
                    )
                elif self._batch_loop is not None:
                    result = await self._batch_loop.run(self._run_on_batch_writer(batch, attempt))
                else:
                    result = await self._run_on_batch_writer(batch, attempt)
                break
            except (SQLAlchemyError, OSError) as exc:
                if attempts > 0 and _is_race(exc):
                    log.info("a write batch met a concurrent one; running it again")
                    continue
                if not reconnected and attempt.died_before_any_statement:
                    reconnected = True
                    log.info("the batch connection was closed; running the batch on a new one")
                    continue
                log.warning("a write batch failed on the database: %s", _reason(exc))
                raise unavailable() from exc
        self._known_private.update(batch.created_private)
        outcomes = batch.in_order(requests, *result)
        if self.search_index is not None:
            self.search_index.wake(
                {o.message.conversation for o in outcomes if isinstance(o, StoredMessage)}
            )
        return outcomes

    async def _run_on_batch_writer(self, batch: WriteBatch, attempt: _Attempt) -> BatchResult:
        async with self._batch_writer.begin() as conn:
            return await conn.run_sync(self._run_batch, batch, attempt)

    def _run_batch(self, conn: Connection, batch: WriteBatch, attempt: _Attempt) -> BatchResult:
        start = self._batch_statements
        try:
            return batch.run(conn)
        except DBAPIError as exc:
            # Decided here, while this batch holds the batch engine's one
            # connection: the statements counted since ``start`` are its own.
            attempt.died_before_any_statement = (
                self._counting_batches
                and exc.connection_invalidated
                and self._batch_statements == start
            )
            raise

    def _count_batch_statement(self, *_args: Any) -> None:
        self._batch_statements += 1

    def _run_in_batch_thread(self, batch: WriteBatch) -> BatchResult:
        assert self._batch_engine is not None
        with self._batch_engine.begin() as conn:
            return batch.run(conn)

    def _insert_ignore(self, table: Table) -> Insert:
        if self._dialect == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing()
        if self._dialect == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        return mysql_insert(table).prefix_with("IGNORE")

    # -- users and sessions -------------------------------------------------

    async def create_user(
        self, username: str, display_name: str, password_hash: str | None
    ) -> User:
        try:
            async with self._writer.begin() as conn:
                result = await conn.execute(
                    insert(users).values(
                        username=username,
                        username_key=username.lower(),
                        display_name=display_name,
                        password_hash=password_hash,
                        created_at=now_ms(),
                    )
                )
                new_id = result.inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as exc:
            raise TidingsError(
                ErrorCode.USERNAME_TAKEN, f"the username {username!r} is taken"
            ) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        return User(id=int(new_id), username=username, display_name=display_name)

    async def user(self, user_id: UserId) -> User | None:
        found = await self.users([user_id])
        return found.get(user_id)

    async def users(self, user_ids: Sequence[UserId]) -> dict[UserId, User]:
        if not user_ids:
            return {}
        query = select(users.c.id, users.c.username, users.c.display_name).where(
            users.c.id.in_(list(set(user_ids)))
        )
        rows = await self._read(query)
        return {UserId(row.id): user_from_row(row) for row in rows}

    async def credentials(self, username: str) -> tuple[User, str | None] | None:
        query = select(
            users.c.id, users.c.username, users.c.display_name, users.c.password_hash
        ).where(users.c.username_key == username.lower())
        rows = await self._read(query)
        if not rows:
            return None
        return user_from_row(rows[0]), rows[0].password_hash

    async def create_session(self, token_hash: str, user_id: UserId) -> None:
        await self._write(
            insert(sessions).values(token_hash=token_hash, user_id=user_id, created_at=now_ms())
        )

    async def delete_session(self, token_hash: str) -> None:
        await self._write(delete(sessions).where(sessions.c.token_hash == token_hash))

    async def session_user(self, token_hash: str) -> UserId | None:
        rows = await self._read(
            select(sessions.c.user_id).where(sessions.c.token_hash == token_hash)
        )
        return UserId(rows[0].user_id) if rows else None

    async def list_users(self, after_id: int, limit: int) -> list[User]:
        query = (
            select(users.c.id, users.c.username, users.c.display_name)
            .where(users.c.id > after_id)
            .order_by(users.c.id)
            .limit(limit)
        )
        return [user_from_row(row) for row in await self._read(query)]

    async def set_display_name(self, user_id: UserId, display_name: str) -> User | None:
        async with self._write_transaction() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(display_name=display_name)
            )
        return await self.user(user_id)

    async def delete_sessions_of(self, user_id: UserId) -> list[str]:
        """Revoke every token of a user; the hashes of those revoked."""
        async with self._write_transaction() as conn:
            rows = await conn.execute(
                select(sessions.c.token_hash).where(sessions.c.user_id == user_id)
            )
            hashes = [row[0] for row in rows]
            await conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return hashes

    async def password_hash(self, user_id: UserId) -> str | None:
        rows = await self._read(select(users.c.password_hash).where(users.c.id == user_id))
        return rows[0].password_hash if rows else None

    async def set_password_hash(
        self, user_id: UserId, password_hash: str, *, keep_session: str | None = None
    ) -> list[str]:
        others = sessions.c.user_id == user_id
        if keep_session is not None:
            others = others & (sessions.c.token_hash != keep_session)
        async with self._write_transaction() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )
            rows = await conn.execute(select(sessions.c.token_hash).where(others))
            hashes = [row[0] for row in rows]
            await conn.execute(delete(sessions).where(others))
        return hashes

    async def private_peers(self, user_id: UserId) -> list[UserId]:
        rows = await self._read(
            select(members.c.peer_id).where(
                members.c.user_id == user_id, members.c.peer_id.is_not(None)
            )
        )
        return [UserId(row.peer_id) for row in rows]

    async def peer_entries(
        self, user_id: UserId, peers: Sequence[UserId]
    ) -> dict[UserId, Conversation]:
        ids = sorted({private_conversation(user_id, peer) for peer in peers if peer != user_id})
        found: dict[UserId, Conversation] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            query = CHAT_LIST.add_columns(members.c.user_id.label("member_id")).where(
                members.c.conversation_id.in_(ids[start : start + _IN_CHUNK]),
                members.c.user_id != user_id,
            )
            rows = await self._read(query)
            replies = await self._replies_of(rows, CHAT_LIST_MESSAGE)
            for row in rows:
                found[UserId(row.member_id)] = entry_from_row(row, replies)
        return found

    # -- groups -------------------------------------------------------------

    async def change_group(self, request: GroupRequest, gap_ms: int = 0) -> GroupChange:
        async with self._write_transaction() as conn:
            return await GroupChanger(conn, request, now_ms(), gap_ms).run()

    # Shorthands for a change made by the business backend (tests, tools).
    async def create_group(
        self, owner: UserId, name: str, member_ids: Sequence[UserId]
    ) -> GroupChange:
        return await self.change_group(
            GroupRequest(None, owner, CreateGroup(owner, name, tuple(member_ids)))
        )

    async def add_members(
        self, gid: GroupId, user_ids: Sequence[UserId], rule: GroupRule
    ) -> GroupChange:
        return await self.change_group(GroupRequest(gid, None, AddMembers(tuple(user_ids)), rule))

    async def remove_member(self, gid: GroupId, user_id: UserId, rule: GroupRule) -> GroupChange:
        return await self.change_group(GroupRequest(gid, None, RemoveMember(user_id), rule))

    async def group(self, gid: GroupId) -> Group | None:
        async with self._read_transaction() as conn:
            return await load_group(conn, gid, now_ms())

    async def is_admin(self, group_id: GroupId, user: UserId) -> bool:
        rows = await self._read(
            select(members.c.role).where(
                members.c.conversation_id == group_conversation(group_id),
                members.c.user_id == user,
            )
        )
        return bool(rows) and rows[0].role == ADMIN

    # -- reads --------------------------------------------------------------

    async def membership(self, conversation: ConversationId, user: UserId) -> Membership | None:
        rows = await self._read(
            select(members.c.joined_seq, members.c.read_seq).where(
                members.c.conversation_id == conversation, members.c.user_id == user
            )
        )
        if not rows:
            return None
        return Membership(joined_seq=rows[0].joined_seq, read_seq=rows[0].read_seq)

    async def joined_seqs(self, conversation: ConversationId) -> dict[UserId, int]:
        rows = await self._read(
            select(members.c.user_id, members.c.joined_seq).where(
                members.c.conversation_id == conversation
            )
        )
        return {UserId(row.user_id): row.joined_seq for row in rows}

    async def readers(self, conversation: ConversationId, seq: int) -> Readers | None:
        found = await self._live_readers(conversation, seq)
        if found is None and self._segments is not None:
            archived = await self._archived_readers(self._segments, conversation, seq)
            if archived is not None:
                return archived
            # Neither: a restore committed between the reads, or no such message.
            return await self._live_readers(conversation, seq)
        return found

    async def _archived_readers(
        self, segments: SegmentRows, conversation: ConversationId, seq: int
    ) -> Readers | None:
        """``readers`` of an archived message: its sender from the segment, the rest from SQL."""
        archived = await self._archived_at(segments, [(conversation, seq)])
        if not archived:
            return None
        owner = await self._read(
            select(groups.c.owner_id)
            .select_from(conversations.join(groups, groups.c.id == conversations.c.group_id))
            .where(conversations.c.id == conversation)
        )
        rows = await self._read(
            select(members.c.user_id, members.c.read_seq).where(
                members.c.conversation_id == conversation, members.c.joined_seq < seq
            )
        )
        ordered = sorted((r.user_id, r.read_seq) for r in rows)
        return Readers(
            UserId(archived[0][2]),
            UserId(owner[0].owner_id) if owner else None,
            [UserId(u) for u, at in ordered if at >= seq],
            [UserId(u) for u, at in ordered if at < seq],
        )

    async def _live_readers(self, conversation: ConversationId, seq: int) -> Readers | None:
        params = {"c": conversation, "s": seq}
        if self._dialect == "postgresql":
            # One row of two sorted arrays: a group of 5,000 is 5,000 Row
            # objects less (they were most of the time: docs/benchmarks.md).
            found = (await self._read(_READERS_PG, params))[0]
            if found.sender_id is None:
                return None
            return Readers(
                UserId(found.sender_id),
                None if found.owner_id is None else UserId(found.owner_id),
                list(found.read_ids or ()),
                list(found.unread_ids or ()),
            )
        rows = await self._read(_READERS, params)
        if not rows:
            return None
        first = rows[0]
        members_ = sorted((r.user_id, r.read_seq) for r in rows if r.user_id is not None)
        return Readers(
            UserId(first.sender_id),
            None if first.owner_id is None else UserId(first.owner_id),
            [UserId(u) for u, at in members_ if at >= seq],
            [UserId(u) for u, at in members_ if at < seq],
        )

    async def history(
        self,
        conversation: ConversationId,
        member: UserId | None,
        *,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> list[Message]:
        query, params = _history_query(conversation, member, before, after, limit)
        rows: list[Any] = list(await self._read(query, params))
        if after is None:
            rows.reverse()
        if self._segments is not None and _may_reach_archive(rows, before, after, limit):
            rows = await self._through_archive(
                self._segments, conversation, member, before, after, limit
            )
        replies = await self._replies_of(rows)
        return [_with_reply(row, replies) for row in rows]

    async def _through_archive(
        self,
        segments: SegmentRows,
        conversation: ConversationId,
        member: UserId | None,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> list[Any]:
        """A history page that may reach below the live rows, into archived segments.

        The live rows, the member's join and the segments are read in one
        snapshot, so a move committed meanwhile neither repeats nor drops a
        message; a restore that deleted a segment's blob since is read again.
        """
        for attempt in (1, 2):
            query, params = _history_query(conversation, member, before, after, limit)
            try:
                async with self._read_snapshot() as conn:
                    live = list((await conn.execute(query, params)).all())
                    floor = 0
                    if member is not None:
                        joined = (
                            await conn.execute(
                                select(members.c.joined_seq).where(
                                    members.c.conversation_id == conversation,
                                    members.c.user_id == member,
                                )
                            )
                        ).first()
                        if joined is None:
                            return []
                        floor = int(joined.joined_seq)
                    if after is None:
                        live.reverse()
                        low, high = floor, live[0][1] if live else (before or NO_END)
                        if before is not None:
                            high = min(high, before)
                    else:
                        low, high = max(after, floor), live[0][1] if live else NO_END
                    found = await self._archive.overlapping(conn, conversation, low, high)
            except (SQLAlchemyError, OSError) as exc:
                raise unavailable("storage is unavailable; try again") from exc
            try:
                archived = await _archived_rows(segments, found, low, high, limit, after is None)
            except LookupError:
                if attempt == 2:
                    raise unavailable("archived history is being restored; try again") from None
                continue
            if after is None:
                return (archived + live)[-limit:]
            return (archived + live)[:limit]
        raise AssertionError("unreachable")

    def _read_snapshot(self) -> Any:
        """A read transaction whose statements all see one committed state."""
        engine = self._engines.snapshot
        if self._dialect in ("postgresql", "mysql"):
            return engine.execution_options(isolation_level="REPEATABLE READ").begin()
        return engine.begin()

    async def search_messages(
        self,
        user: UserId,
        q: str,
        *,
        conversation: ConversationId | None,
        before: SearchPosition | None,
        limit: int,
    ) -> SearchPage:
        # One row more than the page: whether there is a next page, in the same read.
        window = _SearchWindow(user, q, conversation, before, limit + 1)
        for attempt in (1, 2):
            rows, found = await self._search_live(window)
            if self._segments is None or not found:
                break
            try:
                rows = await _with_archived(self._segments, window, rows, found)
                break
            except LookupError:
                # A restore deleted a segment read in the snapshot after it:
                # its rows are live now, which the snapshot did not see.
                if attempt == 2:
                    raise unavailable("archived history is being restored; try again") from None
        page, more = rows[:limit], len(rows) > limit
        replies = await self._replies_of(page)
        last: Any = page[-1] if page else None
        after = None
        if more and last is not None:
            after = SearchPosition(last[SENT_AT], ConversationId(last[0]), last[1])
        return SearchPage([_with_reply(row, replies) for row in page], after)

    async def _search_live(
        self, window: _SearchWindow
    ) -> tuple[Sequence[Any], list[tuple[Segment, int]]]:
        """The live results of the page and, with an archive, the segments that
        may hold more, both read in one snapshot: a move or a restore committed
        meanwhile neither repeats nor drops a message."""
        index = self._search_index
        folded = window.q.lower()
        if isinstance(index, SqliteSearchIndex) and indexable(folded):
            return await self._search_indexed(window)
        if isinstance(index, PgSearchIndex) and len(folded) >= PG_MIN_INDEXED_CHARS:
            return await self._search_pg(window)
        query, params = search_params(
            self._dialect, window.user, window.q, window.conversation, window.before, window.limit
        )
        if self._segments is None:
            return await self._read(query, params), []
        try:
            async with self._read_snapshot() as conn:
                rows = list((await conn.execute(query, params)).all())
                return rows, await self._searchable(conn, window, rows)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _searchable(
        self, conn: AsyncConnection, window: _SearchWindow, live: Sequence[Any]
    ) -> list[tuple[Segment, int]]:
        """The segments that can hold a result of this page: the user's
        conversations', after its join, sent no later than the cursor, and,
        when the live rows fill the page, no earlier than its last one."""
        if self._segments is None:
            return []
        before = window.before
        return await self._archive.searchable(
            conn,
            window.user,
            window.conversation,
            not_after=None if before is None else before.sent_at,
            not_before=live[-1][SENT_AT] if len(live) >= window.limit else None,
        )

    async def chat_list(self, user: UserId, limit: int, *, with_hidden: bool = False) -> ChatList:
        rows = await self._read(chat_list_page(user, limit, with_hidden=with_hidden))
        replies = await self._replies_of(rows, CHAT_LIST_MESSAGE)
        entries = [entry_from_row(row, replies) for row in rows]
        if rows:
            total = int(rows[0].total_unread)
        else:  # nothing listed; hidden entries may still count
            total = int((await self._read(total_unread(user)))[0].total)
        return ChatList(conversations=entries, total_unread=total)

    async def entry_states(self, user: UserId) -> dict[ConversationId, EntryState]:
        rows = await self._read(entry_states(user))
        return {ConversationId(row.conversation_id): state_from_row(row) for row in rows}

    async def update_entry(
        self, user: UserId, conversation: ConversationId, change: EntryChange
    ) -> bool:
        values: dict[str, Any] = {}
        for name in ("pinned", "muted", "marked_unread"):
            if getattr(change, name) is not None:
                values[name] = getattr(change, name)
        if change.hidden is not None:
            values["hidden_seq"] = (
                select(conversations.c.last_seq)
                .where(conversations.c.id == conversation)
                .scalar_subquery()
                if change.hidden
                else None
            )
        if change.set_draft:
            values["draft"] = change.draft or None
            values["draft_at"] = change.at if change.draft else None
        mine = and_(members.c.conversation_id == conversation, members.c.user_id == user)
        if not values:
            return bool(await self._read(select(members.c.user_id).where(mine)))
        async with self._write_transaction() as conn:
            result = await conn.execute(update(members).where(mine).values(values))
        # MySQL counts matched rows here too: SQLAlchemy connects with FOUND_ROWS.
        return bool(result.rowcount)

    async def chat_entry(self, user: UserId, conversation: ConversationId) -> Conversation | None:
        query = CHAT_LIST.where(
            members.c.user_id == user, members.c.conversation_id == conversation
        )
        rows = await self._read(query)
        if not rows:
            return None
        return entry_from_row(rows[0], await self._replies_of(rows, CHAT_LIST_MESSAGE))

    async def replies(
        self, positions: Sequence[tuple[ConversationId, int]]
    ) -> dict[tuple[ConversationId, int], ReplyTo]:
        if not positions:
            return {}
        wanted = set(positions)
        found = await self._live_at(wanted)
        if self._segments is not None and len(found) < len(wanted):
            missing = wanted - {(r[0], r[1]) for r in found}
            archived = await self._archived_at(self._segments, list(missing))
            found += archived
            # Neither live nor archived: a restore committed between the two
            # reads (its rows go live before its manifest row goes), or there
            # is no such message. One more live read tells which.
            missing -= {(r[0], r[1]) for r in archived}
            if missing:
                found += await self._live_at(missing)
        return {(ConversationId(r[0]), r[1]): reply_from_row(r) for r in found}

    async def _live_at(self, positions: set[tuple[ConversationId, int]]) -> list[tuple[Any, ...]]:
        rows = await self._read(
            _messages_at_keys(self._dialect), keys_params(self._dialect, sorted(positions))
        )
        return [tuple(r) for r in rows]

    async def _archived_at(
        self, segments: SegmentRows, positions: Sequence[tuple[ConversationId, int]]
    ) -> list[tuple[Any, ...]]:
        """The rows at these positions that are archived (the others are gone)."""
        held = await self._archive.holding(positions)
        by_segment: dict[Segment, set[int]] = {}
        for (_, seq), segment in held.items():
            by_segment.setdefault(segment, set()).add(seq)
        rows: list[tuple[Any, ...]] = []
        for segment, seqs in by_segment.items():
            try:
                found = await segments.rows(segment, min(seqs) - 1, max(seqs) + 1)
            except LookupError:
                continue  # restored meanwhile: the caller reads its rows live again
            rows += [row for row in found if row[1] in seqs]
        return rows

    async def _replies_of(
        self, rows: Sequence[Any], offset: int = 0
    ) -> dict[tuple[ConversationId, int], ReplyTo]:
        """What the message rows (at ``offset`` in each row) quote, read in one query."""
        wanted = wanted_replies(rows, offset)
        if not wanted:
            return {}
        return await self.replies([(ConversationId(c), seq) for c, seq in wanted])

    async def member_positions(self, user: UserId) -> list[MemberPosition]:
        rows = await self._read(
            select(
                members.c.conversation_id,
                members.c.read_seq,
                members.c.joined_seq,
                members.c.joined_at,
            ).where(members.c.user_id == user)
        )
        return [
            MemberPosition(ConversationId(r.conversation_id), r.read_seq, r.joined_seq, r.joined_at)
            for r in rows
        ]

    async def conversation_heads(
        self, conversation_ids: Sequence[ConversationId]
    ) -> list[ConversationHead]:
        heads: list[ConversationHead] = []
        wanted = list(set(conversation_ids))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            query = (
                select(
                    conversations.c.id,
                    conversations.c.last_seq,
                    conversations.c.last_sent_at,
                    conversations.c.shown_seq,
                    groups.c.name.label("group_name"),
                    *MESSAGE_COLUMNS,
                )
                .select_from(
                    conversations.outerjoin(
                        messages,
                        (messages.c.conversation_id == conversations.c.id)
                        & (messages.c.seq == conversations.c.shown_seq),
                    ).outerjoin(groups, groups.c.id == conversations.c.group_id)
                )
                .where(conversations.c.id.in_(chunk))
            )
            rows = await self._read(query)
            replies = await self._replies_of(rows, 5)
            # Below every member's read position nothing counts for anyone.
            lowest = (
                select(func.min(members.c.read_seq))
                .where(members.c.conversation_id == uncounted.c.conversation_id)
                .scalar_subquery()
            )
            quiet: dict[str, list[int]] = {}
            for row in await self._read(
                select(uncounted.c.conversation_id, uncounted.c.seq).where(
                    uncounted.c.conversation_id.in_(chunk), uncounted.c.seq > lowest
                )
            ):
                quiet.setdefault(row.conversation_id, []).append(row.seq)
            lowest_for_mentions = (
                select(func.min(members.c.read_seq))
                .where(members.c.conversation_id == mentions.c.conversation_id)
                .scalar_subquery()
            )
            mentioned: dict[str, list[tuple[int, int]]] = {}
            for row in await self._read(
                select(mentions.c.conversation_id, mentions.c.seq, mentions.c.user_id).where(
                    mentions.c.conversation_id.in_(chunk), mentions.c.seq > lowest_for_mentions
                )
            ):
                mentioned.setdefault(row.conversation_id, []).append((row.seq, row.user_id))
            for row in rows:
                values = tuple(row)
                last = _with_reply(values[5:], replies) if row.sender_id is not None else None
                heads.append(
                    ConversationHead(
                        ConversationId(row.id),
                        row.last_seq,
                        row.last_sent_at,
                        last,
                        shown_seq=row.shown_seq,
                        uncounted=tuple(quiet.get(row.id, ())),
                        mentions=tuple(mentioned.get(row.id, ())),
                        group_name=row.group_name,
                    )
                )
        return heads

    async def read_seqs(
        self, pairs: Sequence[tuple[ConversationId, UserId]]
    ) -> dict[tuple[ConversationId, UserId], int]:
        if not pairs:
            return {}
        rows = await self._read(
            _read_positions(self._dialect), keys_params(self._dialect, list(set(pairs)))
        )
        # where_keys returns exactly the pairs asked for, no other combination.
        return {(ConversationId(r.conversation_id), UserId(r.user_id)): r.read_seq for r in rows}

    # -- plumbing -----------------------------------------------------------

    async def _read(self, query: Any, params: dict[str, Any] | None = None) -> list[Row[Any]]:
        try:
            try:
                return await self._read_once(query, params)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            # The reader's pool does not ping (see engines.py): a connection
            # the database closed fails once, which discards the pool, and
            # the read runs again on a new connection.
            return await self._read_once(query, params)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _read_once(self, query: Any, params: dict[str, Any] | None) -> list[Row[Any]]:
        async with self._reader.connect() as conn:
            result = await conn.execute(query, params)
            return list(result.all())

    async def _search_pg(
        self, window: _SearchWindow
    ) -> tuple[list[Row[Any]], list[tuple[Segment, int]]]:
        """PostgreSQL's indexed search: the conversations with a tail, then the
        query, then the segments, in one REPEATABLE READ snapshot
        (store/search.py, PG_TAILS)."""
        query, params = pg_indexed_search_params(
            window.user, window.q, window.conversation, window.before, window.limit
        )
        try:
            async with self._writer.connect() as conn:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    tails = await conn.execute(text(PG_TAILS), {"user": params["user"]})
                    params["tails"] = [str(row[0]) for row in tails]
                    rows = list((await conn.execute(query, params)).all())
                    return rows, await self._searchable(conn, window, rows)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _search_indexed(
        self, window: _SearchWindow
    ) -> tuple[list[Row[Any]], list[tuple[Segment, int]]]:
        """A search through SQLite's index file: the index's snapshot first.

        In one read transaction each database's WAL snapshot is taken at its
        first read. Taken in this order, ``messages`` is read at or after the
        state the index reflects, so every edit or recall the index has not
        seen has a notice above the watermark, where the search looks
        (store/search.py). The segments are read in the same transaction.
        """
        user, q, conversation, before, limit = window
        folded = q.lower()
        try:
            async with self._reader.connect() as conn:
                if len(folded) >= 3:
                    await conn.exec_driver_sql(f"SELECT 1 FROM {ATTACHED_AS}.watermarks LIMIT 1")
                    match: str | None = phrase(folded)
                else:
                    found = await conn.execute(text(TERMS_BEGINNING), terms_params(folded))
                    terms = [str(term) for term in found.scalars()]
                    if len(terms) > MAX_TERMS:
                        match = None  # the scan costs less than their OR
                    else:
                        # No term: a 2-character phrase, which matches no row.
                        match = " OR ".join(phrase(term) for term in terms) or phrase(folded)
                if match is None:
                    query, params = search_params("sqlite", user, q, conversation, before, limit)
                else:
                    query, params = indexed_search_params(
                        user, q, match, conversation, before, limit
                    )
                rows = list((await conn.execute(query, params)).all())
                return rows, await self._searchable(conn, window, rows)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _write(self, statement: Any) -> None:
        async with self._write_transaction() as conn:
            await conn.execute(statement)

    def _write_transaction(self) -> _Transaction:
        return _Transaction(self._writer.begin())

    def _read_transaction(self) -> _Transaction:
        return _Transaction(self._engines.snapshot.begin())


@dataclass(slots=True)
class _Attempt:
    """One run of a write batch on PostgreSQL's batch engine.

    ``died_before_any_statement``: the batch's connection turned out dead
    (SQLAlchemy invalidated it) before any statement of the batch completed.
    Running it again cannot store anything twice: its first statement
    failed, so its COMMIT, sent only after its last statement, was never
    sent, and PostgreSQL rolls back a transaction whose connection is gone.
    A failure later in the batch or at COMMIT (which may have reached the
    server) leaves it False: the writes answer ``unavailable`` and a client
    resends with its client_msg_id.
    """

    died_before_any_statement: bool = False


class _Transaction:
    """``engine.begin()`` that turns a database failure into ``unavailable``."""

    def __init__(self, context: Any) -> None:
        self._context = context

    async def __aenter__(self) -> AsyncConnection:
        try:
            conn: AsyncConnection = await self._context.__aenter__()
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        return conn

    async def __aexit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            await self._context.__aexit__(kind, value, traceback)
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        if isinstance(value, (SQLAlchemyError, OSError)):
            raise unavailable("storage is unavailable; try again") from value


def _with_reply(row: Any, replies: dict[tuple[ConversationId, int], ReplyTo]) -> Message:
    reply_seq = row[REPLY_SEQ]
    reply = None if reply_seq is None else replies.get((row[0], reply_seq))
    return message_from_row(row, reply)


# A message's sender and group owner, and every current member who joined
# before it with its read position: one row per such member (members by the
# leading columns of their primary key), or one row with no member.
_READERS = (
    select(
        messages.c.sender_id,
        groups.c.owner_id,
        members.c.user_id,
        members.c.read_seq,
    )
    .select_from(
        messages.join(conversations, conversations.c.id == messages.c.conversation_id)
        .outerjoin(groups, groups.c.id == conversations.c.group_id)
        .outerjoin(
            members,
            and_(
                members.c.conversation_id == messages.c.conversation_id,
                members.c.joined_seq < messages.c.seq,
            ),
        )
    )
    .where(messages.c.conversation_id == bindparam("c"), messages.c.seq == bindparam("s"))
)


@functools.cache
def _readers_pg() -> Select[Any]:
    """``_READERS`` on PostgreSQL as one row: the sender, the owner, and the
    members who joined before the message as two sorted arrays."""
    seq: BindParameter[int] = bindparam("s")
    mine = and_(members.c.conversation_id == bindparam("c"), members.c.joined_seq < seq)
    ordered = aggregate_order_by(members.c.user_id, members.c.user_id)
    message = (
        select(messages.c.sender_id)
        .where(messages.c.conversation_id == bindparam("c"), messages.c.seq == seq)
        .scalar_subquery()
    )
    owner = (
        select(groups.c.owner_id)
        .select_from(conversations.join(groups, groups.c.id == conversations.c.group_id))
        .where(conversations.c.id == bindparam("c"))
        .scalar_subquery()
    )
    return select(
        message.label("sender_id"),
        owner.label("owner_id"),
        select(func.array_agg(ordered).filter(members.c.read_seq >= seq))
        .where(mine)
        .scalar_subquery()
        .label("read_ids"),
        select(func.array_agg(ordered).filter(members.c.read_seq < seq))
        .where(mine)
        .scalar_subquery()
        .label("unread_ids"),
    )


_READERS_PG = _readers_pg()


def _messages_at_keys(dialect: str) -> Select[Any]:
    """The messages at the (conversation, seq) positions of ``keys_params``."""
    return where_keys(
        select(*MESSAGE_COLUMNS), dialect, (messages.c.conversation_id, messages.c.seq)
    )


@functools.cache
def _read_positions(dialect: str) -> Select[Any]:
    """Read positions of the (conversation, user) pairs of ``keys_params``."""
    return where_keys(
        select(members.c.conversation_id, members.c.user_id, members.c.read_seq),
        dialect,
        (members.c.conversation_id, members.c.user_id),
    )


def _history_query(
    conversation: ConversationId,
    member: UserId | None,
    before: int | None,
    after: int | None,
    limit: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """A history page's live rows: oldest first above ``after``, else newest first."""
    params: dict[str, Any] = {"conversation": conversation, "member": member, "limit": limit}
    if after is not None:
        params |= {"low": after, "high": NO_END}
        return HISTORY_PAGES[(member is not None, OLDEST_FIRST)], params
    params |= {"low": 0, "high": NO_END if before is None else before}
    return HISTORY_PAGES[(member is not None, NEWEST_FIRST)], params


class _SearchWindow(NamedTuple):
    """One search page as asked: the user, the text, where, and how many rows."""

    user: UserId
    q: str
    conversation: ConversationId | None
    before: SearchPosition | None
    limit: int


async def _with_archived(
    segments: SegmentRows,
    window: _SearchWindow,
    live: Sequence[Any],
    found: Sequence[tuple[Segment, int]],
) -> list[Any]:
    """The live results merged with the archived ones of ``found`` that sort among them.

    Each segment is filtered by the blob reader (a superset) and re-checked
    here with the scan's own test (store/search.py). LookupError: a segment's
    blob is gone (restored since the snapshot): search again.
    """
    folded = window.q.lower()
    before = window.before
    cursor = None if before is None else (before.sent_at, before.conversation, before.seq)
    merged: dict[tuple[str, int], Any] = {(r[0], r[1]): r for r in live}
    for segment, joined in found:
        for row in await segments.matching(segment, folded, joined):
            if not _archived_match(row, folded):
                continue
            if cursor is not None and (row[SENT_AT], row[0], row[1]) >= cursor:
                continue
            merged.setdefault((row[0], row[1]), row)
    ordered = sorted(merged.values(), key=lambda r: (r[SENT_AT], r[0], r[1]), reverse=True)
    return ordered[: window.limit]


def _may_reach_archive(
    rows: Sequence[Any], before: int | None, after: int | None, limit: int
) -> bool:
    """Whether a page of live rows (oldest first) may be missing archived ones.

    Archived seqs all lie below the live ones, and the newest message of a
    conversation is always live (store/archive.py). So a page above ``after``
    can miss some only when it does not start right at ``after + 1``, and a
    page going back only when it came out short. A page that is settled here
    costs no look-up at all.
    """
    if after is not None:
        return bool(rows) and rows[0][1] > after + 1
    if len(rows) >= limit:
        return False
    lowest = rows[0][1] if rows else (NO_END if before is None else before)
    return bool(lowest > 1)


async def _archived_rows(
    segments: SegmentRows,
    found: Sequence[Segment],
    low: int,
    high: int,
    limit: int,
    newest: bool,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` archived rows with ``low < seq < high``, oldest first: the
    newest of them going back (``newest``), else the oldest."""
    rows: list[tuple[Any, ...]] = []
    if newest:
        for segment in reversed(found):
            rows = await segments.rows(segment, low, high, limit - len(rows), newest=True) + rows
            if len(rows) >= limit:
                return rows[-limit:]
        return rows
    for segment in found:
        rows += await segments.rows(segment, low, high, limit - len(rows))
        if len(rows) >= limit:
            return rows[:limit]
    return rows


SENT_AT = 5  # a MESSAGE_COLUMNS row's sent_at


def _archived_match(row: Sequence[Any], folded: str) -> bool:
    """The scan's test (store/search.py) on an archived row: a countable message,
    not recalled, whose text or file name holds the folded query."""
    if row[7] not in COUNTABLE_KINDS or row[15] is not None:
        return False
    if row[3] is not None and folded in row[3].lower():
        return True
    name = attachment_name(row[19])
    return name is not None and folded in name.lower()
