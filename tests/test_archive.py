"""History beyond the hot table (issue 23 §3): ``tidings archive`` moves old
messages into Parquet files in the blob store, and everything a client
reads comes back the same, from the archive, until ``--restore`` brings it
back. Every test runs ``tidings archive`` as a user does: a process beside
the server, on the same database and blob store.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.backends import database_url
from tests.conftest import PASSWORD, AccountFactory, RunningServer, ServerFactory, private
from tidings.client import ApiError, Client
from tidings.files.disk import DiskBlobStore
from tidings.ids import ConversationId, GroupId, UserId, parse_conversation
from tidings.models import Message, now_ms
from tidings.service.archive import (
    Archiver,
    ArchiveReport,
    ParquetSegments,
    decode,
    encode,
    matching,
)
from tidings.store import (
    CreateGroup,
    DeleteGroup,
    FileRecord,
    GroupRequest,
    RecallRequest,
    SendRequest,
    StoredMessage,
)
from tidings.store.sql import SqlStore

pytestmark = pytest.mark.timeout(300)


def archive_command(database: str, files: str) -> list[str]:
    return [sys.executable, "-m", "tidings", "archive", "--database", database, "--files", files]


def run_archive(database: str, files: str, *args: str) -> str:
    done = subprocess.run(
        [*archive_command(database, files), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def views(readers: Sequence[tuple[Client, str]]) -> dict[tuple[int, str, str], Any]:
    """Every page a client may ask for: the latest, going back, and catching up."""
    seen: dict[tuple[int, str, str], Any] = {}
    for index, (client, conversation) in enumerate(readers):
        newest = (await client.messages(conversation, limit=1))[-1].seq
        for limit in (1, 4, 7, 50):
            seen[(index, conversation, f"latest {limit}")] = unsigned(
                await client.messages(conversation, limit=limit)
            )
            for mark in range(0, newest + 2, 3):
                seen[(index, conversation, f"before {mark} {limit}")] = unsigned(
                    await client.messages(conversation, before=mark, limit=limit)
                )
                seen[(index, conversation, f"after {mark} {limit}")] = unsigned(
                    await client.messages(conversation, after=mark, limit=limit)
                )
    return seen


async def searches(readers: Sequence[Client], conversations: Sequence[str]) -> dict[Any, Any]:
    """Every page of a few searches, across conversations and in each, walked by cursor."""
    seen: dict[Any, Any] = {}
    for index, client in enumerate(readers):
        for q in ("message 1", "GROUP", "old.PNG", "after carol", "e"):
            for conversation in (None, *conversations):
                for limit in (3, 50):
                    pages, cursor = [], None
                    while True:
                        try:
                            found = await client.search_messages(q, conversation, cursor, limit)
                        except ApiError as exc:  # not a member of that conversation
                            pages.append(exc.code)
                            break
                        pages.append(unsigned(found.messages))
                        cursor = found.next_before
                        if cursor is None:
                            break
                    seen[(index, q, conversation, limit)] = pages
    return seen


def unsigned(page: list[Message]) -> list[Message]:
    """The page without its file links' signatures, which expire and so differ per read."""
    return [
        msgspec.structs.replace(
            m,
            attachment={k: v for k, v in m.attachment.items() if not k.endswith("url")},
        )
        if isinstance(m.attachment, dict)
        else m
        for m in page
    ]


