"""One group-commit transaction: a batch of sends and reads, in a few statements.

1. look up repeated (sender, client_msg_id) keys;
2. create the private conversations that start in this batch;
3. lock the batch's conversation rows (``FOR UPDATE``; SQLite's writer
   already holds the database) and read their ``last_seq``;
4. read the members of the batch's group conversations (recipients and
   the membership check, consistent with the lock);
5. assign seqs in Python, then insert messages and keys and update
   ``last_seq`` and read positions with one executemany each.

The statement count does not grow with the batch, which is what makes
group commit pay: a batch of 500 costs about what a batch of 5 does.

The batch is synchronous code on a ``Connection``: on SQLite the store
runs it whole in its batch thread (one hop off the event loop, where
aiosqlite made two or more per statement); on a database server it runs
through ``AsyncConnection.run_sync``, each statement one round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select, bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import Table

from tidings.errors import not_found, not_member
from tidings.ids import GroupRef, PrivateRef, UserId
from tidings.models import Message, iso_ms, message_id, now_ms
from tidings.store import (
    ReadOutcome,
    ReadRequest,
    ReadResult,
    SendOutcome,
    SendRequest,
    StoredMessage,
    WriteOutcome,
    WriteRequest,
)
from tidings.store.bulk import insert_many, update_many
from tidings.store.compiled import fetch
from tidings.store.keyset import in_list, keys_params, list_param, where_keys
from tidings.store.rows import MESSAGE_COLUMNS, message_from_row
from tidings.store.schema import client_msg_ids, conversations, members, messages, users

InsertIgnore = Callable[[Table], Insert]
BatchResult = tuple[list[SendOutcome], list[ReadOutcome]]


@dataclass(slots=True)
class _Position:
    """A conversation's row, locked for this batch."""

    kind: str
    last_seq: int
    last_sent_at: int | None
    dirty: bool = False


