"""One group-commit transaction: a batch of sends and reads, in a few statements.

1. look up repeated (sender, client_msg_id) keys;
2. create the private conversations that start in this batch;
3. lock the batch's conversation rows (``FOR UPDATE``; SQLite's writer
   already holds the database) and read their ``last_seq``;
4. read the members of the batch's group conversations (recipients and
   the membership check, consistent with the lock);
5. assign seqs in Python, then insert messages and keys and update
   ``last_seq`` and read positions with one executemany each (on
   PostgreSQL, all of them in one statement: store/merged.py).

The statement count does not grow with the batch, which is what makes
group commit pay: a batch of 500 costs about what a batch of 5 does.

The batch is synchronous code on a ``Connection``: on SQLite the store
runs it whole in its batch thread (one hop off the event loop, where
aiosqlite made two or more per statement); on a database server it runs
through ``AsyncConnection.run_sync``, each statement one round trip.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Insert, Select, bindparam, delete, or_, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import Table

from tidings.errors import ErrorCode, TidingsError, bad_request, forbidden, not_found, not_member
from tidings.ids import GroupId, GroupRef, PrivateRef, UserId, group_conversation
from tidings.models import NOTICE_KINDS, Message, ReplyTo, iso_ms, message_id, now_ms
from tidings.store import (
    EditRequest,
    EntryRequest,
    FileRecord,
    ReadOutcome,
    ReadRequest,
    ReadResult,
    RecallRequest,
    SendOutcome,
    SendRequest,
    StoredMessage,
    WriteOutcome,
    WriteRequest,
)
from tidings.store.compiled import fetch
from tidings.store.files import attachment_of, record_from_row
from tidings.store.keyset import in_list, keys_params, list_param, where_keys
from tidings.store.merged import MergedWrites
from tidings.store.rows import (
    ATTACHMENT,
    FILE_ID,
    MESSAGE_COLUMNS,
    REPLY_SEQ,
    decode_ids,
    encode_ids,
    message_from_row,
    reply_from_row,
    wanted_replies,
)
from tidings.store.schema import (
    ADMIN,
    client_msg_ids,
    conversations,
    files,
    groups,
    members,
    mentions,
    messages,
    uncounted,
    users,
)

InsertIgnore = Callable[[Table], Insert]
BatchResult = tuple[list[SendOutcome], list[ReadOutcome]]


@dataclass(slots=True)
class _Position:
    """A conversation's row, locked for this batch."""

    kind: str
    last_seq: int
    last_sent_at: int | None
    shown_seq: int = 0
    # A group where a send needs more than membership (schema: conversations.guarded).
    guarded: bool = False
    dirty: bool = False


