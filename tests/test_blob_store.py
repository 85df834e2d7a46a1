"""The blob-store contract (tidings.files), held by both adapters.

``disk`` is a folder in the test's temp dir. ``s3`` is a real S3 API:
OpenStack Swift with its s3api middleware, started once for the session on
loopback ports (``tests/swift.py``). Without Swift installed the s3 cases
skip with the reason, unless TIDINGS_TEST_SERVICES=required (CI), where
they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import SWIFT_BUCKET as BUCKET
from tests.swift import ACCESS_KEY, REGION, SECRET_KEY, SwiftS3
from tidings.files import (
    BlobNotFound,
    BlobStore,
    InvalidBlobKey,
    RangeNotSatisfiable,
    new_blob_key,
)
from tidings.files.disk import DiskBlobStore

MiB = 1024 * 1024
# Small parts on S3 (its minimum), so a multi-MiB blob is a multipart upload of several.
PART_SIZE = 5 * MiB


@dataclass
class Subject:
    """A store under test, and what it may have left half-written (must stay empty)."""

    store: BlobStore
    leftovers: Callable[[], Awaitable[list[str]]]


async def _disk(tmp_path: Path) -> Subject:
    store = await DiskBlobStore.open(tmp_path / "files")

    async def leftovers() -> list[str]:
        return os.listdir(store.root / ".incoming")

    return Subject(store, leftovers)


async def _s3(swift: SwiftS3) -> Subject:
    from tidings.files.s3 import S3BlobStore

    store = await S3BlobStore.open(
        BUCKET,
        f"t{secrets.token_hex(6)}/",
        endpoint=swift.endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        addressing="path",
        part_size=PART_SIZE,
    )
    return Subject(store, store.pending_uploads)


@pytest.fixture(params=["disk", "s3"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    if request.param == "disk":
        made = await _disk(tmp_path)
    else:
        made = await _s3(request.getfixturevalue("swift"))
    yield made
    await made.store.close()


@pytest.fixture
def store(subject: Subject) -> BlobStore:
    return subject.store


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with await store.read(key, start, end) as reader:
        return b"".join([chunk async for chunk in reader])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_multi_mib_blob_streamed_in_chunks_reads_back_whole_and_by_ranges(
    store: BlobStore,
) -> None:
    data = os.urandom(12 * MiB + 12345)
    key = new_blob_key()

    info = await store.put(key, chunks_of(data))

    assert (info.key, info.size, info.digest) == (key, len(data), sha256(data))
    assert await read_all(store, key) == data
    size = len(data)
    for start, end in [(0, 1), (size - 1, None), (5 * MiB - 7, 5 * MiB + 9), (1000, 2000)]:
        assert await read_all(store, key, start, end) == data[start:end]
    async with await store.read(key, size - 10, size + 100) as tail:
        assert (tail.start, tail.end, tail.info.size) == (size - 10, size, size)
        assert tail.info.digest == sha256(data)
        assert b"".join([chunk async for chunk in tail]) == data[-10:]


async def test_a_range_past_the_end_is_refused_with_the_blob_size(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, chunks_of(b"0123456789"))

    for start, end in [(10, None), (50, 60), (5, 5), (-1, None)]:
        with pytest.raises(RangeNotSatisfiable) as refused:
            await store.read(key, start, end)
        if start >= 0 and end != start:
            assert refused.value.size == 10


async def test_stat_gives_size_and_digest_and_none_for_an_absent_key(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, chunks_of(b"hello, tidings"))

    info = await store.stat(key)

    assert info is not None
    assert (info.size, info.digest) == (14, sha256(b"hello, tidings"))
    assert info.modified.tzinfo is not None
    assert await store.stat(new_blob_key()) is None


async def test_reading_an_absent_key_is_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.read(new_blob_key())


async def test_an_empty_blob_is_stored_and_read(store: BlobStore) -> None:
    key = new_blob_key()
    info = await store.put(key, chunks_of(b""))
    assert (info.size, info.digest) == (0, sha256(b""))
    assert await read_all(store, key) == b""


async def test_a_put_to_an_existing_key_replaces_it_whole(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, chunks_of(b"first" * 1000))
    info = await store.put(key, chunks_of(b"second"))
    assert await read_all(store, key) == b"second"
    assert info.digest == sha256(b"second")


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data):
        yield chunk
    raise ConnectionResetError("the client went away")


@pytest.mark.parametrize("sent_before_failing", [100 * 1024, 11 * MiB])
async def test_a_put_cut_off_half_way_leaves_nothing_behind(
    subject: Subject, sent_before_failing: int
) -> None:
    store, key = subject.store, new_blob_key()

    with pytest.raises(ConnectionResetError):
        await store.put(key, failing_after(os.urandom(sent_before_failing)))

    assert await store.stat(key) is None
    with pytest.raises(BlobNotFound):
        await store.read(key)
    assert await subject.leftovers() == []
    assert [k async for k in store.keys_older_than(datetime.now(UTC) + timedelta(days=1))] == []


async def test_a_cancelled_put_leaves_nothing_behind(subject: Subject) -> None:
    store, key = subject.store, new_blob_key()
    halfway = asyncio.Event()

    async def stalls_after_two_parts() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(os.urandom(11 * MiB)):
            yield chunk
        halfway.set()
        await asyncio.Event().wait()  # the client stops sending
        yield b""

    put = asyncio.create_task(store.put(key, stalls_after_two_parts()))
    await asyncio.wait_for(halfway.wait(), 60)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put

    assert await store.stat(key) is None
    assert await subject.leftovers() == []


async def test_delete_removes_a_blob_and_is_idempotent(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, chunks_of(b"bye"))

    await store.delete(key)
    await store.delete(key)
    await store.delete(new_blob_key())

    assert await store.stat(key) is None


BAD_KEYS = [
    "",
    "..",
    "../../etc/passwd",
    "abcd/efgh1234",
    "abcd\\efgh1234",
    "abcdefgh.png",
    ".abcdefgh",
    "-abcdefgh",
    "ABCDEFGH1234",
    "short",
    "a" * 129,
    "abcdefgh\x00",
    "abcdefgh\n",
    "abcd efgh",
]


async def test_a_key_the_server_could_not_have_made_is_refused(subject: Subject) -> None:
    store = subject.store
    for key in BAD_KEYS:
        with pytest.raises(InvalidBlobKey):
            await store.put(key, chunks_of(b"x"))
        with pytest.raises(InvalidBlobKey):
            await store.read(key)
        with pytest.raises(InvalidBlobKey):
            await store.stat(key)
        with pytest.raises(InvalidBlobKey):
            await store.delete(key)
    assert await subject.leftovers() == []
    assert await keys_before(store, datetime.now(UTC) + timedelta(days=1)) == set()


async def keys_before(store: BlobStore, cutoff: datetime) -> set[str]:
    return {key async for key in store.keys_older_than(cutoff)}


async def test_keys_are_listed_by_age_for_the_orphan_collector(store: BlobStore) -> None:
    old, new = new_blob_key(), new_blob_key()
    await store.put(old, chunks_of(b"old"))
    # S3 keeps LastModified to the second: leave a clear second each side of the cutoff.
    await asyncio.sleep(1.2)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(1.2)
    await store.put(new, chunks_of(b"new"))

    assert await keys_before(store, cutoff) == {old}
    assert await keys_before(store, datetime.now(UTC) + timedelta(minutes=1)) == {old, new}
    assert await keys_before(store, cutoff - timedelta(minutes=1)) == set()


async def test_concurrent_puts_of_different_keys_each_keep_their_bytes(store: BlobStore) -> None:
    blobs = {new_blob_key(): os.urandom(MiB + n) for n in range(8)}

    async def put(key: str, data: bytes) -> str:
        return (await store.put(key, chunks_of(data, 32 * 1024))).digest

    digests = await asyncio.gather(*(put(key, data) for key, data in blobs.items()))

    assert digests == [sha256(data) for data in blobs.values()]
    for key, data in blobs.items():
        assert await read_all(store, key) == data


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
async def test_a_reader_closed_unread_or_read_to_the_end_keeps_no_file_open(
    tmp_path: Path,
) -> None:
    store = await DiskBlobStore.open(tmp_path / "files")
    key = new_blob_key()
    await store.put(key, chunks_of(b"x" * 1000))
    before = len(os.listdir("/proc/self/fd"))

    await (await store.read(key, 10, 20)).aclose()
    assert b"".join([chunk async for chunk in await store.read(key)]) == b"x" * 1000

    assert len(os.listdir("/proc/self/fd")) == before


async def test_the_disk_store_computes_a_digest_it_lost(tmp_path: Path) -> None:
    """A backup copied without extended attributes: stat still answers the right digest."""
    store = await DiskBlobStore.open(tmp_path / "files")
    key = new_blob_key()
    await store.put(key, chunks_of(b"kept"))
    path = store.path_of(key)
    copy = path.read_bytes()
    path.unlink()
    path.write_bytes(copy)  # a fresh file: no xattr

    info = await store.stat(key)

    assert info is not None and info.digest == sha256(b"kept")
    assert store.path_of(key).parent.parent.parent == store.root
