"""The SQL store: SQLite, PostgreSQL and MySQL/MariaDB through SQLAlchemy Core.

The write path is ``commit_batch``: a whole batch of sends and reads in one
transaction and a handful of statements, whatever the batch's size:

1. look up repeated (sender, client_msg_id) keys;
2. create the private conversations that start in this batch;
3. lock the batch's conversation rows (``FOR UPDATE``; SQLite's writer
   already holds the database) and read their ``last_seq``;
4. read the members of the batch's group conversations (recipients and
   the membership check, consistent with the lock);
5. assign seqs in Python, then insert messages, keys, and update
   ``last_seq`` and read positions with one executemany each.

Membership changes lock the same conversation row, so a member added or
removed concurrently with a send either sees that message or does not,
never half of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Insert,
    Row,
    and_,
    bindparam,
    case,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

from tidings.errors import ErrorCode, TidingsError, bad_request, not_found, not_member, unavailable
from tidings.ids import ConversationId, GroupId, GroupRef, PrivateRef, UserId, group_id
from tidings.models import Conversation, Group, Message, User, iso_ms, message_id, now_ms
from tidings.store import (
    GroupChange,
    Membership,
    ReadOutcome,
    ReadRequest,
    ReadResult,
    SendOutcome,
    SendRequest,
    StoredMessage,
    WriteOutcome,
    WriteRequest,
)
from tidings.store.engines import Engines, create_engines
from tidings.store.migrate import upgrade
from tidings.store.schema import (
    client_msg_ids,
    conversations,
    groups,
    members,
    messages,
    sessions,
    users,
)

log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    """A database error in one line, without statement parameters."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {str(orig or exc).splitlines()[0][:200]}"


_MESSAGE_COLUMNS = (
    messages.c.conversation_id,
    messages.c.seq,
    messages.c.sender_id,
    messages.c.body,
    messages.c.client_msg_id,
    messages.c.sent_at,
    messages.c.time_separator,
)


def _message(row: Any) -> Message:
    """A Message from a row (or tuple) in ``_MESSAGE_COLUMNS`` order."""
    conversation, seq = row[0], row[1]
    return Message(
        id=message_id(conversation, seq),
        conversation=conversation,
        seq=seq,
        sender=row[2],
        body=row[3],
        client_msg_id=row[4],
        sent_at=iso_ms(row[5]),
        time_separator=bool(row[6]),
    )


def _user(row: Row[Any]) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name)


@dataclass(slots=True)
class _Position:
    """A conversation's row, locked for this batch."""

    kind: str
    last_seq: int
    last_sent_at: int | None
    dirty: bool = False


