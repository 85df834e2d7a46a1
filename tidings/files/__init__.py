"""The blob-store port: the bytes of uploaded files, by key, on disk or in S3.

Guarantees every adapter gives:

- ``put`` streams: it holds at most one chunk (disk) or one multipart part
  (S3) in memory, never the whole blob.
- ``put`` is all or nothing: the blob becomes visible under its key only
  when every byte is stored. A put whose chunks raise, or that is
  cancelled, leaves nothing behind: no blob, no temporary file, no pending
  multipart upload. A put to a key that exists replaces it whole.
- ``put`` answers the size and the SHA-256 of what it stored, computed while
  streaming; ``stat`` and ``read`` answer the same digest afterwards (a
  strong validator: an HTTP ``ETag``).
- ``read`` checks the key and the range before the first byte, so an HTTP
  handler can answer 404 or 416 before its headers go out.
- ``delete`` is idempotent; ``stat`` of an absent key is None.
- Keys are the server's own ids (``keys.new_blob_key``), checked by every
  method (``InvalidBlobKey``): no user input reaches a path or object name.

Adapters: ``files.disk.DiskBlobStore`` (a folder, the embedded default) and
``files.s3.S3BlobStore`` (any S3-compatible store); ``files.url`` picks one
from ``TIDINGS_FILES_URL``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from tidings.files.keys import InvalidBlobKey, check_key, new_blob_key

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobReader",
    "BlobStore",
    "InvalidBlobKey",
    "RangeNotSatisfiable",
    "check_key",
    "check_range",
    "new_blob_key",
]


class BlobNotFound(LookupError):
    """No blob under this key."""


class RangeNotSatisfiable(ValueError):
    """The range asked for lies outside the blob (HTTP 416); ``size`` is the blob's."""

    def __init__(self, start: int, end: int | None, size: int) -> None:
        super().__init__(f"range {start}..{end} is outside a blob of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    # SHA-256 of the bytes, lowercase hex.
    digest: str
    modified: datetime


class BlobReader:
    """Bytes ``start`` to ``end - 1`` of a blob, as an async iterator of chunks.

    Read it to the end or close it (``aclose``, or ``async with``): it holds
    an open file or HTTP response until then.
    """

    def __init__(
        self,
        info: BlobInfo,
        start: int,
        end: int,
        chunks: AsyncGenerator[bytes, None],
        release: Callable[[], None],
    ) -> None:
        """``release`` frees what ``chunks`` reads from; called more than once, it does nothing.

        The generator's own ``finally`` is not enough: a generator never
        started runs no ``finally`` when closed.
        """
        self.info = info
        self.start = start
        self.end = end
        self._chunks = chunks
        self._release = release

    @property
    def length(self) -> int:
        return self.end - self.start

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            self._release()

    async def __aenter__(self) -> BlobReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_range(start: int, end: int | None, size: int) -> int:
    """The end of ``start..end`` (a slice: ``end`` excluded, None for the last byte) in a blob.

    An ``end`` past the blob is cut to its size, as HTTP does with a last
    byte past the end; a ``start`` at or past the end is refused (416),
    except reading all of an empty blob.
    """
    if start < 0 or (end is not None and end <= start):
        raise RangeNotSatisfiable(start, end, size)
    if start >= size and not (start == 0 and end is None):
        raise RangeNotSatisfiable(start, end, size)
    return size if end is None else min(end, size)


class BlobStore(Protocol):
    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        """Store the chunks under ``key``, visible only once all are stored."""
        ...

    async def read(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        """Bytes ``start`` to ``end - 1`` (see ``check_range``).

        Raises ``BlobNotFound`` or ``RangeNotSatisfiable`` before any byte is read.
        """
        ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    async def delete(self, key: str) -> None:
        """Remove the blob; removing an absent one is not an error."""
        ...

    def keys_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        """Every key stored before ``cutoff`` (aware datetime), in no particular order.

        For the orphan collector. A put still in flight is not listed (and
        the disk store sweeps temporary files a crash left that are older
        than ``cutoff``).
        """
        ...

    async def close(self) -> None: ...