async def test_archived_history_reads_exactly_as_before(
    server: RunningServer, make_account: AccountFactory, tmp_path: Path
) -> None:
    alice, bob, carol = await make_account(), await make_account(), await make_account()
    chat = private(alice, bob)
    for i in range(30):
        await alice.client.send(chat, f"message {i}", f"k{i}")
    await bob.client.send(chat, "quoting an old one", reply_to=3)
    photo = await alice.client.upload(_png(), name="old.png")
    with_file = await alice.client.send(chat, "a photo", kind="image", file_id=photo.id)
    for i in range(8):
        await bob.client.send(chat, f"later {i}")
    group = await alice.client.create_group("old friends", [bob.id])
    room = f"g:{group.id}"
    for i in range(12):
        await bob.client.send(room, f"group {i}")
    await alice.client.add_members(group.id, [carol.id])  # carol sees only what follows
    for i in range(9):
        if i % 2:
            await alice.client.send(room, f"after carol {i}", reply_to=2)
        else:
            await carol.client.send(room, f"after carol {i}")
    readers = [(alice.client, chat), (bob.client, chat), (alice.client, room), (carol.client, room)]
    before = await views(readers)
    lists = [await a.client.chat_list() for a in (alice, bob, carol)]
    searchers = [alice.client, bob.client, carol.client]
    found = await searches(searchers, [chat, room])
    assert sum(len(page) for page in found[(0, "e", None, 50)]) > 40  # it does find things

    database, files = server.settings.database_url, server.settings.files_url
    out = run_archive(database, files, "--older-than", "0s", "--segment-rows", "7")
    assert "archived 61 messages of 2 conversations" in out, out  # all but each newest

    assert await views(readers) == before
    assert [await a.client.chat_list() for a in (alice, bob, carol)] == lists
    assert await searches(searchers, [chat, room]) == found
    # Operators see the reads that reached the archive, and where the files came from.
    metrics = str((await alice.client.request("GET", "/metrics"))[1])
    for source in ("store", "cache"):
        count = re.search(
            rf'tidings_archive_segment_reads_total{{source="{source}"}} (\S+)', metrics
        )
        assert count is not None and float(count.group(1)) > 0, source
    # The photo's message is archived: its file still downloads, for a member only.
    shown = [m for m in await alice.client.messages(chat, limit=50) if m.seq == with_file.seq]
    assert shown[0].attachment is not None
    assert await bob.client.download(shown[0].attachment["url"]) == _png()

    out = run_archive(database, files, "--restore")
    assert "restored 61 messages of 2 conversations" in out, out
    assert "the archive holds 0 messages" in out
    assert await views(readers) == before
    assert await searches(searchers, [chat, room]) == found

    # Archived again, the conversation goes on from its next seq.
    run_archive(database, files, "--older-than", "0s", "--segment-rows", "5")
    news = await bob.client.send(chat, "still here")
    assert news.seq == with_file.seq + 9
    page = await alice.client.messages(chat, after=0, limit=3)
    assert [m.body for m in page] == ["message 0", "message 1", "message 2"]
    assert (await alice.client.messages(chat, limit=2))[-1] == news


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


# -- the crash test -------------------------------------------------------------


@asynccontextmanager
async def archived_store(
    backend: str, tmp_path: Path
) -> AsyncIterator[tuple[str, SqlStore, DiskBlobStore]]:
    """An empty database of ``backend`` with a store reading through a folder's archive."""
    async with database_url(backend, tmp_path) as url:
        store = SqlStore.from_url(url, search_index=False)
        await store.open()
        blobs = await DiskBlobStore.open(tmp_path / "files")
        store.use_archive(ParquetSegments(blobs))
        try:
            yield url, store, blobs
        finally:
            await blobs.close()
            await store.close()


async def _seed(store: SqlStore, conversations: int, per: int) -> list[ConversationId]:
    users = [await store.create_user(f"u{i}", f"U{i}", None) for i in range(conversations + 1)]
    ids: list[ConversationId] = []
    for i in range(conversations):
        a, b = sorted((users[0].id, users[i + 1].id))
        ref = parse_conversation(f"p:{a}-{b}")
        assert ref is not None
        ids.append(ref.id)
        for start in range(0, per, 100):
            await store.commit_batch(
                [
                    SendRequest(UserId(a if n % 3 else b), ref, f"c{i} n{n}", f"{i}-{n}")
                    for n in range(start, min(per, start + 100))
                ],
                300_000,
            )
    return ids


async def _everything(store: SqlStore, ids: Sequence[ConversationId]) -> dict[str, list[Message]]:
    """Each conversation's whole history, paged back from the newest."""
    found: dict[str, list[Message]] = {}
    for cid in ids:
        pages: list[Message] = []
        before: int | None = None
        while True:
            page = await store.history(cid, None, before=before, after=None, limit=97)
            pages = page + pages
            if len(page) < 97:
                break
            before = page[0].seq
        found[cid] = pages
    return found


async def _kill_at_random(
    command: list[str],
    runs: int,
    rng: random.Random,
    archived: Callable[[], Awaitable[int]],
    total: int,
) -> bool:
    """Start ``command`` and SIGKILL it after a random moment, ``runs`` times;
    whether some kill landed mid-way (the archive neither empty nor full).

    A run that changed nothing was killed before it started working (slow
    start-up on a busy machine): the next one waits longer.
    """
    landed, later = False, 0.0
    for _ in range(runs):
        before = await archived()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(process.wait(), rng.uniform(0.4, 1.6) + later)
        except TimeoutError:
            process.kill()
            await process.wait()
        after = await archived()
        landed = landed or 0 < after < total
        later += 0.5 if after == before else 0.0
    return landed