@dataclass(slots=True)
class _Row:
    """A message row this batch reads or writes, in ``MESSAGE_COLUMNS`` order."""

    values: list[Any]
    new: bool  # inserted by this batch (else: stored before, updated in place)
    changed: bool = False

    @property
    def seq(self) -> int:
        return int(self.values[1])

    @property
    def sender(self) -> int:
        return int(self.values[2])

    @property
    def kind(self) -> str:
        return str(self.values[7])

    @property
    def sent_at(self) -> int:
        return int(self.values[5])

    @property
    def recall_seq(self) -> int | None:
        value = self.values[15]
        return None if value is None else int(value)


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
        self.entries: list[EntryRequest] = []
        self.reads: list[ReadRequest] = []
        # (kind, index into entries or reads) in arrival order.
        self.order: list[tuple[str, int]] = []
        for request in requests:
            if isinstance(request, ReadRequest):
                self.order.append(("read", len(self.reads)))
                self.reads.append(request)
            else:
                self.order.append(("entry", len(self.entries)))
                self.entries.append(request)
        self.gap_ms = gap_ms
        self.now = now_ms()
        self.send_outcomes: list[SendOutcome | None] = [None] * len(self.entries)
        self.created_private: list[str] = []
        # Messages this batch refers to (quoted, forwarded, recalled, edited)
        # or creates, by (conversation, seq): later requests see earlier ones.
        self.rows: dict[tuple[str, int], _Row] = {}
        self.uncounted_rows: list[tuple[Any, ...]] = []
        self.mention_rows: list[tuple[Any, ...]] = []
        self.unmentioned: list[dict[str, Any]] = []
        # PROTOCOL-v2 §5: a send clears its sender's draft there (and, as a
        # read of one's own, a mark); a read clears the reader's mark even
        # when it moves nothing.
        self.senders: set[tuple[str, int]] = set()
        self.still_reads: list[dict[str, Any]] = []
        self.rich_rows: list[list[Any]] = []
        self.guards: dict[str, _Guard] = {}
        self.unguard: list[str] = []  # guarded conversations whose guard has lapsed

    def in_order(
        self,
        requests: Sequence[WriteRequest],
        send_outcomes: list[SendOutcome],
        read_outcomes: list[ReadOutcome],
    ) -> list[WriteOutcome]:
        sends, reads = iter(send_outcomes), iter(read_outcomes)
        return [next(reads) if isinstance(r, ReadRequest) else next(sends) for r in requests]

    def run(self, conn: Connection) -> BatchResult:
        """Run the batch in ``conn``'s transaction; the caller commits."""
        self.conn = conn
        repeats = self._resolve_repeats()
        fresh = [i for i, outcome in enumerate(self.send_outcomes) if outcome is None]
        fresh = [i for i in fresh if i not in repeats]
        sends = [self.entries[i] for i in fresh if isinstance(self.entries[i], SendRequest)]
        self._create_private({send.conversation for send in sends})
        conversation_ids: set[str] = {self.entries[i].conversation.id for i in fresh}
        conversation_ids.update(r.conversation.id for r in self.reads)
        positions = self._lock_positions(conversation_ids)
        # Members with their read positions: of every group someone writes to
        # (recipients and the membership check), and of whatever is read.
        member_conversations: set[str] = {
            c for c in conversation_ids if c in positions and positions[c].kind == "group"
        } | {r.conversation.id for r in self.reads if r.conversation.id in positions}
        read_seqs = self._read_positions(member_conversations)
        self._load_referenced([self.entries[i] for i in fresh])

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
        unmarked = self._write(positions, message_rows, key_rows, moved)
        if unmarked:
            read_outcomes = [
                dataclasses.replace(o, unmarked=True)
                if isinstance(o, ReadResult)
                and not o.moved
                and (o.conversation, o.user) in unmarked
                else o
                for o in read_outcomes
            ]
        outcomes = [o for o in self.send_outcomes if o is not None]
        assert len(outcomes) == len(self.entries)
        return outcomes, read_outcomes

    def _resolve_repeats(self) -> dict[int, int]:
        """Fill outcomes for stored repeats; map in-batch repeats to their first send."""
        first_of: dict[tuple[int, str], int] = {}
        repeats: dict[int, int] = {}
        for i, entry in enumerate(self.entries):
            if entry.client_msg_id is None or entry.sender is None:
                continue
            key = (entry.sender, entry.client_msg_id)
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
        by_position = self._messages(list(set(stored.values())))
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

    def _messages(self, positions: list[tuple[str, int]]) -> dict[tuple[str, int], Message]:
        """Stored messages at ``positions``, as they read now (replies previewed)."""
        if not positions:
            return {}
        dialect = self.conn.dialect.name
        found = fetch(self.conn, _messages_at(dialect), keys_params(dialect, positions))
        quoted = wanted_replies(found)
        replies: dict[tuple[str, int], ReplyTo] = {}
        if quoted:
            rows = fetch(self.conn, _messages_at(dialect), keys_params(dialect, quoted))
            replies = {(r[0], r[1]): reply_from_row(r) for r in rows}
        return {
            (row[0], row[1]): message_from_row(
                row, None if row[REPLY_SEQ] is None else replies.get((row[0], row[REPLY_SEQ]))
            )
            for row in found
        }

    def _load_referenced(self, entries: Sequence[EntryRequest]) -> None:
        """Read the stored messages these entries quote, forward, recall or edit."""
        wanted: set[tuple[str, int]] = set()
        forward_members: set[tuple[str, int]] = set()
        for entry in entries:
            cid = entry.conversation.id
            if isinstance(entry, SendRequest):
                if entry.reply_to is not None:
                    wanted.add((cid, entry.reply_to))
                if entry.forward is not None:
                    wanted.add((entry.forward.conversation, entry.forward.seq))
                    forward_members.add((entry.forward.conversation, entry.sender))
            else:
                wanted.add((cid, entry.target))
        self.source_joined: dict[tuple[str, int], int] = {}
        self.referenced = wanted
        self.files: dict[str, FileRecord] = {}
        self._load_owners_and_names(entries)
        if not wanted:
            self._attach_files(entries)
            return
        dialect = self.conn.dialect.name
        for row in fetch(self.conn, _messages_at(dialect), keys_params(dialect, sorted(wanted))):
            self.rows[(row[0], row[1])] = _Row(list(row), new=False)
        # What a recalled or edited target quotes: the outcome carries the target
        # as it reads now, quote included (the Redis chat list keeps it as is).
        quoted = {
            (row.values[0], row.values[REPLY_SEQ])
            for row in self.rows.values()
            if row.values[REPLY_SEQ] is not None
        } - set(self.rows)
        if quoted:
            for row in fetch(
                self.conn, _messages_at(dialect), keys_params(dialect, sorted(quoted))
            ):
                self.rows[(row[0], row[1])] = _Row(list(row), new=False)
        if forward_members:
            rows = fetch(
                self.conn, _joined_at_keys(dialect), keys_params(dialect, sorted(forward_members))
            )
            self.source_joined = {(r[0], r[1]): r[2] for r in rows}
        self._attach_files(entries)

    def _attach_files(self, entries: Sequence[EntryRequest]) -> None:
        """Mark the files these sends (and forwards) attach, and read their rows.

        The UPDATE moves each row's ``attach_seq`` and locks it until the
        commit; the orphan collector deletes only the ``attach_seq`` it saw,
        so it keeps the file (store/files.py). Sorted by id, so two batches lock in one order. A
        send names only its sender's uploads; a forward re-attaches the
        original's file, whoever uploaded it.
        """
        wanted: dict[str, int | None] = {}
        for entry in entries:
            if not isinstance(entry, SendRequest):
                continue
            if entry.file_id is not None:
                wanted.setdefault(entry.file_id, entry.sender)
            if entry.forward is not None:
                original = self.rows.get((entry.forward.conversation, entry.forward.seq))
                if original is not None and original.values[FILE_ID] is not None:
                    wanted[str(original.values[FILE_ID])] = None
        if not wanted:
            return
        for file_id in sorted(wanted):
            uploader = wanted[file_id]
            statement = update(files).where(files.c.id == file_id)
            if uploader is not None:
                statement = statement.where(files.c.uploader_id == uploader)
            self.conn.execute(
                statement.values(attached_at=self.now, attach_seq=files.c.attach_seq + 1)
            )
        # A locking read: InnoDB's plain SELECT would answer from the batch's
        # snapshot, which may still hold a row the collector deleted since.
        rows = self.conn.execute(
            select(files).where(files.c.id.in_(sorted(wanted))).with_for_update()
        )
        self.files = {row.id: record_from_row(row) for row in rows}

    def _load_owners_and_names(self, entries: Sequence[EntryRequest]) -> None:
        """Who owns the groups recalled in or @all-ed, and the names of who recalls.

        Read here, in the batch's transaction, so that a recall or an @all
        costs the edge no look-up of its own: one query each per batch, and
        only for batches that have such entries.
        """
        self.owners: dict[int, int] = {}
        self.admins: set[tuple[str, int]] = set()
        self.names: dict[int, str] = {}
        groups_asked: set[int] = set()
        recallers: set[int] = set()
        for entry in entries:
            ref = entry.conversation
            recall = isinstance(entry, RecallRequest) and entry.sender is not None
            if recall and entry.sender is not None:
                recallers.add(entry.sender)
            at_all = isinstance(entry, SendRequest) and entry.mention_all
            if (recall or at_all) and isinstance(ref, GroupRef):
                groups_asked.add(ref.group)
        if groups_asked:
            rows = self.conn.execute(
                select(groups.c.id, groups.c.owner_id).where(groups.c.id.in_(sorted(groups_asked)))
            )
            self.owners = {row[0]: row[1] for row in rows}
            rows = self.conn.execute(
                select(members.c.conversation_id, members.c.user_id).where(
                    members.c.conversation_id.in_(
                        sorted(group_conversation(GroupId(g)) for g in groups_asked)
                    ),
                    members.c.role == ADMIN,
                )
            )
            self.admins = {(row[0], row[1]) for row in rows}
        if recallers:
            rows = self.conn.execute(
                select(users.c.id, users.c.display_name).where(users.c.id.in_(sorted(recallers)))
            )
            self.names = {row[0]: row[1] for row in rows}

    def _owns(self, user: int | None, ref: object) -> bool:
        """Whether ``user`` runs the group of ``ref``: its owner or one of its admins."""
        if not isinstance(ref, GroupRef) or user is None:
            return False
        return self.owners.get(ref.group) == user or (ref.id, user) in self.admins

    def _guard(self, ref: GroupRef, entry: EntryRequest) -> TidingsError | None:
        """PROTOCOL-v2 §6 in a guarded group: dissolved (no send, recall or edit),
        the sender muted, or everyone muted but the owner and admins."""
        guard = self.guards.get(ref.id)
        if guard is None:
            guard = self.guards[ref.id] = _load_guard(self.conn, ref)
            if not (
                guard.dissolved
                or guard.muted_all
                or max(guard.muted.values(), default=0) > self.now
            ):
                # Every mute ran out: no look-up here any more. The conversation's
                # row is locked, and a group change takes that lock first.
                self.unguard.append(ref.id)
        if guard.dissolved:
            return TidingsError(ErrorCode.GROUP_DISSOLVED, "this group was dissolved")
        if not isinstance(entry, SendRequest):
            return None
        sender = entry.sender
        if guard.muted.get(sender, 0) > self.now:
            return TidingsError(ErrorCode.MUTED, "you are muted in this group")
        if guard.muted_all and sender != guard.owner and sender not in guard.admins:
            return TidingsError(ErrorCode.MUTED, "only the owner and admins may send here now")
        return None

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
                    "shown_seq": 0,
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
        return {row[0]: _Position(row[1], row[2], row[3], row[4], bool(row[5])) for row in rows}

    def _read_positions(self, ids: set[str]) -> dict[str, dict[int, int]]:
        found: dict[str, dict[int, int]] = {cid: {} for cid in ids}
        self.joined: dict[tuple[str, int], int] = {}
        if not ids:
            return found
        dialect = self.conn.dialect.name
        rows = fetch(self.conn, _members_of(dialect), {"ids": list_param(dialect, sorted(ids))})
        for cid, uid, read_seq, joined_seq in rows:
            found[cid][uid] = read_seq
            self.joined[(cid, uid)] = joined_seq
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
        entry = self.entries[index]
        ref = entry.conversation
        position = positions.get(ref.id)
        if position is None:
            if isinstance(ref, PrivateRef) and isinstance(entry, SendRequest):
                return not_found(f"{ref.id}: user {ref.peer_of(entry.sender)} does not exist")
            return not_found(f"no conversation {ref.id}")
        if isinstance(ref, GroupRef):
            group_members = read_seqs.get(ref.id, {})
            if entry.sender is not None and entry.sender not in group_members:
                return not_member(ref.id)
            if position.guarded and entry.sender is not None:
                refused = self._guard(ref, entry)
                if refused is not None:
                    return refused
            recipients = tuple(UserId(u) for u in group_members)
        else:
            recipients = (ref.low, ref.high)
        if isinstance(entry, SendRequest) and _plain(entry):
            return self._assign_plain(
                entry, position, recipients, read_seqs, moved, message_rows, key_rows
            )
        planned: tuple[list[Any], _Row | None] | StoredMessage | TidingsError
        if isinstance(entry, SendRequest):
            planned = self._plan_send(entry, recipients)
        elif isinstance(entry, RecallRequest):
            planned = self._plan_recall(entry)
        else:
            planned = self._plan_edit(entry)
        if isinstance(planned, TidingsError):
            return planned
        if isinstance(planned, StoredMessage):
            return planned  # a recall of a message already recalled: its notice
        values, target = planned
        sender = int(values[2])
        seq = position.last_seq + 1
        previous = position.last_sent_at
        sent_at = self.now if previous is None else max(self.now, previous)
        separator = previous is None or sent_at - previous > self.gap_ms
        values[0:2] = [ref.id, seq]
        values[4:7] = [entry.client_msg_id, sent_at, separator]
        kind = str(values[7])
        position.last_seq, position.dirty = seq, True
        if kind != "edit":  # an edit does not move the conversation in the list
            position.shown_seq, position.last_sent_at = seq, sent_at
        row = _Row(values, new=True)
        self.rows[(ref.id, seq)] = row
        if kind in NOTICE_KINDS:
            self.uncounted_rows.append((ref.id, seq))
        if target is not None:
            self._apply_notice(kind, seq, sent_at, values, target)
        self._mention(ref.id, seq, sender, values)
        if _is_v1(values):
            message_rows.append(tuple(values[:7]))
        else:
            self.rich_rows.append(values)
        if entry.client_msg_id is not None and entry.sender is not None:
            key_rows.append((entry.sender, entry.client_msg_id, ref.id, seq))
        if entry.sender is not None:  # an entry of one's own: one has read up to it
            moved[(ref.id, entry.sender)] = seq
            if isinstance(entry, SendRequest):
                self.senders.add((ref.id, entry.sender))
            if ref.id in read_seqs and entry.sender in read_seqs[ref.id]:
                read_seqs[ref.id][entry.sender] = seq
        message = self._message(row)
        target_message = None if target is None else self._message(target)
        return StoredMessage(message, fresh=True, recipients=recipients, target=target_message)

    def _assign_plain(
        self,
        send: SendRequest,
        position: _Position,
        recipients: tuple[UserId, ...],
        read_seqs: dict[str, dict[int, int]],
        moved: dict[tuple[str, int], int],
        message_rows: list[tuple[Any, ...]],
        key_rows: list[tuple[Any, ...]],
    ) -> StoredMessage:
        """A v1 text message: the v1 path, with no overlay row unless this very
        batch refers to its seq (a guessed reply, recall or edit of it)."""
        cid = send.conversation.id
        seq = position.last_seq + 1
        previous = position.last_sent_at
        sent_at = self.now if previous is None else max(self.now, previous)
        separator = previous is None or sent_at - previous > self.gap_ms
        position.last_seq, position.shown_seq, position.last_sent_at = seq, seq, sent_at
        position.dirty = True
        values = (cid, seq, send.sender, send.body, send.client_msg_id, sent_at, separator)
        message_rows.append(values)
        if (cid, seq) in self.referenced:
            row: list[Any] = [None] * len(MESSAGE_COLUMNS)
            row[0:8], row[13] = [*values, "text"], False
            self.rows[(cid, seq)] = _Row(row, new=True)
        if send.client_msg_id is not None:
            key_rows.append((send.sender, send.client_msg_id, cid, seq))
        moved[(cid, send.sender)] = seq
        self.senders.add((cid, send.sender))
        if cid in read_seqs and send.sender in read_seqs[cid]:
            read_seqs[cid][send.sender] = seq
        message = Message(
            id=message_id(cid, seq),
            conversation=cid,
            seq=seq,
            sender=send.sender,
            body=send.body,
            client_msg_id=send.client_msg_id,
            sent_at=iso_ms(sent_at),
            time_separator=separator,
        )
        return StoredMessage(message, fresh=True, recipients=recipients)

    def _visible(self, conversation: str, seq: int, user: int | None) -> _Row | None:
        """The message at ``seq`` if it exists and ``user`` may see it (joined before it)."""
        row = self.rows.get((conversation, seq))
        if row is None or user is None:
            return row
        joined = self.joined.get((conversation, user), 0)
        return row if seq > joined else None

    def _plan_send(
        self, send: SendRequest, recipients: tuple[UserId, ...]
    ) -> tuple[list[Any], None] | TidingsError:
        cid = send.conversation.id
        values: list[Any] = [None] * len(MESSAGE_COLUMNS)
        values[2], values[3], values[7] = send.sender, send.body, send.kind
        values[13] = False
        if send.reply_to is not None:
            quoted = self._visible(cid, send.reply_to, send.sender)
            if quoted is None:
                return bad_request(f"reply_to: no message {send.reply_to} you can see in {cid}")
            if quoted.kind in NOTICE_KINDS:
                return bad_request(f"reply_to: {send.reply_to} is a notice, not a message")
            values[8] = send.reply_to
        if send.forward is not None:
            source = send.forward
            joined = self.source_joined.get((source.conversation, send.sender))
            if joined is None:
                return not_member(source.conversation)
            original = self.rows.get((source.conversation, source.seq))
            if original is None or source.seq <= joined:
                return not_found(f"no message {source.seq} in {source.conversation}")
            if original.kind in NOTICE_KINDS or original.recall_seq is not None:
                return not_found(
                    f"message {source.seq} in {source.conversation} cannot be forwarded"
                )
            values[3], values[7] = original.values[3], original.kind
            if original.values[FILE_ID] is not None:
                if original.values[FILE_ID] not in self.files:
                    return not_found(f"the file of message {source.seq} is gone")
                values[FILE_ID] = original.values[FILE_ID]
                values[ATTACHMENT] = original.values[ATTACHMENT]
            origin = original.values
            if origin[9] is not None:  # already a forward: keep pointing at the original
                values[9:12] = origin[9:12]
            else:
                values[9:12] = [source.conversation, source.seq, original.sender]
        if send.mentions:
            members_here = set(recipients)
            strangers = [u for u in send.mentions if u not in members_here]
            if strangers:
                return bad_request(f"mentions: {strangers[0]} is not a member of {cid}")
            values[12] = encode_ids(send.mentions)
        if send.mention_all and not self._owns(send.sender, send.conversation):
            return forbidden("mention_all: only the group's owner and admins mention everyone")
        values[13] = send.mention_all
        if send.file_id is not None:
            refused = self._attach(send, values)
            if refused is not None:
                return refused
        return values, None

    def _attach(self, send: SendRequest, values: list[Any]) -> TidingsError | None:
        """PROTOCOL-v2 §2: the sender's own upload, of a type the kind allows."""
        record = self.files.get(send.file_id or "")
        if record is None or record.uploader != send.sender:
            return not_found(f"file_id: no file {send.file_id!r} uploaded by you")
        if send.kind == "image" and not record.content_type.startswith("image/"):
            return bad_request(f"kind image needs an image; this file is {record.content_type}")
        if send.kind == "voice" and not record.content_type.startswith("audio/"):
            return bad_request(f"kind voice needs audio; this file is {record.content_type}")
        values[FILE_ID] = record.id
        values[ATTACHMENT] = msgspec.json.encode(attachment_of(record)).decode()
        return None

    def _plan_recall(
        self, recall: RecallRequest
    ) -> tuple[list[Any], _Row] | StoredMessage | TidingsError:
        cid = recall.conversation.id
        target = self._visible(cid, recall.target, recall.sender)
        if target is None:
            return not_found(f"no message {recall.target} in {cid}")
        if target.kind in NOTICE_KINDS:
            return bad_request(f"{recall.target} is a notice; only messages can be recalled")
        privileged = recall.sender is None or self._owns(recall.sender, recall.conversation)
        may_recall = privileged or target.sender == recall.sender
        if target.recall_seq is not None and may_recall:  # a repeat: its notice, at any time
            earlier = self.rows.get((cid, target.recall_seq))  # recalled in this very batch
            if earlier is not None:
                done = self._message(earlier)
            else:
                done = self._messages([(cid, target.recall_seq)])[(cid, target.recall_seq)]
            return StoredMessage(done, fresh=False, recipients=(), target=self._message(target))
        if not may_recall:
            return forbidden("only its sender (or a group's owner and admins) may recall it")
        if not privileged and self.now - target.sent_at > recall.window_ms:
            return TidingsError(
                ErrorCode.RECALL_EXPIRED,
                f"messages can be recalled within {recall.window_ms // 1000} seconds",
            )
        values: list[Any] = [None] * len(MESSAGE_COLUMNS)
        sender = target.sender if recall.sender is None else recall.sender
        name = self.names.get(sender, "Someone")
        values[2], values[3], values[7] = sender, recall.body.replace("{name}", name), "recall"
        values[13], values[14] = False, target.seq
        return values, target

    def _plan_edit(self, edit: EditRequest) -> tuple[list[Any], _Row] | TidingsError:
        cid = edit.conversation.id
        target = self._visible(cid, edit.target, edit.sender)
        if target is None:
            return not_found(f"no message {edit.target} in {cid}")
        if target.sender != edit.sender:
            return forbidden("only its sender may edit a message")
        if target.kind != "text":
            return forbidden("only text messages can be edited")
        if target.recall_seq is not None:
            return forbidden("a recalled message cannot be edited")
        if edit.window_ms <= 0:
            return forbidden("edits are turned off on this server")
        if self.now - target.sent_at > edit.window_ms:
            return TidingsError(
                ErrorCode.EDIT_EXPIRED,
                f"messages can be edited within {edit.window_ms // 1000} seconds",
            )
        values: list[Any] = [None] * len(MESSAGE_COLUMNS)
        values[2], values[3], values[7] = edit.sender, edit.body, "edit"
        values[13], values[14] = False, target.seq
        return values, target

    def _apply_notice(
        self, kind: str, seq: int, sent_at: int, notice: list[Any], target: _Row
    ) -> None:
        """A recall or edit notice's effect on its target, in the same commit."""
        cid = notice[0]
        if kind == "recall":
            target.values[15] = seq
            target.values[3] = ""  # the content is gone, not hidden
            self.uncounted_rows.append((cid, target.seq))
            for user in _mentioned_rows(target.values):
                self.unmentioned.append({"b_c": cid, "b_u": user, "b_s": target.seq})
        else:
            target.values[3] = notice[3]
            target.values[16] = sent_at
        target.changed = True

    def _mention(self, cid: str, seq: int, sender: int, values: list[Any]) -> None:
        for user in _mentioned_rows(values):
            if user != sender:
                self.mention_rows.append((cid, user, seq))

    def _message(self, row: _Row) -> Message:
        values = row.values
        reply = None
        if values[REPLY_SEQ] is not None:
            quoted = self.rows.get((values[0], values[REPLY_SEQ]))
            if quoted is not None:
                reply = reply_from_row(quoted.values)
        return message_from_row(values, reply)

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
            if (cid, read.user) not in moved:
                self.still_reads.append({"b_c": cid, "b_u": read.user})
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
    ) -> set[tuple[str, int]]:
        """Write what the batch decided; the (conversation, user) entries whose
        mark a read that moved nothing cleared."""
        # On PostgreSQL the bulk writes go out as one statement (store/merged.py);
        # it is flushed before any other statement, which keeps their order.
        writes = MergedWrites(self.conn)
        if message_rows:
            writes.insert(messages, _MESSAGE_FIELDS, message_rows)
        if self.rich_rows:
            writes.insert(messages, _ALL_FIELDS, [tuple(v) for v in self.rich_rows])
        changed = [row.values for row in self.rows.values() if row.changed and not row.new]
        targets = [(v[0], v[1], v[3], v[15], v[16]) for v in changed]
        if targets:  # the stored messages recalled or edited by this batch, in one statement
            writes.update(
                messages,
                ("conversation_id", "seq"),
                ("body", "recall_seq", "edited_at"),
                targets,
            )
        if self.uncounted_rows:
            writes.insert(uncounted, ("conversation_id", "seq"), self.uncounted_rows)
        if self.unguard:
            writes.flush()  # this UPDATE may meet a row the positions' update writes
            self.conn.execute(
                update(conversations)
                .where(conversations.c.id.in_(self.unguard))
                .values(guarded=False)
            )
        if self.mention_rows:
            writes.insert(mentions, ("conversation_id", "user_id", "seq"), self.mention_rows)
        if self.unmentioned:
            writes.flush()  # the DELETE must see the mentions inserted above
            self.conn.execute(
                delete(mentions).where(
                    mentions.c.conversation_id == bindparam("b_c"),
                    mentions.c.user_id == bindparam("b_u"),
                    mentions.c.seq == bindparam("b_s"),
                ),
                self.unmentioned,
            )
        if key_rows:
            writes.insert(client_msg_ids, _KEY_FIELDS, key_rows)
        dirty = [
            (cid, p.last_seq, p.last_sent_at, p.shown_seq)
            for cid, p in positions.items()
            if p.dirty
        ]
        if dirty:
            writes.update(
                conversations,
                ("id",),
                ("last_seq", "last_sent_at", "shown_seq"),
                dirty,
            )
        if moved:
            # A read position never moves backwards. A read clears the mark
            # of an entry marked unread; a send also clears the draft.
            senders = self.senders
            by_read = [(c, u, s, False) for (c, u), s in moved.items() if (c, u) not in senders]
            by_send = [
                (c, u, s, False, None, None) for (c, u), s in moved.items() if (c, u) in senders
            ]
            keys = ("conversation_id", "user_id")
            if by_read:  # by_read and by_send hold different members
                writes.update(members, keys, _READ_SETS, by_read, only_up="read_seq")
            if by_send:
                writes.update(members, keys, _SEND_SETS, by_send, only_up="read_seq")
        writes.flush()
        # A read that moves nothing clears a mark too; one statement each (they
        # are rare) so each says whether it did, and its user's devices hear.
        unmarked: set[tuple[str, int]] = set()
        for params in self.still_reads:
            if self.conn.execute(_CLEAR_MARK, params).rowcount:
                unmarked.add((params["b_c"], params["b_u"]))
        return unmarked