class WriteBatch:
    """One group-commit transaction; see the module docstring for its steps."""

    def __init__(
        self,
        insert_ignore: InsertIgnore,
        known_private: set[str],
        requests: Sequence[WriteRequest],
        gap_ms: int,
    ) -> None:
        self.insert_ignore = insert_ignore
        # Private conversations known to exist (never deleted, so never stale).
        self.known_private = known_private
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

    def run(self, conn: Connection) -> BatchResult:
        """Run the batch in ``conn``'s transaction; the caller commits."""
        self.conn = conn
        repeats = self._resolve_repeats()
        fresh = [i for i, outcome in enumerate(self.send_outcomes) if outcome is None]
        fresh = [i for i in fresh if i not in repeats]
        self._create_private({self.sends[i].conversation for i in fresh})
        conversation_ids: set[str] = {self.sends[i].conversation.id for i in fresh}
        conversation_ids.update(r.conversation.id for r in self.reads)
        positions = self._lock_positions(conversation_ids)
        # Members with their read positions: of every group someone sends to
        # (recipients and the membership check), and of whatever is read.
        member_conversations: set[str] = {
            c for c in conversation_ids if c in positions and positions[c].kind == "group"
        } | {r.conversation.id for r in self.reads if r.conversation.id in positions}
        read_seqs = self._read_positions(member_conversations)

        message_rows: list[tuple[Any, ...]] = []
        key_rows: list[tuple[Any, ...]] = []
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
        self._write(positions, message_rows, key_rows, moved)
        outcomes = [o for o in self.send_outcomes if o is not None]
        assert len(outcomes) == len(self.sends)
        return outcomes, read_outcomes

    def _resolve_repeats(self) -> dict[int, int]:
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
        dialect = self.conn.dialect.name
        rows = fetch(self.conn, _stored_keys(dialect), keys_params(dialect, list(first_of)))
        stored = {(r[0], r[1]): (r[2], r[3]) for r in rows}  # exactly the keys asked for
        if not stored:
            return repeats
        found = fetch(
            self.conn, _messages_at(dialect), keys_params(dialect, list(set(stored.values())))
        )
        by_position = {(row[0], row[1]): message_from_row(row) for row in found}
        stale: list[dict[str, Any]] = []
        for key, position in stored.items():
            message = by_position.get(position)
            if message is None:
                # The key outlived its message (its group was deleted): forget it.
                stale.append({"b_sender": key[0], "b_id": key[1]})
                continue
            self.send_outcomes[first_of[key]] = StoredMessage(message, fresh=False, recipients=())
        if stale:
            self.conn.execute(
                delete(client_msg_ids).where(
                    client_msg_ids.c.sender_id == bindparam("b_sender"),
                    client_msg_ids.c.client_msg_id == bindparam("b_id"),
                ),
                stale,
            )
        return repeats

    def _create_private(self, refs: Iterable[object]) -> None:
        new = [r for r in refs if isinstance(r, PrivateRef) and r.id not in self.known_private]
        if not new:
            return
        # A private conversation starts only between two users who exist.
        wanted = {u for r in new for u in (r.low, r.high)}
        rows = self.conn.execute(select(users.c.id).where(users.c.id.in_(wanted)))
        existing = {row[0] for row in rows}
        new = [r for r in new if r.low in existing and r.high in existing]
        if not new:
            return
        self.conn.execute(
            self.insert_ignore(conversations),
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
        self.conn.execute(
            self.insert_ignore(members),
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

    def _lock_positions(self, ids: set[str]) -> dict[str, _Position]:
        if not ids:
            return {}
        dialect = self.conn.dialect.name
        rows = fetch(
            self.conn, _locked_positions(dialect), {"ids": list_param(dialect, sorted(ids))}
        )
        return {row[0]: _Position(row[1], row[2], row[3]) for row in rows}

    def _read_positions(self, ids: set[str]) -> dict[str, dict[int, int]]:
        found: dict[str, dict[int, int]] = {cid: {} for cid in ids}
        if not ids:
            return found
        dialect = self.conn.dialect.name
        rows = fetch(self.conn, _members_of(dialect), {"ids": list_param(dialect, sorted(ids))})
        for cid, uid, read_seq in rows:
            found[cid][uid] = read_seq
        return found

    def _assign(
        self,
        index: int,
        positions: dict[str, _Position],
        read_seqs: dict[str, dict[int, int]],
        moved: dict[tuple[str, int], int],
        message_rows: list[tuple[Any, ...]],
        key_rows: list[tuple[Any, ...]],
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
            (ref.id, seq, send.sender, send.body, send.client_msg_id, sent_at, separator)
        )
        if send.client_msg_id is not None:
            key_rows.append((send.sender, send.client_msg_id, ref.id, seq))
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

    def _write(
        self,
        positions: dict[str, _Position],
        message_rows: list[tuple[Any, ...]],
        key_rows: list[tuple[Any, ...]],
        moved: dict[tuple[str, int], int],
    ) -> None:
        if message_rows:
            insert_many(self.conn, messages, _MESSAGE_FIELDS, message_rows)
        if key_rows:
            insert_many(self.conn, client_msg_ids, _KEY_FIELDS, key_rows)
        dirty = [(cid, p.last_seq, p.last_sent_at) for cid, p in positions.items() if p.dirty]
        if dirty:
            update_many(self.conn, conversations, ("id",), ("last_seq", "last_sent_at"), dirty)
        if moved:
            rows = [(c, u, s) for (c, u), s in moved.items()]
            # A read position never moves backwards.
            update_many(
                self.conn,
                members,
                ("conversation_id", "user_id"),
                ("read_seq",),
                rows,
                only_up="read_seq",
            )


_MESSAGE_FIELDS = (
    "conversation_id",
    "seq",
    "sender_id",
    "body",
    "client_msg_id",
    "sent_at",
    "time_separator",
)
_KEY_FIELDS = ("sender_id", "client_msg_id", "conversation_id", "seq")


# The batch's look-ups, built once per dialect so they run as driver SQL
# (store/compiled.py); each takes its list as one parameter.


@functools.cache
def _stored_keys(dialect: str) -> Select[Any]:
    """The stored (sender, client_msg_id) keys among ``keys_params``, with their positions."""
    return where_keys(
        select(
            client_msg_ids.c.sender_id,
            client_msg_ids.c.client_msg_id,
            client_msg_ids.c.conversation_id,
            client_msg_ids.c.seq,
        ),
        dialect,
        (client_msg_ids.c.sender_id, client_msg_ids.c.client_msg_id),
    )


@functools.cache
def _messages_at(dialect: str) -> Select[Any]:
    """The messages at the (conversation, seq) positions of ``keys_params``."""
    return where_keys(
        select(*MESSAGE_COLUMNS), dialect, (messages.c.conversation_id, messages.c.seq)
    )


@functools.cache
def _locked_positions(dialect: str) -> Select[Any]:
    """The conversations in ``:ids``, locked in id order (no deadlock between batches)."""
    return (
        select(
            conversations.c.id,
            conversations.c.kind,
            conversations.c.last_seq,
            conversations.c.last_sent_at,
        )
        .where(in_list(conversations.c.id, dialect, "ids"))
        .order_by(conversations.c.id)
        .with_for_update()
    )


@functools.cache
def _members_of(dialect: str) -> Select[Any]:
    """The members of the conversations in ``:ids`` with their read positions."""
    return (
        select(members.c.conversation_id, members.c.user_id, members.c.read_seq)
        .where(in_list(members.c.conversation_id, dialect, "ids"))
        .order_by(members.c.conversation_id, members.c.join_rank)
    )


def _as_repeat(outcome: SendOutcome | None) -> SendOutcome:
    assert outcome is not None
    if isinstance(outcome, StoredMessage):
        return StoredMessage(outcome.message, fresh=False, recipients=())
    return outcome
