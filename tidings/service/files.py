"""Uploads and downloads (PROTOCOL-v2 §3): the rules, over the blob store and the file rows.

An upload streams from the edge's chunks into the blob store; on its way
it is counted (``TIDINGS_MAX_FILE_BYTES`` is enforced while reading: the
put is aborted, and the store keeps nothing of an aborted put), its first
bytes are kept to tell its type, and an image's bytes are spooled to a
temporary file for Pillow, which runs in a small pool of threads so the
event loop never waits on a decode. The row is written last; whatever
fails after the put deletes the blobs again.

Who may read a file: its uploader, or a member who can see a message
carrying it now (after joining, not recalled); a signed link stands for
such a reader (the edge checks the signature), as long as a message still
carries the file or none ever did. Everyone else is told it does not exist.

The orphan collector deletes files no message refers to after
``TIDINGS_FILE_ORPHAN_SECONDS``: the row by a conditional DELETE that a
concurrent send cannot slip past (store/files.py), then the blobs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import IO

from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError, bad_request, not_found
from tidings.files import BlobNotFound, BlobReader, BlobStore, new_blob_key
from tidings.files.images import ImageRefused, examine
from tidings.files.sniff import HEAD_BYTES, IMAGE_TYPES, sniff, wav_duration_ms
from tidings.ids import UserId
from tidings.metrics import Metrics
from tidings.models import now_ms
from tidings.ratelimit import TokenBucket
from tidings.store import FileRecord, Store

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
# The longest recorded length a client may state for its audio (one hour):
# a voice note, not an album; anything longer is a bad request.
MAX_STATED_DURATION_MS = 3_600_000
# Bytes of an image kept in memory before its spool goes to a temporary file.
_SPOOL_IN_MEMORY = 1024 * 1024
# A blob with no row is a put whose row never came (a crash between the
# two): swept once it is this old at least, far past any upload's length.
_STRAY_BLOB_GRACE_SECONDS = 3600
_ORPHAN_PAGE = 100
# Bytes that tell every type sniff knows (WebM's doctype is the furthest in).
_SNIFF_BYTES = 64


class Files:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        """``blobs`` may come later, by ``use_blobs`` (the app opens it at start)."""
        self._records = store.files()
        self._blob_store = blobs
        self._settings = settings
        self._metrics = metrics or Metrics()
        # Two decodes at a time: each may hold a 64-megapixel image (MAX_PIXELS).
        self._images = ThreadPoolExecutor(2, thread_name_prefix="tidings-images")
        self._buckets: dict[UserId, TokenBucket] = {}

    def use_blobs(self, blobs: BlobStore) -> None:
        self._blob_store = blobs

    @property
    def _blobs(self) -> BlobStore:
        if self._blob_store is None:
            raise TidingsError(ErrorCode.UNAVAILABLE, "the file store is not open yet")
        return self._blob_store

    async def close(self) -> None:
        self._images.shutdown(wait=False, cancel_futures=True)

    # -- uploads --------------------------------------------------------------

    async def upload(
        self,
        uploader: UserId,
        name: str | None,
        chunks: AsyncIterable[bytes],
        declared_size: int | None = None,
        stated_duration_ms: int | None = None,
    ) -> FileRecord:
        """Store an upload and its row; raise ``TidingsError`` for a refusal (nothing kept).

        ``stated_duration_ms`` is the length the client recorded (a browser's
        MediaRecorder knows it; its streamed WebM or Ogg does not say it in its
        first bytes). It is kept for audio whose container gave no length,
        and ignored for anything else: what the bytes say wins.
        """
        limit = self._settings.max_file_bytes
        if stated_duration_ms is not None and not 0 < stated_duration_ms <= MAX_STATED_DURATION_MS:
            raise bad_request(f"duration_ms must be from 1 to {MAX_STATED_DURATION_MS}")
        self._rate_limit(uploader)
        if declared_size is not None and declared_size > limit:
            raise self._refuse("too_large", _too_large(limit))
        clean = clean_name(name)
        meter = _Meter(chunks, limit, self._metrics)
        key = new_blob_key()
        try:
            try:
                info = await self._blobs.put(key, meter)
            except _TooLarge:
                raise self._refuse("too_large", _too_large(limit)) from None
            except _Empty:
                raise self._refuse("empty", bad_request("the file is empty")) from None
            except TidingsError:
                raise
            except Exception as error:
                if meter.cut_off:  # the client went away, or sent a broken body
                    self._metrics.uploads_refused.labels(reason="aborted").inc()
                    raise bad_request(f"the upload was cut off: {error}") from None
                self._metrics.uploads_refused.labels(reason="store").inc()
                log.warning("the blob store refused an upload: %s", error)
                raise TidingsError(
                    ErrorCode.UNAVAILABLE, "the file store is unavailable; try again"
                ) from None
            return await self._keep(
                uploader, clean, key, info.size, info.digest, meter, stated_duration_ms
            )
        finally:
            meter.close()

    async def _keep(
        self,
        uploader: UserId,
        name: str,
        key: str,
        size: int,
        digest: str,
        meter: _Meter,
        stated_duration_ms: int | None,
    ) -> FileRecord:
        """The row of a stored blob, with what its type tells; the blobs go if this fails."""
        thumbnail_key: str | None = None
        try:
            content_type = sniff(meter.head)
            width = height = duration_ms = None
            thumbnail_type = None
            if content_type in IMAGE_TYPES and meter.spool is not None:
                loop = asyncio.get_running_loop()
                try:
                    facts = await loop.run_in_executor(self._images, examine, meter.spool)
                except ImageRefused as error:
                    raise self._refuse("image", bad_request(f"image refused: {error}")) from None
                width, height = facts.width, facts.height
                thumbnail_key, thumbnail_type = new_blob_key(), facts.thumbnail_type
                await self._blobs.put(thumbnail_key, _once(facts.thumbnail))
            elif content_type == "audio/wav":
                duration_ms = wav_duration_ms(meter.head)
            if content_type.startswith("audio/") and duration_ms is None:
                duration_ms = stated_duration_ms
            record = FileRecord(
                id=secrets.token_hex(16),
                uploader=uploader,
                name=name,
                size=size,
                content_type=content_type,
                width=width,
                height=height,
                duration_ms=duration_ms,
                blob_key=key,
                thumbnail_key=thumbnail_key,
                thumbnail_type=thumbnail_type,
                digest=digest,
                created_at=now_ms(),
            )
            await self._records.add(record)
        except BaseException:
            for stored in (key, thumbnail_key):
                if stored is not None:
                    try:
                        await self._blobs.delete(stored)
                    except Exception:  # the collector's stray-blob sweep gets it later
                        log.warning("could not delete blob %s of a refused upload", stored)
            raise
        self._metrics.file_bytes_stored.inc(size)
        return record

    def _refuse(self, reason: str, error: TidingsError) -> TidingsError:
        self._metrics.uploads_refused.labels(reason=reason).inc()
        return error

    def _rate_limit(self, user: UserId) -> None:
        per_minute = self._settings.rate_limit_uploads
        if per_minute <= 0:
            return
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets = {u: b for u, b in self._buckets.items() if not b.idle()}
            bucket = self._buckets[user] = TokenBucket(per_minute / 60, burst=per_minute)
        if not bucket.take():
            raise self._refuse(
                "rate_limited",
                TidingsError(ErrorCode.RATE_LIMITED, f"at most {per_minute:g} uploads a minute"),
            )

    # -- downloads ------------------------------------------------------------

    async def readable(self, file_id: str, reader: UserId | None) -> FileRecord:
        """The file if ``reader`` may read it (None: the bearer of a valid signed
        link); ``not_found`` otherwise, so a stranger learns nothing."""
        record = await self._records.get(file_id) if _is_file_id(file_id) else None
        if record is not None:
            if reader is None:
                if await self._records.live(file_id):
                    return record
            elif record.uploader == reader or await self._records.visible_to(file_id, reader):
                return record
        raise not_found(f"no file {file_id!r}")

    async def read(
        self, record: FileRecord, *, thumbnail: bool, start: int = 0, end: int | None = None
    ) -> BlobReader:
        """The bytes (or the thumbnail's); ``RangeNotSatisfiable`` or ``not_found`` before any."""
        key = record.thumbnail_key if thumbnail else record.blob_key
        if key is None:
            raise not_found(f"file {record.id} has no thumbnail")
        try:
            return await self._blobs.read(key, start, end)
        except BlobNotFound:
            raise not_found(f"no file {record.id!r}") from None

    # -- orphans --------------------------------------------------------------

    async def collect_orphans(self, now: int | None = None) -> int:
        """Delete files no message refers to (and stray blobs); how many files went."""
        now = now_ms() if now is None else now
        cutoff = now - int(self._settings.file_orphan_seconds * 1000)
        deleted = 0
        for _ in range(1000):  # bounded: a page that deletes nothing ends it
            page = await self._records.orphans(cutoff, _ORPHAN_PAGE)
            gone = 0
            for orphan in page:
                # The row first: a row never names a blob that is gone.
                if await self._records.delete_orphan(orphan, cutoff):
                    gone += 1
                    for key in (orphan.blob_key, orphan.thumbnail_key):
                        if key is not None:
                            await self._blobs.delete(key)
            deleted += gone
            if len(page) < _ORPHAN_PAGE or gone == 0:
                break
        await self._sweep_stray_blobs(now)
        return deleted

    async def _sweep_stray_blobs(self, now: int) -> None:
        grace = max(self._settings.file_orphan_seconds, _STRAY_BLOB_GRACE_SECONDS)
        before = datetime.fromtimestamp(now / 1000 - grace, UTC)
        keys: list[str] = []
        async for key in self._blobs.keys_older_than(before):
            keys.append(key)
            if len(keys) >= 500:
                await self._delete_unknown(keys)
                keys = []
        if keys:
            await self._delete_unknown(keys)

    async def _delete_unknown(self, keys: list[str]) -> None:
        known = await self._records.known_keys(keys)
        for key in keys:
            if key not in known:
                await self._blobs.delete(key)

    async def run_collector(self) -> None:
        """Collect orphans every so often, for ever (cancel the task to stop)."""
        every = max(1.0, min(3600.0, self._settings.file_orphan_seconds / 4))
        while True:
            await asyncio.sleep(every)
            try:
                deleted = await self.collect_orphans()
                if deleted:
                    log.info("deleted %d files no message refers to", deleted)
            except Exception:
                log.exception("the orphan collector failed; it runs again later")


def clean_name(name: str | None) -> str:
    """A file name safe to show and to put in a header: its last path part, no
    control or bidi-override characters, at most ``MAX_NAME_CHARS`` (the
    extension kept); ``file`` when nothing is left."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    text = text.strip().strip(".").strip()
    if len(text) > MAX_NAME_CHARS:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            text = stem[: MAX_NAME_CHARS - len(extension) - 1] + "." + extension
        else:
            text = text[:MAX_NAME_CHARS]
    return text or "file"


def _is_file_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _too_large(limit: int) -> TidingsError:
    return TidingsError(ErrorCode.TOO_LARGE, f"a file may have at most {limit} bytes")


class _TooLarge(Exception):
    pass


class _Empty(Exception):
    pass


class _Meter:
    """The upload's chunks on their way to the store: counted against the limit,
    the first ``HEAD_BYTES`` kept to sniff, an image's bytes spooled for Pillow."""

    def __init__(self, chunks: AsyncIterable[bytes], limit: int, metrics: Metrics) -> None:
        self._chunks = chunks
        self._limit = limit
        self._metrics = metrics
        self.head = b""
        self.spool: IO[bytes] | None = None
        self.size = 0
        # Whether reading the upload failed (a client gone), not the store.
        self.cut_off = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        held: list[bytes] = []  # the chunks before the type is known (a few bytes)
        decided = False
        async for chunk in self._source():
            if not chunk:
                continue
            self.size += len(chunk)
            self._metrics.file_bytes_received.inc(len(chunk))
            if self.size > self._limit:
                raise _TooLarge
            if len(self.head) < HEAD_BYTES:
                self.head += chunk[: HEAD_BYTES - len(self.head)]
            if decided:
                if self.spool is not None:
                    await asyncio.to_thread(self.spool.write, chunk)
            else:
                held.append(chunk)
                if len(self.head) >= _SNIFF_BYTES:
                    decided = True
                    await self._start_spool(held)
                    held = []
            yield chunk
        if self.size == 0:
            raise _Empty
        if not decided:
            await self._start_spool(held)
        if self.spool is not None:
            await asyncio.to_thread(self.spool.seek, 0)

    async def _source(self) -> AsyncIterator[bytes]:
        """The edge's chunks, noting whether they (not the store) failed."""
        chunks = aiter(self._chunks)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except Exception:
                self.cut_off = True
                raise
            yield chunk

    async def _start_spool(self, held: list[bytes]) -> None:
        if sniff(self.head) in IMAGE_TYPES:
            # Closed by close(), whatever happens to the upload: not a with-block.
            self.spool = tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY)  # noqa: SIM115
            for chunk in held:
                await asyncio.to_thread(self.spool.write, chunk)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