@dataclass(frozen=True, slots=True)
class _Guard:
    """What a guarded group's sends are checked against."""

    owner: int
    admins: frozenset[int]
    muted: dict[int, int]  # member -> muted until (epoch ms)
    muted_all: bool
    dissolved: bool


def _load_guard(conn: Connection, ref: GroupRef) -> _Guard:
    head = conn.execute(
        select(groups.c.owner_id, groups.c.muted_all, groups.c.dissolved_at).where(
            groups.c.id == ref.group
        )
    ).first()
    rows = conn.execute(
        select(members.c.user_id, members.c.role, members.c.muted_until).where(
            members.c.conversation_id == ref.id,
            or_(members.c.role == ADMIN, members.c.muted_until.is_not(None)),
        )
    )
    admins: set[int] = set()
    muted: dict[int, int] = {}
    for user, role, until in rows:
        if role == ADMIN:
            admins.add(user)
        if until is not None:
            muted[user] = int(until)
    if head is None:
        return _Guard(0, frozenset(), {}, False, False)
    return _Guard(
        head.owner_id, frozenset(admins), muted, bool(head.muted_all), head.dissolved_at is not None
    )


def _is_v1(values: list[Any]) -> bool:
    """A plain text message: its row needs only the v1 columns (the rest default)."""
    # Only a send sets these at insert (reply, forward, mentions, @all); a
    # notice is never "text", and recall_seq, edited_at come later by update.
    return (
        values[7] == "text"
        and values[8] is None
        and values[9] is None
        and values[12] is None
        and not values[13]
    )