async def _archived_count(store: SqlStore) -> int:
    return (await store.archive().totals())[1]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
async def test_killing_the_archiver_at_any_point_loses_and_repeats_nothing(
    backend: str, tmp_path: Path
) -> None:
    rng = random.Random(23)
    async with archived_store(backend, tmp_path) as (url, store, blobs):
        ids = await _seed(store, conversations=12, per=2000)
        truth = await _everything(store, ids)
        files = f"file://{tmp_path / 'files'}"
        command = archive_command(url, files) + ["--older-than", "0s", "--segment-rows", "11"]

        total = 12 * 1999
        count = functools.partial(_archived_count, store)
        landed = await _kill_at_random(command, runs=6, rng=rng, archived=count, total=total)
        assert landed, "no kill landed mid-run: the test proves nothing"
        assert await _everything(store, ids) == truth  # killed mid-way: reads the same
        out = run_archive(url, files, "--older-than", "0s", "--segment-rows", "11")
        assert f"the archive holds {total} messages" in out, out
        assert await _everything(store, ids) == truth
        await _check_segments(store, ids, blobs)

        restore = archive_command(url, files) + ["--restore"]
        landed = await _kill_at_random(restore, runs=4, rng=rng, archived=count, total=total)
        assert landed, "no kill landed mid-restore: the test proves nothing"
        assert await _everything(store, ids) == truth
        out = run_archive(url, files, "--restore")
        assert "the archive holds 0 messages" in out, out
        assert await _everything(store, ids) == truth
        await _check_segments(store, ids, blobs)
        # The idempotency keys came back with their messages: a resend is a repeat.
        first = truth[ids[4]][6]
        ref = parse_conversation(ids[4])
        assert ref is not None and first.client_msg_id is not None
        [again] = await store.commit_batch(
            [SendRequest(UserId(first.sender), ref, "resent", first.client_msg_id)], 0
        )
        assert isinstance(again, StoredMessage) and not again.fresh
        assert again.message == first


async def _check_segments(
    store: SqlStore, ids: Sequence[ConversationId], blobs: DiskBlobStore
) -> None:
    """Segments tile a prefix of each conversation; blobs no segment names are
    strays the sweep deletes (the files' collector asks ``known_keys``)."""
    named: set[str] = set()
    for cid in ids:
        segments = sorted(await store.archive().segments_of(cid), key=lambda s: s.low_seq)
        low = 1
        for segment in segments:
            assert segment.low_seq == low, (cid, segments)
            assert segment.message_count == segment.high_seq - segment.low_seq + 1
            low = segment.high_seq + 1
            named.add(segment.blob_key)
    stored = {key async for key in blobs.keys_older_than(_far_future())}
    assert named <= stored
    assert await store.files().known_keys(sorted(stored)) == named


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(2999, 1, 1, tzinfo=UTC)