class SqlStore:
    """The store on a SQL database. Build it with ``SqlStore.from_url``."""

    def __init__(self, engines: Engines, *, pg_partitions: int = 16) -> None:
        self._engines = engines
        self._pg_partitions = pg_partitions
        self._writer = engines.writer
        self._reader = engines.reader
        self._dialect = engines.dialect
        # Private conversations known to exist: never deleted, so never stale.
        self._known_private: set[str] = set()

    @classmethod
    def from_url(
        cls, url: str, *, sqlite_synchronous: str = "FULL", pg_partitions: int = 16
    ) -> SqlStore:
        engines = create_engines(url, sqlite_synchronous=sqlite_synchronous)
        return cls(engines, pg_partitions=pg_partitions)

    @property
    def dialect(self) -> str:
        return self._dialect

    async def open(self) -> None:
        try:
            await upgrade(self._writer, pg_partitions=self._pg_partitions)
        except DBAPIError as exc:
            raise unavailable(f"cannot open the database: {exc.orig}") from exc

    async def close(self) -> None:
        await self._engines.dispose()

    async def ping(self) -> None:
        try:
            async with self._reader.connect() as conn:
                await conn.execute(select(1))
        except (DBAPIError, OSError) as exc:
            raise unavailable("the database does not answer") from exc

    # -- the write path ---------------------------------------------------

    async def commit_batch(
        self, requests: Sequence[WriteRequest], separator_gap_ms: int
    ) -> list[WriteOutcome]:
        try:
            async with self._writer.begin() as conn:
                batch = _Batch(conn, self, requests, separator_gap_ms)
                result = await batch.run()
        except (DBAPIError, OSError) as exc:
            log.warning("a write batch failed on the database: %s", _reason(exc))
            raise unavailable() from exc
        self._known_private.update(batch.created_private)
        return batch.in_order(requests, *result)

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
        except (DBAPIError, OSError) as exc:
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
        return {UserId(row.id): _user(row) for row in rows}

    async def credentials(self, username: str) -> tuple[User, str | None] | None:
        query = select(
            users.c.id, users.c.username, users.c.display_name, users.c.password_hash
        ).where(users.c.username_key == username.lower())
        rows = await self._read(query)
        if not rows:
            return None
        return _user(rows[0]), rows[0].password_hash

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
        return [_user(row) for row in await self._read(query)]

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

    # -- groups -------------------------------------------------------------

    async def create_group(
        self, owner: UserId, name: str, member_ids: Sequence[UserId]
    ) -> GroupChange:
        ordered = list(dict.fromkeys([owner, *member_ids]))
        now = now_ms()
        async with self._write_transaction() as conn:
            await _require_users(conn, ordered)
            result = await conn.execute(
                insert(groups).values(
                    name=name, owner_id=owner, join_counter=len(ordered), created_at=now
                )
            )
            gid = GroupId(int(result.inserted_primary_key[0]))  # type: ignore[index]
            cid = group_id(gid)
            await conn.execute(
                insert(conversations).values(
                    id=cid,
                    kind="group",
                    group_id=gid,
                    last_seq=0,
                    last_sent_at=None,
                    created_at=now,
                )
            )
            await conn.execute(
                insert(members),
                [
                    {
                        "conversation_id": cid,
                        "user_id": uid,
                        "peer_id": None,
                        "joined_seq": 0,
                        "read_seq": 0,
                        "joined_at": now,
                        "join_rank": rank,
                    }
                    for rank, uid in enumerate(ordered)
                ],
            )
        group = Group(id=gid, name=name, owner_id=owner, member_ids=[int(u) for u in ordered])
        return GroupChange(group, joined=tuple(ordered), joined_at=now, joined_seq=0)

    async def group(self, group_id_: GroupId) -> Group | None:
        async with self._read_transaction() as conn:
            return await _load_group(conn, group_id_)

    async def add_members(
        self,
        group_id_: GroupId,
        actor: UserId | None,
        user_ids: Sequence[UserId],
        max_members: int,
    ) -> GroupChange:
        cid = group_id(group_id_)
        async with self._write_transaction() as conn:
            head = await _lock_group(conn, group_id_)
            current = await _member_ranks(conn, cid)
            if actor is not None and actor not in current:
                raise not_member(cid)
            if actor is not None and actor != head.owner_id:
                raise TidingsError(ErrorCode.FORBIDDEN, "only the group's owner adds members")
            wanted = [u for u in dict.fromkeys(user_ids) if u not in current]
            await _require_users(conn, wanted)
            last_seq, now = 0, now_ms()
            if len(current) + len(wanted) > max_members:
                raise bad_request(f"a group has at most {max_members} members")
            if wanted:
                last_seq = await _lock_conversation(conn, cid)
                await conn.execute(
                    insert(members),
                    [
                        {
                            "conversation_id": cid,
                            "user_id": uid,
                            "peer_id": None,
                            "joined_seq": last_seq,
                            "read_seq": last_seq,
                            "joined_at": now,
                            "join_rank": head.join_counter + i,
                        }
                        for i, uid in enumerate(wanted)
                    ],
                )
                await conn.execute(
                    update(groups)
                    .where(groups.c.id == group_id_)
                    .values(join_counter=head.join_counter + len(wanted))
                )
            group = await _load_group(conn, group_id_)
        return GroupChange(group, joined=tuple(wanted), joined_at=now, joined_seq=last_seq)

    async def remove_member(
        self, group_id_: GroupId, actor: UserId | None, user_id: UserId
    ) -> GroupChange:
        cid = group_id(group_id_)
        async with self._write_transaction() as conn:
            head = await _lock_group(conn, group_id_)
            current = await _member_ranks(conn, cid)
            if actor is not None and actor not in current:
                raise not_member(cid)
            if user_id not in current:
                raise not_found(f"user {user_id} is not a member of {cid}")
            if actor is not None and actor != user_id and actor != head.owner_id:
                raise TidingsError(
                    ErrorCode.FORBIDDEN, "only the group's owner removes other members"
                )
            await _lock_conversation(conn, cid)
            await conn.execute(
                delete(members).where(
                    members.c.conversation_id == cid, members.c.user_id == user_id
                )
            )
            del current[user_id]
            if not current:
                # Left by everyone: the group, its conversation and history go.
                await conn.execute(delete(messages).where(messages.c.conversation_id == cid))
                await conn.execute(delete(conversations).where(conversations.c.id == cid))
                await conn.execute(delete(groups).where(groups.c.id == group_id_))
                return GroupChange(None, left=(user_id,))
            if user_id == head.owner_id:
                heir = min(current, key=current.__getitem__)
                await conn.execute(
                    update(groups).where(groups.c.id == group_id_).values(owner_id=heir)
                )
            group = await _load_group(conn, group_id_)
        return GroupChange(group, left=(user_id,))

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

    async def history(
        self,
        conversation: ConversationId,
        visible_after: int,
        *,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> list[Message]:
        query = select(*_MESSAGE_COLUMNS).where(messages.c.conversation_id == conversation)
        if after is not None:
            query = query.where(messages.c.seq > max(after, visible_after))
            query = query.order_by(messages.c.seq.asc()).limit(limit)
            return [_message(row) for row in await self._read(query)]
        query = query.where(messages.c.seq > visible_after)
        if before is not None:
            query = query.where(messages.c.seq < before)
        query = query.order_by(messages.c.seq.desc()).limit(limit)
        rows = await self._read(query)
        return [_message(row) for row in reversed(rows)]

    async def chat_list(self, user: UserId, limit: int) -> list[Conversation]:
        query = _CHAT_LIST.where(members.c.user_id == user).order_by(
            _UPDATED_AT.desc(), members.c.conversation_id
        )
        rows = await self._read(query.limit(limit))
        return [_entry(row) for row in rows]

    async def chat_entry(self, user: UserId, conversation: ConversationId) -> Conversation | None:
        query = _CHAT_LIST.where(
            members.c.user_id == user, members.c.conversation_id == conversation
        )
        rows = await self._read(query)
        return _entry(rows[0]) if rows else None

    # -- plumbing -----------------------------------------------------------

    async def _read(self, query: Any) -> list[Row[Any]]:
        try:
            async with self._reader.connect() as conn:
                result = await conn.execute(query)
                return list(result.all())
        except (DBAPIError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _write(self, statement: Any) -> None:
        async with self._write_transaction() as conn:
            await conn.execute(statement)

    def _write_transaction(self) -> _Transaction:
        return _Transaction(self._writer.begin())

    def _read_transaction(self) -> _Transaction:
        return _Transaction(self._reader.begin())


class _Transaction:
    """``engine.begin()`` that turns a database failure into ``unavailable``."""

    def __init__(self, context: Any) -> None:
        self._context = context

    async def __aenter__(self) -> AsyncConnection:
        try:
            conn: AsyncConnection = await self._context.__aenter__()
        except (DBAPIError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        return conn

    async def __aexit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            await self._context.__aexit__(kind, value, traceback)
        except (DBAPIError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        if isinstance(value, (DBAPIError, OSError)):
            raise unavailable("storage is unavailable; try again") from value


class _Batch:
    """One group-commit transaction; see the module docstring for its steps."""

    def __init__(
        self,
        conn: AsyncConnection,
        store: SqlStore,
        requests: Sequence[WriteRequest],
        gap_ms: int,
    ) -> None:
        self.conn = conn
        self.store = store
        self.sends: list[SendRequest] = []
        self.reads: list[ReadRequest] = []
        # (kind, index into sends or reads) in arrival order.
        self.order: list[tuple[str, int]] = []
        for request in requests:
            if isinstance(request, SendRequest):
                self.order.append(("send", len(self.sends)))
                self.sends.append(request)
            else:
                self.order.append(("read", len(self.reads)))
                self.reads.append(request)
        self.gap_ms = gap_ms
        self.now = now_ms()
        self.send_outcomes: list[SendOutcome | None] = [None] * len(self.sends)
        self.created_private: list[str] = []

    def in_order(
        self,
        requests: Sequence[WriteRequest],
        send_outcomes: list[SendOutcome],
        read_outcomes: list[ReadOutcome],
    ) -> list[WriteOutcome]:
        sends, reads = iter(send_outcomes), iter(read_outcomes)
        return [next(sends) if isinstance(r, SendRequest) else next(reads) for r in requests]

    async def run(self) -> tuple[list[SendOutcome], list[ReadOutcome]]:
        repeats = await self._resolve_repeats()
        fresh = [i for i, outcome in enumerate(self.send_outcomes) if outcome is None]
        fresh = [i for i in fresh if i not in repeats]
        await self._create_private({self.sends[i].conversation for i in fresh})
        conversation_ids: set[str] = {self.sends[i].conversation.id for i in fresh}
        conversation_ids.update(r.conversation.id for r in self.reads)
        positions = await self._lock_positions(conversation_ids)
        # Members with their read positions: of every group someone sends to
        # (recipients and the membership check), and of whatever is read.
        member_conversations: set[str] = {
            c for c in conversation_ids if c in positions and positions[c].kind == "group"
        } | {r.conversation.id for r in self.reads if r.conversation.id in positions}
        read_seqs = await self._read_positions(member_conversations)

        message_rows: list[dict[str, Any]] = []
        key_rows: list[dict[str, Any]] = []
        moved: dict[tuple[str, int], int] = {}
        # Sends and reads take effect in the order they arrived: a read is
        # clamped to the last seq as it stood when the read came in.
        fresh_set = set(fresh)
        read_outcomes: list[ReadOutcome] = []
        for kind, i in self.order:
            if kind == "read":
                read_outcomes.append(self._read(self.reads[i], positions, read_seqs, moved))
            elif i in fresh_set:
                self.send_outcomes[i] = self._assign(
                    i, positions, read_seqs, moved, message_rows, key_rows
                )
        for i, first in repeats.items():
            self.send_outcomes[i] = _as_repeat(self.send_outcomes[first])
        await self._write(positions, message_rows, key_rows, moved)
        outcomes = [o for o in self.send_outcomes if o is not None]
        assert len(outcomes) == len(self.sends)
        return outcomes, read_outcomes

    async def _resolve_repeats(self) -> dict[int, int]:
        """Fill outcomes for stored repeats; map in-batch repeats to their first send."""
        first_of: dict[tuple[int, str], int] = {}
        repeats: dict[int, int] = {}
        for i, send in enumerate(self.sends):
            if send.client_msg_id is None:
                continue
            key = (send.sender, send.client_msg_id)
            if key in first_of:
                repeats[i] = first_of[key]
            else:
                first_of[key] = i
        if not first_of:
            return repeats
        senders = {k[0] for k in first_of}
        ids = {k[1] for k in first_of}
        rows = await self.conn.execute(
            select(
                client_msg_ids.c.sender_id,
                client_msg_ids.c.client_msg_id,
                client_msg_ids.c.conversation_id,
                client_msg_ids.c.seq,
            ).where(
                client_msg_ids.c.sender_id.in_(senders), client_msg_ids.c.client_msg_id.in_(ids)
            )
        )
        stored = {(r[0], r[1]): (r[2], r[3]) for r in rows if (r[0], r[1]) in first_of}
        if not stored:
            return repeats
        found = await self.conn.execute(
            select(*_MESSAGE_COLUMNS).where(
                tuple_(messages.c.conversation_id, messages.c.seq).in_(list(stored.values()))
            )
        )
        by_position = {(row[0], row[1]): _message(row) for row in found}
        stale: list[dict[str, Any]] = []
        for key, position in stored.items():
            message = by_position.get(position)
            if message is None:
                # The key outlived its message (its group was deleted): forget it.
                stale.append({"b_sender": key[0], "b_id": key[1]})
                continue
            self.send_outcomes[first_of[key]] = StoredMessage(message, fresh=False, recipients=())
        if stale:
            await self.conn.execute(
                delete(client_msg_ids).where(
                    client_msg_ids.c.sender_id == bindparam("b_sender"),
                    client_msg_ids.c.client_msg_id == bindparam("b_id"),
                ),
                stale,
            )
        return repeats

    async def _create_private(self, refs: Iterable[object]) -> None:
        new = [
            r for r in refs if isinstance(r, PrivateRef) and r.id not in self.store._known_private
        ]
        if not new:
            return
        # A private conversation starts only between two users who exist.
        wanted = {u for r in new for u in (r.low, r.high)}
        rows = await self.conn.execute(select(users.c.id).where(users.c.id.in_(wanted)))
        existing = {row[0] for row in rows}
        new = [r for r in new if r.low in existing and r.high in existing]
        if not new:
            return
        await self.conn.execute(
            self.store._insert_ignore(conversations),
            [
                {
                    "id": r.id,
                    "kind": "private",
                    "group_id": None,
                    "last_seq": 0,
                    "last_sent_at": None,
                    "created_at": self.now,
                }
                for r in new
            ],
        )
        await self.conn.execute(
            self.store._insert_ignore(members),
            [
                {
                    "conversation_id": r.id,
                    "user_id": user,
                    "peer_id": r.peer_of(user),
                    "joined_seq": 0,
                    "read_seq": 0,
                    "joined_at": self.now,
                    "join_rank": 0,
                }
                for r in new
                for user in (r.low, r.high)
            ],
        )
        self.created_private.extend(r.id for r in new)

    async def _lock_positions(self, ids: set[str]) -> dict[str, _Position]:
        if not ids:
            return {}
        rows = await self.conn.execute(
            select(
                conversations.c.id,
                conversations.c.kind,
                conversations.c.last_seq,
                conversations.c.last_sent_at,
            )
            .where(conversations.c.id.in_(sorted(ids)))
            .order_by(conversations.c.id)
            .with_for_update()
        )
        return {row[0]: _Position(row[1], row[2], row[3]) for row in rows}

    async def _read_positions(self, ids: set[str]) -> dict[str, dict[int, int]]:
        found: dict[str, dict[int, int]] = {cid: {} for cid in ids}
        if not ids:
            return found
        rows = await self.conn.execute(
            select(members.c.conversation_id, members.c.user_id, members.c.read_seq)
            .where(members.c.conversation_id.in_(sorted(ids)))
            .order_by(members.c.conversation_id, members.c.join_rank)
        )
        for cid, uid, read_seq in rows:
            found[cid][uid] = read_seq
        return found

    def _assign(
        self,
        index: int,
        positions: dict[str, _Position],
        read_seqs: dict[str, dict[int, int]],
        moved: dict[tuple[str, int], int],
        message_rows: list[dict[str, Any]],
        key_rows: list[dict[str, Any]],
    ) -> SendOutcome:
        send = self.sends[index]
        ref = send.conversation
        position = positions.get(ref.id)
        if position is None:
            if isinstance(ref, PrivateRef):
                return not_found(f"{ref.id}: user {ref.peer_of(send.sender)} does not exist")
            return not_found(f"no group conversation {ref.id}")
        if isinstance(ref, GroupRef):
            group_members = read_seqs.get(ref.id, {})
            if send.sender not in group_members:
                return not_member(ref.id)
            recipients = tuple(UserId(u) for u in group_members)
        else:
            recipients = (ref.low, ref.high)
        seq = position.last_seq + 1
        previous = position.last_sent_at
        sent_at = self.now if previous is None else max(self.now, previous)
        separator = previous is None or sent_at - previous > self.gap_ms
        position.last_seq, position.last_sent_at, position.dirty = seq, sent_at, True
        message_rows.append(
            {
                "conversation_id": ref.id,
                "seq": seq,
                "sender_id": send.sender,
                "body": send.body,
                "client_msg_id": send.client_msg_id,
                "sent_at": sent_at,
                "time_separator": separator,
            }
        )
        if send.client_msg_id is not None:
            key_rows.append(
                {
                    "sender_id": send.sender,
                    "client_msg_id": send.client_msg_id,
                    "conversation_id": ref.id,
                    "seq": seq,
                }
            )
        moved[(ref.id, send.sender)] = seq
        if ref.id in read_seqs and send.sender in read_seqs[ref.id]:
            read_seqs[ref.id][send.sender] = seq
        message = Message(
            id=message_id(ref.id, seq),
            conversation=ref.id,
            seq=seq,
            sender=send.sender,
            body=send.body,
            client_msg_id=send.client_msg_id,
            sent_at=iso_ms(sent_at),
            time_separator=separator,
        )
        return StoredMessage(message, fresh=True, recipients=recipients)

    def _read(
        self,
        read: ReadRequest,
        positions: dict[str, _Position],
        read_seqs: dict[str, dict[int, int]],
        moved: dict[tuple[str, int], int],
    ) -> ReadOutcome:
        cid = read.conversation.id
        position = positions.get(cid)
        if position is None:
            if isinstance(read.conversation, PrivateRef):
                # Not started yet: nothing to read, nothing to move.
                return ReadResult(read.user, cid, 0, moved=False)
            return not_found(f"no conversation {cid}")
        current = read_seqs.get(cid, {}).get(read.user)
        if current is None:
            return not_member(cid)
        target = max(current, min(read.seq, position.last_seq))
        if target == current:
            return ReadResult(read.user, cid, current, moved=False)
        read_seqs[cid][read.user] = target
        moved[(cid, read.user)] = target
        return ReadResult(read.user, cid, target, moved=True)

    async def _write(
        self,
        positions: dict[str, _Position],
        message_rows: list[dict[str, Any]],
        key_rows: list[dict[str, Any]],
        moved: dict[tuple[str, int], int],
    ) -> None:
        if message_rows:
            await self.conn.execute(insert(messages), message_rows)
        if key_rows:
            await self.conn.execute(insert(client_msg_ids), key_rows)
        dirty = [
            {"b_id": cid, "b_seq": p.last_seq, "b_at": p.last_sent_at}
            for cid, p in positions.items()
            if p.dirty
        ]
        if dirty:
            await self.conn.execute(
                update(conversations)
                .where(conversations.c.id == bindparam("b_id"))
                .values(last_seq=bindparam("b_seq"), last_sent_at=bindparam("b_at")),
                dirty,
            )
        if moved:
            # The guard keeps read_seq from ever moving backwards.
            await self.conn.execute(
                update(members)
                .where(
                    members.c.conversation_id == bindparam("b_cid"),
                    members.c.user_id == bindparam("b_uid"),
                    members.c.read_seq < bindparam("b_seq"),
                )
                .values(read_seq=bindparam("b_seq")),
                [{"b_cid": c, "b_uid": u, "b_seq": s} for (c, u), s in moved.items()],
            )


def _as_repeat(outcome: SendOutcome | None) -> SendOutcome:
    assert outcome is not None
    if isinstance(outcome, StoredMessage):
        return StoredMessage(outcome.message, fresh=False, recipients=())
    return outcome


@dataclass(frozen=True, slots=True)
class _GroupHead:
    owner_id: int
    join_counter: int


async def _lock_group(conn: AsyncConnection, gid: GroupId) -> _GroupHead:
    rows = await conn.execute(
        select(groups.c.owner_id, groups.c.join_counter).where(groups.c.id == gid).with_for_update()
    )
    row = rows.first()
    if row is None:
        raise not_found(f"no group {gid}")
    return _GroupHead(owner_id=row.owner_id, join_counter=row.join_counter)


async def _lock_conversation(conn: AsyncConnection, cid: str) -> int:
    rows = await conn.execute(
        select(conversations.c.last_seq).where(conversations.c.id == cid).with_for_update()
    )
    return int(rows.scalar_one())


async def _member_ranks(conn: AsyncConnection, cid: str) -> dict[UserId, int]:
    rows = await conn.execute(
        select(members.c.user_id, members.c.join_rank).where(members.c.conversation_id == cid)
    )
    return {UserId(r.user_id): r.join_rank for r in rows}


async def _require_users(conn: AsyncConnection, user_ids: Sequence[UserId]) -> None:
    if not user_ids:
        return
    rows = await conn.execute(select(users.c.id).where(users.c.id.in_(list(user_ids))))
    known = {r.id for r in rows}
    unknown = [u for u in user_ids if u not in known]
    if unknown:
        raise bad_request(f"unknown user ids: {unknown}")


async def _load_group(conn: AsyncConnection, gid: GroupId) -> Group | None:
    head = (
        await conn.execute(select(groups.c.name, groups.c.owner_id).where(groups.c.id == gid))
    ).first()
    if head is None:
        return None
    rows = await conn.execute(
        select(members.c.user_id)
        .where(members.c.conversation_id == group_id(gid))
        .order_by(members.c.join_rank)
    )
    return Group(id=gid, name=head.name, owner_id=head.owner_id, member_ids=[r[0] for r in rows])


# The chat list: one indexed query per user. A member sees the conversation's
# last message only if it came after the member joined.
_VISIBLE = conversations.c.last_seq > members.c.joined_seq
_UPDATED_AT = case((_VISIBLE, conversations.c.last_sent_at), else_=members.c.joined_at)
_PEER = members.alias("peer")
_CHAT_LIST = select(
    members.c.conversation_id,
    conversations.c.kind,
    conversations.c.group_id,
    members.c.peer_id,
    members.c.read_seq,
    members.c.joined_at,
    conversations.c.last_seq,
    _UPDATED_AT.label("updated_at"),
    messages.c.sender_id,
    messages.c.body,
    messages.c.client_msg_id,
    messages.c.sent_at,
    messages.c.time_separator,
    users.c.display_name.label("peer_name"),
    groups.c.name.label("group_name"),
    _PEER.c.read_seq.label("peer_read_seq"),
).select_from(
    members.join(conversations, conversations.c.id == members.c.conversation_id)
    .outerjoin(
        messages,
        and_(
            messages.c.conversation_id == conversations.c.id,
            messages.c.seq == conversations.c.last_seq,
            _VISIBLE,
        ),
    )
    .outerjoin(users, users.c.id == members.c.peer_id)
    .outerjoin(groups, groups.c.id == conversations.c.group_id)
    .outerjoin(
        _PEER,
        and_(
            _PEER.c.conversation_id == members.c.conversation_id,
            _PEER.c.user_id == members.c.peer_id,
        ),
    )
)


def _entry(row: Row[Any]) -> Conversation:
    last = None
    if row.sender_id is not None:
        last = _message(
            (
                row.conversation_id,
                row.last_seq,
                row.sender_id,
                row.body,
                row.client_msg_id,
                row.sent_at,
                row.time_separator,
            )
        )
    is_group = row.kind == "group"
    return Conversation(
        id=row.conversation_id,
        type=row.kind,
        title=(row.group_name if is_group else row.peer_name) or "",
        peer_id=None if is_group else row.peer_id,
        group_id=row.group_id if is_group else None,
        unread=max(0, row.last_seq - row.read_seq),
        last_seq=row.last_seq,
        read_seq=row.read_seq,
        last_message=last,
        updated_at=iso_ms(row.updated_at),
        peer_read_seq=None if is_group else row.peer_read_seq,
    )