def _plain(send: SendRequest) -> bool:
    """A v1 send: text with nothing of PROTOCOL-v2 section 2."""
    return (
        send.reply_to is None
        and send.forward is None
        and not send.mentions
        and not send.mention_all
        and send.kind == "text"
        and send.file_id is None
    )


def _mentioned_rows(values: list[Any]) -> list[int]:
    """The mention rows' users of a message row: 0 alone for @all."""
    if values[13]:
        return [0]
    return decode_ids(values[12])


_READ_SETS = ("read_seq", "marked_unread")
_SEND_SETS = ("read_seq", "marked_unread", "draft", "draft_at")
_CLEAR_MARK = (
    update(members)
    .where(
        members.c.conversation_id == bindparam("b_c"),
        members.c.user_id == bindparam("b_u"),
        members.c.marked_unread == true(),
    )
    .values(marked_unread=False)
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
_ALL_FIELDS = tuple(column.name for column in MESSAGE_COLUMNS)
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
            conversations.c.shown_seq,
            conversations.c.guarded,
        )
        .where(in_list(conversations.c.id, dialect, "ids"))
        .order_by(conversations.c.id)
        .with_for_update()
    )


@functools.cache
def _members_of(dialect: str) -> Select[Any]:
    """The members of the conversations in ``:ids`` with their read positions."""
    return (
        select(
            members.c.conversation_id,
            members.c.user_id,
            members.c.read_seq,
            members.c.joined_seq,
        )
        .where(in_list(members.c.conversation_id, dialect, "ids"))
        .order_by(members.c.conversation_id, members.c.join_rank)
    )


@functools.cache
def _joined_at_keys(dialect: str) -> Select[Any]:
    """The joined_seq of the (conversation, user) memberships of ``keys_params``."""
    return where_keys(
        select(members.c.conversation_id, members.c.user_id, members.c.joined_seq),
        dialect,
        (members.c.conversation_id, members.c.user_id),
    )


def _as_repeat(outcome: SendOutcome | None) -> SendOutcome:
    assert outcome is not None
    if isinstance(outcome, StoredMessage):
        return StoredMessage(outcome.message, fresh=False, recipients=(), target=outcome.target)
    return outcome
