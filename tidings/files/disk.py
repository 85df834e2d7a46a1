"""Blobs as files in a folder: the embedded default (``file://./data/files``).

Layout: ``<root>/<k[0:2]>/<k[2:4]>/<key>`` (two levels of 256 folders at
most, so no folder grows huge), and ``<root>/.incoming/`` for puts in
flight. A put writes a temporary file in ``.incoming`` (the same
filesystem), fsyncs it, and ``os.replace``s it to its name: a reader sees the
old blob or the new one whole, never a part, and a crash leaves only a
temporary file, which ``keys_older_than`` sweeps.

The SHA-256 is kept in the file's extended attribute ``user.tidings.sha256``,
set before the rename, so it is as atomic as the bytes. Where it is missing
(a filesystem without user xattrs, a backup copied without them) ``stat``
computes it from the bytes and tries to keep it again.

All file IO runs in worker threads (``asyncio.to_thread``), a chunk at a
time, so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from tidings.files import BlobInfo, BlobNotFound, BlobReader, check_range
from tidings.files.keys import check_key, is_key

DIGEST_XATTR = "user.tidings.sha256"
INCOMING = ".incoming"
READ_CHUNK = 256 * 1024


class DiskBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / INCOMING

    @classmethod
    async def open(cls, root: Path) -> DiskBlobStore:
        """The store in ``root``, created if missing (with its parents)."""
        store = cls(root)
        await asyncio.to_thread(store._incoming.mkdir, parents=True, exist_ok=True)
        return store

    def path_of(self, key: str) -> Path:
        check_key(key)
        return self.root / key[0:2] / key[2:4] / key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        final = self.path_of(key)
        temporary = self._incoming / f"{key}.{secrets.token_hex(8)}"
        fd = await asyncio.to_thread(
            os.open, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640
        )
        hasher = hashlib.sha256()
        size = 0
        try:
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(_write_all, fd, chunk, hasher)
                    size += len(chunk)
                digest = hasher.hexdigest()
                await asyncio.to_thread(_seal, fd, digest)
            finally:
                os.close(fd)
            await asyncio.to_thread(_move_into_place, temporary, final)
        except BaseException:
            # Refused, failed or cancelled: the temporary file goes, nothing is visible.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return BlobInfo(key, size, digest, await asyncio.to_thread(_modified, final))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        path = self.path_of(key)
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        file = _OpenFile(fd)
        try:
            info = await asyncio.to_thread(_info_of_open_file, key, fd)
            stop = check_range(start, end, info.size)
        except BaseException:
            file.close()
            raise
        return BlobReader(info, start, stop, _chunks_of(file, start, stop), file.close)

    async def stat(self, key: str) -> BlobInfo | None:
        path = self.path_of(key)
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return await asyncio.to_thread(_info_of_open_file, key, fd)
        finally:
            os.close(fd)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self.path_of(key))

    async def keys_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        limit = cutoff.timestamp()
        await asyncio.to_thread(_sweep_incoming, self._incoming, limit)
        # One top-level folder per hop to a thread: a big store is never listed at once.
        for top in await asyncio.to_thread(_fan_out_folders, self.root):
            for key in await asyncio.to_thread(_keys_older_in, top, limit):
                yield key

    async def close(self) -> None:
        pass


def _write_all(fd: int, chunk: bytes, hasher: hashlib._Hash) -> None:
    hasher.update(chunk)  # in the thread too: hashlib lets go of the GIL on big chunks
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


def _seal(fd: int, digest: str) -> None:
    with contextlib.suppress(OSError, AttributeError):  # no xattrs here: stat computes it
        os.setxattr(fd, DIGEST_XATTR, digest.encode())
    os.fsync(fd)


def _move_into_place(temporary: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temporary, final)
    # The rename is durable once its folder is synced.
    folder = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _info_of_open_file(key: str, fd: int) -> BlobInfo:
    status = os.fstat(fd)
    modified = datetime.fromtimestamp(status.st_mtime, UTC)
    try:
        digest = os.getxattr(fd, DIGEST_XATTR).decode()
    except (OSError, AttributeError):
        digest = _digest_of(fd)
        with contextlib.suppress(OSError, AttributeError):
            os.setxattr(fd, DIGEST_XATTR, digest.encode())
    return BlobInfo(key, status.st_size, digest, modified)


def _digest_of(fd: int) -> str:
    hasher = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        hasher.update(chunk)
        offset += len(chunk)
    return hasher.hexdigest()


class _OpenFile:
    """A descriptor closed once: closing a number twice could close a file opened since."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)


async def _chunks_of(file: _OpenFile, start: int, stop: int) -> AsyncGenerator[bytes, None]:
    try:
        offset = start
        while offset < stop:
            size = min(READ_CHUNK, stop - offset)
            chunk = await asyncio.to_thread(os.pread, file.fd, size, offset)
            if not chunk:  # the file shrank under us: it was replaced; end here
                return
            offset += len(chunk)
            yield chunk
    finally:
        file.close()


def _sweep_incoming(incoming: Path, limit: float) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(incoming):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < limit:
                    os.unlink(entry.path)


def _fan_out_folders(root: Path) -> list[Path]:
    with contextlib.suppress(FileNotFoundError):
        return [Path(e.path) for e in os.scandir(root) if e.is_dir() and e.name != INCOMING]
    return []


def _keys_older_in(top: Path, limit: float) -> list[str]:
    keys = []
    for folder, _, names in os.walk(top):
        for name in names:
            if not is_key(name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.stat(os.path.join(folder, name)).st_mtime < limit:
                    keys.append(name)
    return keys