# -- what may change a range while it is being moved ---------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
async def test_a_recall_between_read_and_move_leaves_the_range_for_the_next_run(
    backend: str, tmp_path: Path
) -> None:
    async with archived_store(backend, tmp_path) as (url, store, blobs):
        [cid] = await _seed(store, conversations=1, per=30)
        ref = parse_conversation(cid)
        assert ref is not None
        archive = store.archive()
        later = now_ms() + 60_000

        pending = await archive.pending(cid, later, 10)
        assert pending is not None and [r[1] for r in pending.rows] == list(range(1, 11))
        await store.commit_batch([RecallRequest(None, ref, 5, None, "recalled", 0)], 0)
        assert await archive.commit(pending, "archive-" + "a" * 32, 1) is None
        assert (await store.history(cid, None, before=None, after=0, limit=10))[4].recalled

        # A recall above the range does not stop the move; the next read sees the recall.
        pending = await archive.pending(cid, later, 3)
        assert pending is not None
        await store.commit_batch([RecallRequest(None, ref, 20, None, "recalled", 0)], 0)
        archiver = Archiver(archive, blobs, rows_per_segment=3)
        report = ArchiveReport()
        assert await archiver.archive_conversation(cid, later, report)
        page = await store.history(cid, None, before=None, after=0, limit=40)
        assert [m.seq for m in page] == list(range(1, 33))  # 30 messages, 2 notices
        assert [m.seq for m in page if m.recalled] == [5, 20]
        assert (await archive.totals())[1] == 31  # all but the newest


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
@pytest.mark.parametrize("restored", ["after the live rows", "after the manifest"])
async def test_a_restore_during_a_search_hides_no_result(
    backend: str, restored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore commits in the middle of a search: between its read of the live
    rows and its read of the manifest, or between the manifest and the blob.
    Either way the page holds every match once, as it did before the restore."""
    async with archived_store(backend, tmp_path) as (url, store, blobs):
        [cid] = await _seed(store, conversations=1, per=30)
        user = UserId(int(cid.removeprefix("p:").split("-")[0]))
        archive = store.archive()
        archiver = Archiver(archive, blobs, rows_per_segment=10)
        await archiver.archive_conversation(cid, now_ms() + 60_000, ArchiveReport())
        assert (await archive.totals())[:2] == (3, 29)  # all but the newest

        async def search() -> list[int]:
            page = await store.search_messages(
                user, "c0 n", conversation=None, before=None, limit=50
            )
            assert page.next_before is None
            return [m.seq for m in page.messages]

        assert await search() == list(range(30, 0, -1))
        store.use_archive(ParquetSegments(blobs))  # nothing cached: the blobs are read again
        restore_once = [True]

        async def restore_first(
            original: Callable[..., Awaitable[Any]], *args: Any, **named: Any
        ) -> Any:
            if restore_once:
                restore_once.clear()
                report = await Archiver(archive, blobs).restore(cid)
                assert report.messages == 29
            return await original(*args, **named)

        if restored == "after the live rows":
            monkeypatch.setattr(
                archive, "searchable", functools.partial(restore_first, archive.searchable)
            )
        else:
            segments = ParquetSegments(blobs)
            monkeypatch.setattr(
                segments, "matching", functools.partial(restore_first, segments.matching)
            )
            store.use_archive(segments)
        assert await search() == list(range(30, 0, -1))
        assert not restore_once, "the restore did not run inside the search"
        assert (await archive.totals())[:2] == (0, 0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
async def test_a_restore_between_reads_keeps_quotes_and_read_by(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote and a read-by of an archived message look for it live, then in
    the manifest: a restore committed between the two reads must not make it
    look gone."""
    async with archived_store(backend, tmp_path) as (url, store, blobs):
        [cid] = await _seed(store, conversations=1, per=30)
        user = UserId(int(cid.removeprefix("p:").split("-")[0]))
        ref = parse_conversation(cid)
        assert ref is not None
        await store.commit_batch([SendRequest(user, ref, "about that", "quote", reply_to=3)], 0)
        archive = store.archive()
        await Archiver(archive, blobs).archive_conversation(cid, now_ms() + 60_000, ArchiveReport())
        assert (await archive.totals())[1] == 30  # all but the quoting one

        async def restore_first(*args: Any) -> Any:
            await Archiver(archive, blobs).restore(cid)
            return await holding(*args)

        holding = archive.holding
        monkeypatch.setattr(archive, "holding", restore_first)
        [quoting] = await store.history(cid, None, before=None, after=None, limit=1)
        assert quoting.reply_to is not None and quoting.reply_to.preview == "c0 n2"
        assert (await archive.totals())[1] == 0, "the restore did not run between the reads"

        await Archiver(archive, blobs).archive_conversation(cid, now_ms() + 60_000, ArchiveReport())
        readers = await store.readers(cid, 3)
        assert readers is not None and user in readers.read_ids
        assert (await archive.totals())[1] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
async def test_archived_files_are_kept_and_a_deleted_group_takes_its_archive_along(
    backend: str, tmp_path: Path
) -> None:
    async with archived_store(backend, tmp_path) as (url, store, blobs):
        owner = await store.create_user("owner", "Owner", None)
        member = await store.create_user("member", "Member", None)
        made = await store.change_group(
            GroupRequest(
                None, UserId(owner.id), CreateGroup(UserId(owner.id), "g", (UserId(member.id),))
            )
        )
        assert made.group is not None
        ref = parse_conversation(made.conversation)
        assert ref is not None
        upload = FileRecord(
            id="f" * 32,
            uploader=UserId(owner.id),
            name="a.txt",
            size=1,
            content_type="text/plain",
            width=None,
            height=None,
            duration_ms=None,
            blob_key="blob" + "0" * 28,
            thumbnail_key=None,
            thumbnail_type=None,
            digest="0" * 64,
            created_at=now_ms() - 10_000_000,
        )
        await store.files().add(upload)
        await store.commit_batch(
            [SendRequest(UserId(owner.id), ref, "", None, kind="file", file_id=upload.id)]
            + [SendRequest(UserId(member.id), ref, f"m{i}", None) for i in range(5)],
            0,
        )
        report = await Archiver(store.archive(), blobs, rows_per_segment=4).run(0)
        assert report.messages == 6  # the notice, the file and 4 of 5 texts
        records = store.files()
        assert await records.visible_to(upload.id, UserId(member.id))
        assert await records.live(upload.id)
        assert await records.orphans(now_ms() + 10_000_000, 10) == []

        await store.change_group(
            GroupRequest(made.group and GroupId(made.group.id), None, DeleteGroup())
        )
        assert await store.archive().segments_of(made.conversation) == []
        assert [o.id for o in await records.orphans(now_ms() + 10_000_000, 10)] == [upload.id]
        stored = {key async for key in blobs.keys_older_than(_far_future())}
        assert await records.known_keys(sorted(stored)) == set()  # the sweep takes them


async def test_replies_forwards_recalls_and_read_by_of_archived_messages_work(
    server: RunningServer, make_account: AccountFactory
) -> None:
    """A write that names an archived message brings its range back and runs;
    read-by reads the archived message where it is."""
    alice, bob = await make_account(), await make_account()
    chat = private(alice, bob)
    team = f"g:{(await alice.client.create_group('team', [bob.id])).id}"
    for i in range(12):
        await alice.client.send(chat, f"chat {i}")
        await bob.client.send(team, f"team {i}")
    await bob.client.mark_read(chat, 6)
    read_by = await alice.client.read_by(chat, 4)
    database, files = server.settings.database_url, server.settings.files_url
    out = run_archive(database, files, "--older-than", "0s", "--segment-rows", "4")
    assert "archived 23 messages" in out, out

    assert await alice.client.read_by(chat, 4) == read_by
    assert (read_by.read_ids, read_by.unread_ids) == ([bob.id], [])
    reply = await bob.client.send(chat, "remember this?", reply_to=10)
    assert reply.reply_to is not None and reply.reply_to.preview == "chat 9"
    forwarded = await bob.client.send(chat, None, forward=(team, 11))
    assert forwarded.body == "team 9" and forwarded.forwarded_from is not None
    async with await alice.client.connect() as socket_:
        notice = await socket_.recall(team, 12)  # the owner recalls any message, at any time
        assert notice.target_seq == 12
        quoting = await socket_.send(team, "and this one", reply_to=10)
        assert quoting.reply_to is not None and quoting.reply_to.preview == "team 8"
    page = await alice.client.messages(team, after=10, limit=3)
    assert [(m.seq, m.recalled) for m in page] == [(11, False), (12, True), (13, False)]
    # What the writes needed came back; the rest of the archive stayed.
    out = run_archive(database, files, "--status")
    held = int(out.split("the archive holds ")[1].split()[0])
    assert 0 < held < 23, out


def test_the_command_says_what_is_missing(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    files = f"file://{tmp_path / 'files'}"
    bare = subprocess.run(
        archive_command(database, files), capture_output=True, text=True, timeout=60
    )
    assert bare.returncode == 2 and "--older-than 180d" in bare.stderr
    both = subprocess.run(
        [*archive_command(database, files), "--older-than", "1d", "--restore"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 2 and "not both" in both.stderr
    odd = subprocess.run(
        [*archive_command(database, files), "--older-than", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert odd.returncode == 2 and "not a duration" in odd.stderr
    assert "the archive holds 0 messages" in run_archive(database, files, "--status")


@pytest.mark.parametrize("stack", ["postgresql+redis"])
async def test_two_nodes_read_one_archive_in_s3(
    make_server: ServerFactory, s3_files_url: str
) -> None:
    """Many nodes: the archive's files in S3, written by the command on any
    machine, read (and brought back for a reply) by every node."""
    first = await make_server(files_url=s3_files_url)
    second = await make_server(files_url=s3_files_url)
    alice, bob = Client(first.url), Client(second.url)
    try:
        a = await alice.signup("alice", PASSWORD)
        b = await bob.signup("bob", PASSWORD)
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)
        chat = f"p:{min(a.id, b.id)}-{max(a.id, b.id)}"
        for i in range(30):
            await alice.send(chat, f"message {i}")
        before = unsigned(await bob.messages(chat, limit=50))
        out = run_archive(
            first.settings.database_url, s3_files_url, "--older-than", "0s", "--segment-rows", "8"
        )
        assert "archived 29 messages" in out, out

        assert unsigned(await bob.messages(chat, limit=50)) == before
        assert unsigned(await alice.messages(chat, after=0, limit=50)) == before
        found = await alice.search_messages("message 1", limit=50)
        assert [m.seq for m in found.messages] == [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 2]
        reply = await bob.send(chat, "that one", reply_to=2)
        assert reply.reply_to is not None and reply.reply_to.preview == "message 1"
        assert unsigned((await alice.messages(chat, limit=50))[:-1]) == before
    finally:
        await alice.close()
        await bob.close()


def test_a_segment_file_gives_back_exactly_the_rows_asked_for() -> None:
    """The codec alone: any range, limit and direction, against a list slice."""
    seqs = [s for s in range(1, 3001) if s % 97]  # gaps, as a restore's skipped seqs leave
    rows = [
        (
            "g:7",
            s,
            3,
            f"text {s}" if s % 5 else None,
            f"k{s}" if s % 3 else None,
            1_700_000_000_000 + s,
            s % 2 == 0,
            "text" if s % 5 else "image",
            s - 1 if s % 7 == 0 else None,
            None,
            None,
            None,
            "4,5" if s % 11 == 0 else None,
            s % 13 == 0,
            None,
            None,
            None,
            None,
            None,
            '{"name": "é.png"}' if s % 5 == 0 else None,
        )
        for s in seqs
    ]
    data = encode(rows)
    rng = random.Random(5)
    for _ in range(300):
        low = rng.choice([0, *rng.sample(seqs, 3)])
        high = rng.choice([2**63 - 1, *rng.sample(seqs, 3)])
        limit = rng.choice([None, 1, 7, 50, 1500, 5000])
        newest = rng.random() < 0.5
        wanted = [r for r in rows if low < r[1] < high]
        if limit is not None:
            wanted = wanted[-limit:] if newest else wanted[:limit]
        assert decode(data, low, high, limit, newest) == wanted, (low, high, limit, newest)
    assert [r[1] for r in matching(data, "é.png", 2000)] == [
        s for s in seqs if s > 2000 and s % 5 == 0
    ]


async def test_a_node_archives_on_its_schedule(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    """``TIDINGS_ARCHIVE_AFTER_SECONDS``: the node moves old messages by itself,
    and reads them back the same."""
    server = await make_server(archive_after_seconds=1.0, archive_every_seconds=0.5)
    alice = Client(server.url)
    try:
        user = await alice.signup("scheduled", PASSWORD)
        await alice.login("scheduled", PASSWORD)
        bob = await alice.signup("other", PASSWORD)
        await alice.login("scheduled", PASSWORD)
        chat = f"p:{min(user.id, bob.id)}-{max(user.id, bob.id)}"
        for i in range(12):
            await alice.send(chat, f"old {i}")
        before = await alice.messages(chat, after=0, limit=50)
        moved = 0.0
        for _ in range(100):  # 1 s to grow old, then up to 0.625 s to the next run
            await asyncio.sleep(0.1)
            metrics = str((await alice.request("GET", "/metrics"))[1])
            count = re.search(r"^tidings_archive_messages_moved_total (\S+)$", metrics, re.M)
            moved = 0.0 if count is None else float(count.group(1))
            if moved >= 11:
                break
        assert moved == 11  # all but the newest
        assert await alice.messages(chat, after=0, limit=50) == before
    finally:
        await alice.close()


def test_a_node_set_to_archive_without_pyarrow_refuses_to_start(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['pyarrow'] = None; from tidings.cli import main; "
    done = subprocess.run(
        [sys.executable, "-c", hide + "raise SystemExit(main(['serve', '--port', '0']))"],
        env=os.environ
        | {
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'n.db'}",
            "TIDINGS_FILES_URL": f"file://{tmp_path / 'files'}",
            "TIDINGS_ARCHIVE_AFTER_SECONDS": "180d",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'tidings[archive]'" in done.stderr
