"""The archive's SQL side (issue 23 §3): which of a conversation's oldest
messages live in Parquet segments in the blob store, moving them there and
back, and the look-ups history makes to read through them.

What is archived is always a prefix of a conversation: seqs up to some
``high_seq``, never its shown message (the chat list's last message stays
live), so every live row lies above every segment.

Why moving is crash-safe (``tidings archive`` may be killed at any point):

1. ``pending`` reads the rows to move, after reading the conversation's
   ``last_seq``; the archiver writes them to a blob under a fresh key.
2. ``commit`` runs one transaction: it locks the conversation's row (the
   lock every send, recall and edit of that conversation takes), checks that
   no recall or edit notice above the ``last_seq`` it read targets the range
   (so the blob holds the rows as they are now), inserts the manifest row and
   the archived files, and deletes the range from ``messages``, checking it
   deleted exactly the rows it wrote.

A crash before (2) commits leaves a blob no manifest row names: nothing is
lost, and the blob store's stray-blob sweep (service/files.py) deletes it
once it is a day old. After (2) the rows are in the blob and nowhere else.
Two archivers on one conversation start at the same seq: the manifest's
primary key (conversation, low_seq) lets one commit, the other rolls back.
``restore`` is the same in reverse: the rows go back into ``messages`` and
the manifest row goes, in one transaction; the blob is deleted after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tidings.errors import unavailable
from tidings.ids import ConversationId, UserId
from tidings.models import now_ms
from tidings.store import MESSAGE_FIELDS, MessageRow, Pending, Segment
from tidings.store.engines import lost_a_race
from tidings.store.rows import MESSAGE_COLUMNS
from tidings.store.schema import (
    archive_segments,
    archived_files,
    client_msg_ids,
    conversations,
    members,
    messages,
)

# Where the columns sit in a row of MESSAGE_COLUMNS.
SEQ, SENDER, CLIENT_MSG_ID, SENT_AT, RECALL_SEQ, FILE_ID = 1, 2, 4, 5, 15, 18
COLUMN_NAMES = tuple(column.name for column in MESSAGE_COLUMNS)
assert COLUMN_NAMES == MESSAGE_FIELDS, "store.MESSAGE_FIELDS must name MESSAGE_COLUMNS in order"


class SqlArchive:
    """The manifest, and the transactions that move rows in and out of ``messages``."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader

    # -- archiving -----------------------------------------------------------

    async def conversations_after(self, after: str, limit: int) -> list[ConversationId]:
        """Conversation ids above ``after``, in order: what a run walks through."""
        rows = await self._read(
            select(conversations.c.id)
            .where(conversations.c.id > after)
            .order_by(conversations.c.id)
            .limit(limit)
        )
        return [ConversationId(r.id) for r in rows]

    async def pending(
        self, conversation: ConversationId, cutoff_ms: int, limit: int
    ) -> Pending | None:
        """Up to ``limit`` of the conversation's oldest live messages sent before
        ``cutoff_ms``, stopping at the first newer one and below the shown
        message; None when there are none."""
        try:
            async with self._reader.connect() as conn:
                head = (
                    await conn.execute(
                        select(conversations.c.last_seq, conversations.c.shown_seq).where(
                            conversations.c.id == conversation
                        )
                    )
                ).first()
                if head is None:
                    return None
                # The oldest live message first, alone: most conversations of
                # a run have nothing old enough, and this answers for them.
                oldest = (
                    await conn.execute(
                        select(messages.c.sent_at)
                        .where(
                            messages.c.conversation_id == conversation,
                            messages.c.seq < head.shown_seq,
                        )
                        .order_by(messages.c.seq)
                        .limit(1)
                    )
                ).first()
                if oldest is None or oldest.sent_at >= cutoff_ms:
                    return None
                found = await conn.execute(
                    select(*MESSAGE_COLUMNS)
                    .where(
                        messages.c.conversation_id == conversation,
                        messages.c.seq < head.shown_seq,
                    )
                    .order_by(messages.c.seq)
                    .limit(limit)
                )
                rows: list[MessageRow] = []
                for row in found:
                    if row[SENT_AT] >= cutoff_ms:
                        break
                    rows.append(tuple(row))
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc
        if not rows:
            return None
        return Pending(conversation, int(head.last_seq), rows)

    async def commit(self, pending: Pending, blob_key: str, blob_size: int) -> Segment | None:
        """Record the blob as the rows' segment and delete them from ``messages``,
        in one transaction; None (and nothing changed) if the rows changed since
        they were read or another archiver got there first."""
        rows = pending.rows
        cid = pending.conversation
        low, high = rows[0][SEQ], rows[-1][SEQ]
        segment = Segment(
            conversation=cid,
            low_seq=low,
            high_seq=high,
            message_count=len(rows),
            first_sent_at=min(r[SENT_AT] for r in rows),
            last_sent_at=max(r[SENT_AT] for r in rows),
            blob_key=blob_key,
            blob_size=blob_size,
        )
        with_files = [
            {"conversation_id": cid, "seq": r[SEQ], "file_id": r[FILE_ID]}
            for r in rows
            if r[FILE_ID] is not None and r[RECALL_SEQ] is None
        ]
        try:
            async with self._writer.begin() as conn:
                if not await self._unchanged(conn, pending, high):
                    await conn.rollback()
                    return None
                await conn.execute(insert(archive_segments).values(_segment_values(segment)))
                if with_files:
                    await conn.execute(insert(archived_files), with_files)
                gone = await conn.execute(
                    delete(messages).where(
                        messages.c.conversation_id == cid,
                        messages.c.seq >= low,
                        messages.c.seq <= high,
                    )
                )
                if gone.rowcount != len(rows):
                    await conn.rollback()
                    return None
                # Idempotency keys go with their messages (a client retries
                # within minutes, not months); restore puts them back.
                keys = [
                    {"b_s": r[SENDER], "b_k": r[CLIENT_MSG_ID], "b_c": cid, "b_q": r[SEQ]}
                    for r in rows
                    if r[CLIENT_MSG_ID] is not None
                ]
                if keys:
                    await conn.execute(_FORGET_KEY, keys)
        except IntegrityError:
            return None  # another archiver committed this range first
        except (SQLAlchemyError, OSError) as exc:
            if lost_a_race(exc):
                return None  # the next run tries again
            raise unavailable("storage is unavailable; try again") from exc
        return segment

    async def _unchanged(self, conn: AsyncConnection, pending: Pending, high: int) -> bool:
        """Under the conversation's lock: no recall or edit since the read touched the range."""
        locked = (
            await conn.execute(
                select(conversations.c.last_seq)
                .where(conversations.c.id == pending.conversation)
                .with_for_update()
            )
        ).first()
        if locked is None:
            return False  # the group was deleted
        if locked.last_seq == pending.seen_last_seq:
            return True
        touched = await conn.execute(
            select(messages.c.seq)
            .where(
                messages.c.conversation_id == pending.conversation,
                messages.c.seq > pending.seen_last_seq,
                messages.c.target_seq <= high,
            )
            .limit(1)
        )
        return touched.first() is None

    # -- restoring -------------------------------------------------------------

    async def segments_of(self, conversation: ConversationId) -> list[Segment]:
        """The conversation's segments, newest first."""
        rows = await self._read(
            select(archive_segments)
            .where(archive_segments.c.conversation_id == conversation)
            .order_by(archive_segments.c.low_seq.desc())
        )
        return [_segment_from_row(r) for r in rows]

    async def archived_conversations_after(self, after: str, limit: int) -> list[ConversationId]:
        """Conversations with segments, ids above ``after``, in order."""
        rows = await self._read(
            select(archive_segments.c.conversation_id)
            .where(archive_segments.c.conversation_id > after)
            .group_by(archive_segments.c.conversation_id)
            .order_by(archive_segments.c.conversation_id)
            .limit(limit)
        )
        return [ConversationId(r.conversation_id) for r in rows]

    async def restore(self, segment: Segment, rows: Sequence[MessageRow]) -> bool:
        """Put the segment's rows back into ``messages`` and forget the segment, in one
        transaction; False (nothing changed) if it is not the conversation's
        newest segment any more or is gone."""
        values = [dict(zip(COLUMN_NAMES, row, strict=True)) for row in rows]
        cid = segment.conversation
        try:
            async with self._writer.begin() as conn:
                await conn.execute(
                    select(conversations.c.last_seq)
                    .where(conversations.c.id == cid)
                    .with_for_update()
                )
                newest = (
                    await conn.execute(
                        select(func.max(archive_segments.c.low_seq)).where(
                            archive_segments.c.conversation_id == cid
                        )
                    )
                ).scalar()
                if newest != segment.low_seq:
                    await conn.rollback()
                    return False
                gone = await conn.execute(
                    delete(archive_segments).where(
                        archive_segments.c.conversation_id == cid,
                        archive_segments.c.low_seq == segment.low_seq,
                        archive_segments.c.blob_key == segment.blob_key,
                    )
                )
                if gone.rowcount != 1:
                    await conn.rollback()
                    return False
                await conn.execute(
                    delete(archived_files).where(
                        archived_files.c.conversation_id == cid,
                        archived_files.c.seq >= segment.low_seq,
                        archived_files.c.seq <= segment.high_seq,
                    )
                )
                if values:
                    await conn.execute(insert(messages), values)
                keys = [
                    {
                        "sender_id": r[SENDER],
                        "client_msg_id": r[CLIENT_MSG_ID],
                        "conversation_id": cid,
                        "seq": r[SEQ],
                    }
                    for r in rows
                    if r[CLIENT_MSG_ID] is not None
                ]
                if keys:  # unless a new message took the key meanwhile
                    await conn.execute(_insert_ignore(conn.dialect.name), keys)
        except (SQLAlchemyError, OSError) as exc:
            if lost_a_race(exc):
                return False
            raise unavailable("storage is unavailable; try again") from exc
        return True

    # -- reading through ---------------------------------------------------------

    async def overlapping(
        self, conn: AsyncConnection, conversation: ConversationId, low: int, high: int
    ) -> list[Segment]:
        """The conversation's segments holding seqs with ``low < seq < high``, oldest first."""
        rows = await conn.execute(
            select(archive_segments)
            .where(
                archive_segments.c.conversation_id == conversation,
                archive_segments.c.high_seq > low,
                archive_segments.c.low_seq < high,
            )
            .order_by(archive_segments.c.low_seq)
        )
        return [_segment_from_row(r) for r in rows]

    async def holding(
        self, positions: Sequence[tuple[ConversationId, int]]
    ) -> dict[tuple[ConversationId, int], Segment]:
        """The segment that holds each position, for those archived: one query
        per conversation."""
        wanted: dict[ConversationId, list[int]] = {}
        for conversation, seq in positions:
            wanted.setdefault(conversation, []).append(seq)
        found: dict[tuple[ConversationId, int], Segment] = {}
        for conversation, seqs in wanted.items():
            rows = await self._read(
                select(archive_segments).where(
                    archive_segments.c.conversation_id == conversation,
                    archive_segments.c.low_seq <= max(seqs),
                    archive_segments.c.high_seq >= min(seqs),
                )
            )
            segments = [_segment_from_row(r) for r in rows]
            for seq in seqs:
                for segment in segments:
                    if segment.low_seq <= seq <= segment.high_seq:
                        found[(conversation, seq)] = segment
        return found

    async def searchable(
        self,
        conn: AsyncConnection,
        user: UserId,
        conversation: ConversationId | None,
        *,
        not_after: int | None,
        not_before: int | None,
    ) -> list[tuple[Segment, int]]:
        """The segments of the user's conversations (or of ``conversation``) that
        hold messages after its join sent within the bounds, each with the
        user's ``joined_seq`` there."""
        query = (
            select(archive_segments, members.c.joined_seq)
            .join(
                members,
                and_(
                    members.c.conversation_id == archive_segments.c.conversation_id,
                    members.c.user_id == user,
                ),
            )
            .where(archive_segments.c.high_seq > members.c.joined_seq)
        )
        if conversation is not None:
            query = query.where(archive_segments.c.conversation_id == conversation)
        if not_after is not None:
            query = query.where(archive_segments.c.first_sent_at <= not_after)
        if not_before is not None:
            query = query.where(archive_segments.c.last_sent_at >= not_before)
        rows = await conn.execute(query)
        return [(_segment_from_row(r), int(r.joined_seq)) for r in rows]

    async def totals(self) -> tuple[int, int, int]:
        """Segments, messages and bytes in the archive."""
        row = (
            await self._read(
                select(
                    func.count(),
                    func.coalesce(func.sum(archive_segments.c.message_count), 0),
                    func.coalesce(func.sum(archive_segments.c.blob_size), 0),
                )
            )
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    async def _read(self, query: Any) -> list[Any]:
        try:
            async with self._reader.connect() as conn:
                return list((await conn.execute(query)).all())
        except (SQLAlchemyError, OSError) as exc:
            raise unavailable("storage is unavailable; try again") from exc


# The key of an archived message, if it still names that message.
_FORGET_KEY = delete(client_msg_ids).where(
    client_msg_ids.c.sender_id == bindparam("b_s"),
    client_msg_ids.c.client_msg_id == bindparam("b_k"),
    client_msg_ids.c.conversation_id == bindparam("b_c"),
    client_msg_ids.c.seq == bindparam("b_q"),
)


def _insert_ignore(dialect: str) -> Any:
    if dialect == "sqlite":
        return sqlite_insert(client_msg_ids).on_conflict_do_nothing()
    if dialect == "postgresql":
        return pg_insert(client_msg_ids).on_conflict_do_nothing()
    return mysql_insert(client_msg_ids).prefix_with("IGNORE")


def _segment_values(segment: Segment) -> dict[str, Any]:
    return {
        "conversation_id": segment.conversation,
        "low_seq": segment.low_seq,
        "high_seq": segment.high_seq,
        "message_count": segment.message_count,
        "first_sent_at": segment.first_sent_at,
        "last_sent_at": segment.last_sent_at,
        "blob_key": segment.blob_key,
        "blob_size": segment.blob_size,
        "created_at": now_ms(),
    }


def _segment_from_row(row: Any) -> Segment:
    return Segment(
        conversation=ConversationId(row.conversation_id),
        low_seq=int(row.low_seq),
        high_seq=int(row.high_seq),
        message_count=int(row.message_count),
        first_sent_at=int(row.first_sent_at),
        last_sent_at=int(row.last_sent_at),
        blob_key=row.blob_key,
        blob_size=int(row.blob_size),
    )
