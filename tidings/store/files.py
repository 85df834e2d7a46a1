"""The uploads' rows on SQL (``store.FileRecords`` states the guarantees).

Why a send and the orphan collector cannot lose a file between them: the
send's batch moves the file row's ``attach_seq`` (and ``attached_at``)
before it inserts its message, in one transaction; the collector deletes
with one statement whose WHERE names the ``attach_seq`` it found:

    DELETE FROM files WHERE id = :id AND attach_seq = :seen
      AND created_at < :cutoff AND (attached_at IS NULL OR attached_at < :cutoff)
      AND NOT EXISTS (a message carrying it, not recalled)

Both lock the row. If the send locks it first, the DELETE waits, then reads
the row as the send committed it (PostgreSQL re-checks the WHERE on the new
row version under READ COMMITTED; InnoDB's DELETE reads the latest one; on
SQLite one writer runs at a time): ``attach_seq`` moved, so nothing is
deleted. The ``NOT EXISTS`` alone is not enough: PostgreSQL's re-check runs
the subquery with the statement's old snapshot, which does not see the
send's message (the first version of this module lost files so, and
tests/test_files.py's race caught it). If the collector locks the row
first, the send's UPDATE finds no row and the send fails with
``not_found``. The blob is deleted only after the row, so a row never
names a missing blob.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Insert, and_, delete, exists, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.schema import Table

from tidings.errors import unavailable
from tidings.ids import UserId
from tidings.models import now_ms
from tidings.store import FileRecord, Orphan
from tidings.store.schema import (
    archive_segments,
    archived_files,
    files,
    members,
    messages,
    secrets,
)

_IN_CHUNK = 500


def _live_reference() -> Any:
    """A message that carries the file (of ``files``'s row) and is not recalled,
    live or archived (``archived_files`` lists the archived ones)."""
    return or_(
        exists().where(messages.c.file_id == files.c.id, messages.c.recall_seq.is_(None)),
        exists().where(archived_files.c.file_id == files.c.id),
    )


def _orphaned(cutoff: int) -> Any:
    return and_(
        files.c.created_at < cutoff,
        or_(files.c.attached_at.is_(None), files.c.attached_at < cutoff),
        ~_live_reference(),
    )


class SqlFiles:
    def __init__(self, engine: AsyncEngine, insert_ignore: Callable[[Table], Insert]) -> None:
        self._engine = engine
        self._insert_ignore = insert_ignore

    async def add(self, record: FileRecord) -> None:
        await self._write(insert(files).values(**_values(record)))

    async def get(self, file_id: str) -> FileRecord | None:
        rows = await self._read(select(files).where(files.c.id == file_id))
        return record_from_row(rows[0]) if rows else None

    async def visible_to(self, file_id: str, user: UserId) -> bool:
        query = (
            select(messages.c.seq)
            .select_from(
                messages.join(
                    members,
                    and_(
                        members.c.conversation_id == messages.c.conversation_id,
                        members.c.user_id == user,
                    ),
                )
            )
            .where(
                messages.c.file_id == file_id,
                messages.c.recall_seq.is_(None),
                messages.c.seq > members.c.joined_seq,
            )
            .limit(1)
        )
        if await self._read(query):
            return True
        archived = (
            select(archived_files.c.seq)
            .select_from(
                archived_files.join(
                    members,
                    and_(
                        members.c.conversation_id == archived_files.c.conversation_id,
                        members.c.user_id == user,
                    ),
                )
            )
            .where(archived_files.c.file_id == file_id, archived_files.c.seq > members.c.joined_seq)
            .limit(1)
        )
        return bool(await self._read(archived))

    async def live(self, file_id: str) -> bool:
        query = select(files.c.id).where(
            files.c.id == file_id,
            or_(files.c.attached_at.is_(None), _live_reference()),
        )
        return bool(await self._read(query))

    async def orphans(self, cutoff: int, limit: int) -> list[Orphan]:
        query = (
            select(files.c.id, files.c.blob_key, files.c.thumbnail_key, files.c.attach_seq)
            .where(_orphaned(cutoff))
            .order_by(files.c.created_at)
            .limit(limit)
        )
        rows = await self._read(query)
        return [Orphan(r.id, r.blob_key, r.thumbnail_key, int(r.attach_seq)) for r in rows]

    async def delete_orphan(self, orphan: Orphan, cutoff: int) -> bool:
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(files).where(
                        files.c.id == orphan.id,
                        files.c.attach_seq == orphan.attach_seq,
                        _orphaned(cutoff),
                    )
                )
                return bool(result.rowcount)
        except SQLAlchemyError as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        known: set[str] = set()
        wanted = list(keys)
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = await self._read(
                select(files.c.blob_key, files.c.thumbnail_key).where(
                    or_(files.c.blob_key.in_(chunk), files.c.thumbnail_key.in_(chunk))
                )
            )
            for row in rows:
                known.update(k for k in (row.blob_key, row.thumbnail_key) if k is not None)
            # The archive's segments share the blob store (store/archive.py).
            segments = await self._read(
                select(archive_segments.c.blob_key).where(archive_segments.c.blob_key.in_(chunk))
            )
            known.update(row.blob_key for row in segments)
        return known

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        # Insert-if-absent, then read: nodes starting together all read the winner's.
        await self._write(
            self._insert_ignore(secrets).values(name=name, value=make(), created_at=now_ms())
        )
        rows = await self._read(select(secrets.c.value).where(secrets.c.name == name))
        return str(rows[0].value)

    async def _read(self, query: Any) -> list[Any]:
        try:
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        except SQLAlchemyError as exc:
            raise unavailable("storage is unavailable; try again") from exc

    async def _write(self, statement: Any) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement)
        except SQLAlchemyError as exc:
            raise unavailable("storage is unavailable; try again") from exc


def _values(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "uploader_id": record.uploader,
        "name": record.name,
        "size": record.size,
        "content_type": record.content_type,
        "width": record.width,
        "height": record.height,
        "duration_ms": record.duration_ms,
        "blob_key": record.blob_key,
        "thumbnail_key": record.thumbnail_key,
        "thumbnail_type": record.thumbnail_type,
        "digest": record.digest,
        "created_at": record.created_at,
        "attached_at": record.attached_at,
        "attach_seq": record.attach_seq,
    }


def record_from_row(row: Any) -> FileRecord:
    return FileRecord(
        id=row.id,
        uploader=UserId(row.uploader_id),
        name=row.name,
        size=int(row.size),
        content_type=row.content_type,
        width=row.width,
        height=row.height,
        duration_ms=row.duration_ms,
        blob_key=row.blob_key,
        thumbnail_key=row.thumbnail_key,
        thumbnail_type=row.thumbnail_type,
        digest=row.digest,
        created_at=int(row.created_at),
        attached_at=None if row.attached_at is None else int(row.attached_at),
        attach_seq=int(row.attach_seq),
    )


def attachment_of(record: FileRecord) -> dict[str, Any]:
    """The file object a message keeps (PROTOCOL-v2 §3, without its links: the
    edge signs those afresh whenever it sends the message)."""
    return {
        "id": record.id,
        "name": record.name,
        "size": record.size,
        "content_type": record.content_type,
        "width": record.width,
        "height": record.height,
        "duration_ms": record.duration_ms,
        "thumbnail": record.thumbnail_key is not None,
    }
