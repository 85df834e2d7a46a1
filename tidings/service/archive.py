"""History beyond the hot table (issue 23 §3): old messages in Parquet files.

``Archiver.run`` walks every conversation and moves its messages older than
a cut-off (never its newest one) into segments of at most
``rows_per_segment`` rows: one zstd-compressed Parquet file each, in the
blob store that holds uploads (a folder by default, S3 on many nodes), with
a manifest row in SQL. ``Archiver.restore`` brings segments back. The SQL
side and why a kill at any point loses and repeats nothing:
store/archive.py.

``ParquetSegments`` reads segments back for history (the store reads
through it): a segment is written in row groups of ``ROW_GROUP_ROWS`` with
seq statistics, so a page decodes one or two groups, not the file. Blobs
are cached by key (a segment never changes: a restore deletes it), up to
``cache_bytes``.

Parquet through pyarrow (the ``archive`` extra): the format every data tool
reads, so an archive is also an export; pyarrow is imported only when a
segment is written or read.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tidings.errors import unavailable
from tidings.files import BlobNotFound, BlobStore
from tidings.ids import ConversationId
from tidings.metrics import Metrics
from tidings.models import now_ms
from tidings.store import MESSAGE_FIELDS as COLUMN_NAMES
from tidings.store import SEQ_FIELD as SEQ
from tidings.store import ArchiveRecord, MessageRow, Segment

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 1024
ROWS_PER_SEGMENT = 10_000
FORMAT = "tidings.messages/1"  # the files' key-value metadata, checked on read
_BOOLEAN = {"time_separator", "mention_all"}
_INTEGER = {
    "seq",
    "sender_id",
    "sent_at",
    "reply_seq",
    "forward_seq",
    "forward_sender",
    "target_seq",
    "recall_seq",
    "edited_at",
}
_PAGE = 500
PROGRESS_SECONDS = 10.0


def require_pyarrow() -> None:
    """Raise ``ModuleNotFoundError`` (naming pyarrow) unless it is installed."""
    import pyarrow  # noqa: F401


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ModuleNotFoundError:
        raise unavailable(
            "archived history needs pyarrow: pip install 'tidings[archive]'"
        ) from None
    return pyarrow


def encode(rows: Sequence[MessageRow]) -> bytes:
    """Rows in ``MESSAGE_COLUMNS`` order, oldest first, as one Parquet file."""
    pa = _pyarrow()
    fields = []
    for name in COLUMN_NAMES:
        kind = pa.bool_() if name in _BOOLEAN else pa.int64() if name in _INTEGER else pa.string()
        fields.append(pa.field(name, kind, nullable=name not in ("seq", "conversation_id")))
    schema = pa.schema(fields, metadata={"format": FORMAT})
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(
            [None if v is None else bool(v) for v in column] if name in _BOOLEAN else list(column),
            type=field.type,
        )
        for name, field, column in zip(COLUMN_NAMES, fields, columns, strict=True)
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    sink = io.BytesIO()
    pa.parquet.write_table(
        table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=["seq"]
    )
    return sink.getvalue()


def decode(
    data: bytes, low: int, high: int, limit: int | None = None, newest: bool = False
) -> list[MessageRow]:
    """The file's rows with ``low < seq < high``, oldest first, in ``MESSAGE_COLUMNS``
    order; with ``limit``, only that many: the newest of them, or the oldest.

    Row groups are skipped by their seq statistics, and with a limit only the
    groups that hold the rows wanted are decoded (a page of 50 decodes one
    or two groups of 1,024, not the file).
    """
    pa = _pyarrow()
    import pyarrow.compute as pc

    parquet = pa.parquet.ParquetFile(io.BytesIO(data))
    _check_format(parquet)
    seq_column = parquet.schema_arrow.get_field_index("seq")
    groups = []
    for index in range(parquet.num_row_groups):
        stats = parquet.metadata.row_group(index).column(seq_column).statistics
        if stats is not None and stats.has_min_max and (stats.max <= low or stats.min >= high):
            continue
        groups.append(index)
    if limit is not None:
        chosen, found = [], 0
        for index in reversed(groups) if newest else groups:
            chosen.append(index)
            seqs = parquet.read_row_group(index, columns=["seq"]).column("seq")
            found += pc.sum(pc.and_(pc.greater(seqs, low), pc.less(seqs, high))).as_py() or 0
            if found >= limit:
                break
        groups = sorted(chosen)
    if not groups:
        return []
    table = parquet.read_row_groups(groups, columns=list(COLUMN_NAMES))
    seqs = table.column("seq")
    table = table.filter(pc.and_(pc.greater(seqs, low), pc.less(seqs, high)))
    if limit is not None and table.num_rows > limit:
        start = table.num_rows - limit if newest else 0
        table = table.slice(start, limit)
    columns = [table.column(name).to_pylist() for name in COLUMN_NAMES]
    return list(zip(*columns, strict=True))


def matching(data: bytes, folded: str, above: int) -> list[MessageRow]:
    """The file's rows above seq ``above`` whose body or attachment (lower-cased)
    holds ``folded``; only the columns the test needs are read for every row."""
    pa = _pyarrow()
    import pyarrow.compute as pc

    parquet = pa.parquet.ParquetFile(io.BytesIO(data))
    _check_format(parquet)
    probe = parquet.read(columns=["seq", "body", "attachment"])
    hit = pc.or_kleene(
        pc.match_substring(pc.utf8_lower(probe.column("body")), folded),
        pc.match_substring(pc.utf8_lower(probe.column("attachment")), folded),
    )
    mask = pc.and_kleene(pc.greater(probe.column("seq"), above), pc.fill_null(hit, False))
    seqs = pc.filter(probe.column("seq"), mask).to_pylist()
    if not seqs:
        return []
    wanted = set(seqs)
    return [row for row in decode(data, min(seqs) - 1, max(seqs) + 1) if row[SEQ] in wanted]


def _check_format(parquet: Any) -> None:
    metadata = parquet.schema_arrow.metadata or {}
    if metadata.get(b"format") != FORMAT.encode():
        raise ValueError(f"not a segment of this version: {metadata.get(b'format')!r}")


class ParquetSegments:
    """Archived rows read from the blob store (``store.archive.SegmentRows``)."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        cache_bytes: int = 64 * 1024 * 1024,
        metrics: Metrics | None = None,
    ) -> None:
        self._blobs = blobs
        self._metrics = metrics
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._limit = cache_bytes

    async def rows(
        self,
        segment: Segment,
        low: int,
        high: int,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[MessageRow]:
        return await self._decoded(segment, decode, low, high, limit, newest)

    async def matching(self, segment: Segment, folded: str, above: int) -> list[MessageRow]:
        return await self._decoded(segment, matching, folded, above)

    async def _decoded(
        self, segment: Segment, read: Callable[..., list[MessageRow]], *args: Any
    ) -> list[MessageRow]:
        """``read(data, *args)`` on the segment's bytes, off the event loop."""
        data = await self._bytes(segment.blob_key)
        try:
            return await asyncio.to_thread(read, data, *args)
        except (ValueError, OSError) as exc:
            log.error(
                "segment %s of %s is unreadable: %s", segment.blob_key, segment.conversation, exc
            )
            raise unavailable("archived history cannot be read; the operator is told") from exc

    async def _bytes(self, key: str) -> bytes:
        data = self._cache.get(key)
        if self._metrics is not None:
            self._metrics.archive_reads.labels("store" if data is None else "cache").inc()
        if data is not None:
            self._cache.move_to_end(key)
            return data
        try:
            data = await read_blob(self._blobs, key)
        except BlobNotFound as exc:
            raise LookupError(key) from exc
        if len(data) <= self._limit // 4:
            self._cache[key] = data
            self._cached += len(data)
            while self._cached > self._limit:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= len(dropped)
        return data


async def read_blob(blobs: BlobStore, key: str) -> bytes:
    async with await blobs.read(key) as reader:
        return b"".join([chunk async for chunk in reader])


@dataclass(slots=True)
class ArchiveReport:
    """What a run moved (or brought back): segments, messages and their bytes."""

    segments: int = 0
    messages: int = 0
    bytes: int = 0
    conversations: int = 0
    # Ranges left for the next run: changed while they were read, or taken by another archiver.
    skipped: int = 0


class Archiver:
    """Moves old history into segments and back (store/archive.py: the SQL side)."""

    def __init__(
        self, archive: ArchiveRecord, blobs: BlobStore, *, rows_per_segment: int = ROWS_PER_SEGMENT
    ) -> None:
        self._archive = archive
        self._blobs = blobs
        self._rows_per_segment = rows_per_segment

    async def run(self, older_than_seconds: float) -> ArchiveReport:
        """Archive every conversation's messages sent more than ``older_than_seconds`` ago."""
        cutoff = now_ms() - int(older_than_seconds * 1000)
        report = ArchiveReport()
        said = time.monotonic()
        async for conversation in self._walk():
            moved = await self.archive_conversation(conversation, cutoff, report)
            report.conversations += 1 if moved else 0
            if time.monotonic() - said >= PROGRESS_SECONDS:  # a long run says it is alive
                said = time.monotonic()
                log.info(
                    "archiving: %d messages of %d conversations so far, at %s",
                    report.messages,
                    report.conversations,
                    conversation,
                )
        return report

    async def archive_conversation(
        self, conversation: ConversationId, cutoff_ms: int, report: ArchiveReport
    ) -> bool:
        """Move the conversation's messages sent before ``cutoff_ms``; whether any moved."""
        moved = False
        while True:
            pending = await self._archive.pending(conversation, cutoff_ms, self._rows_per_segment)
            if pending is None:
                return moved
            # Off the event loop: a node archiving on its schedule keeps serving.
            data = await asyncio.to_thread(encode, pending.rows)
            key = f"archive-{secrets.token_hex(16)}"
            await self._blobs.put(key, _once(data))
            try:
                segment = await self._archive.commit(pending, key, len(data))
            except BaseException:
                await _forget(self._blobs, key)
                raise
            if segment is None:
                await _forget(self._blobs, key)
                report.skipped += 1
                return moved
            moved = True
            report.segments += 1
            report.messages += segment.message_count
            report.bytes += len(data)
            if len(pending.rows) < self._rows_per_segment:
                return moved

    async def restore(
        self, conversation: ConversationId | None = None, newer_than_ms: int | None = None
    ) -> ArchiveReport:
        """Bring segments back into the live table, newest first: every one of
        ``conversation`` (or of all conversations), or only those holding
        messages sent at or after ``newer_than_ms``."""
        report = ArchiveReport()
        if conversation is not None:
            wanted: AsyncIterator[ConversationId] = _one(conversation)
        else:
            wanted = self._walk(archived=True)
        async for cid in wanted:
            restored = False
            for segment in await self._archive.segments_of(cid):
                if newer_than_ms is not None and segment.last_sent_at < newer_than_ms:
                    break
                if not await self._restore(segment, report):
                    break
                restored = True
            report.conversations += 1 if restored else 0
        return report

    async def bring_back(self, conversation: ConversationId, seq: int) -> bool:
        """Restore the conversation's segments, newest first, down to the one
        holding ``seq`` (a prefix stays archived); whether ``seq`` is live now.

        For a write that names an archived message (a reply, a forward, a
        recall): the write runs on live rows, and the next archiving run
        moves them out again.
        """
        report = ArchiveReport()
        segments = await self._archive.segments_of(conversation)
        if not segments or segments[0].high_seq < seq:
            return False
        for segment in segments:
            if not await self._restore(segment, report):
                return False
            if segment.low_seq <= seq:
                return True
        return False

    async def _restore(self, segment: Segment, report: ArchiveReport) -> bool:
        """One segment back into the live table; False if another run took it first."""
        try:
            data = await read_blob(self._blobs, segment.blob_key)
        except BlobNotFound:
            report.skipped += 1  # restored by another run meanwhile
            return False
        rows = await asyncio.to_thread(decode, data, 0, 2**63 - 1)
        if not await self._archive.restore(segment, rows):
            report.skipped += 1
            return False
        await _forget(self._blobs, segment.blob_key)
        report.segments += 1
        report.messages += len(rows)
        report.bytes += len(data)
        return True

    async def _walk(self, *, archived: bool = False) -> AsyncIterator[ConversationId]:
        after = ""
        while True:
            if archived:
                page = await self._archive.archived_conversations_after(after, _PAGE)
            else:
                page = await self._archive.conversations_after(after, _PAGE)
            for conversation in page:
                yield conversation
            if len(page) < _PAGE:
                return
            after = page[-1]


async def run_schedule(
    archiver: Archiver,
    older_than_seconds: float,
    every_seconds: float,
    metrics: Metrics | None = None,
) -> None:
    """Archive every ``every_seconds``, for ever (cancel the task to stop). Nodes
    that run it together are safe (store/archive.py); a failed run is retried."""
    while True:
        # Nodes started together would run together: each waits its own while.
        await asyncio.sleep(every_seconds * random.uniform(0.75, 1.25))
        try:
            report = await archiver.run(older_than_seconds)
            if metrics is not None:
                metrics.archive_moved.inc(report.messages)
            if report.messages:
                log.info(
                    "archived %d messages of %d conversations in %d segments (%d bytes)",
                    report.messages,
                    report.conversations,
                    report.segments,
                    report.bytes,
                )
        except Exception:
            log.exception("archiving failed; it runs again later")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _one(conversation: ConversationId) -> AsyncIterator[ConversationId]:
    yield conversation


async def _forget(blobs: BlobStore, key: str) -> None:
    try:
        await blobs.delete(key)
    except Exception:  # the stray-blob sweep deletes it later
        log.warning("could not delete blob %s; the stray-blob sweep will", key)
