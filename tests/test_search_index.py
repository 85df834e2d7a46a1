"""The search index beside the send path (SQLite: store/search_index.py,
PostgreSQL: store/search_pg.py): a search answers from what is committed,
whatever the index has caught up."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import PASSWORD, Account, RunningServer, ServerFactory, private
from tests.test_search import every_page, found
from tidings.app import SEARCH_INDEX
from tidings.client import Client
from tidings.store.search import MAX_TERMS
from tidings.store.search_index import SqliteSearchIndex
from tidings.store.search_pg import PgSearchIndex

Index = SqliteSearchIndex | PgSearchIndex
_URLS: dict[int, str] = {}


@pytest.fixture
def index(server: RunningServer) -> Index:
    index = server.app[SEARCH_INDEX]()
    if index is None:
        pytest.skip("no search index on this database (MariaDB): every search is the scan")
    _URLS[id(index)] = server.settings.database_url
    return index


async def indexed(index: Index, q: str) -> int:
    """How many messages the index itself holds for ``q`` (3+ plain characters)."""
    if isinstance(index, SqliteSearchIndex):
        with sqlite3.connect(index.path) as db:
            phrase = '"' + q.lower().replace('"', '""') + '"'
            return int(db.execute("SELECT count(*) FROM fts(?)", (phrase,)).fetchone()[0])
    engine = create_async_engine(_URLS[id(index)])
    try:
        async with engine.connect() as conn:
            query = "SELECT count(*) FROM search_docs WHERE strpos(body, lower(:q)) > 0"
            query += " OR strpos(name, lower(:q)) > 0"
            return int(await conn.scalar(text(query), {"q": q}) or 0)
    finally:
        await engine.dispose()


async def test_a_message_is_found_before_the_indexer_has_seen_it(
    index: Index, alice: Account, bob: Account
) -> None:
    await index.pause()
    await alice.client.send(private(alice, bob), "fresh news from 北京大学")
    assert await indexed(index, "fresh news") == 0
    assert await found(bob, "fresh news") == ["fresh news from 北京大学"]
    assert await found(bob, "北京大") == ["fresh news from 北京大学"]
    assert await found(bob, "北京") == ["fresh news from 北京大学"]  # 2 characters: the scan


async def test_an_edit_after_indexing_is_found_by_its_new_text_only(
    index: Index, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    first = await alice.client.send(chat, "meet at the old bridge")
    await index.catch_up()
    await index.pause()
    assert await indexed(index, "old bridge") == 1
    await alice.client.edit(chat, first.seq, "meet at the new tower")
    # The index still holds the old text; the search does not answer with it.
    assert await indexed(index, "old bridge") == 1
    assert await found(bob, "old bridge") == []
    assert await found(bob, "new tower") == ["meet at the new tower"]
    index.resume()
    await index.catch_up()
    assert await indexed(index, "old bridge") == 0 and await indexed(index, "new tower") == 1
    assert await found(bob, "old bridge") == []
    assert await found(bob, "new tower") == ["meet at the new tower"]


async def test_a_recall_after_indexing_hides_the_message(
    index: Index, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    gone = await alice.client.send(chat, "my password is hunter2")
    await index.catch_up()
    await index.pause()
    await alice.client.recall(chat, gone.seq)
    assert await indexed(index, "hunter2") == 1
    assert await found(bob, "hunter2") == []
    index.resume()
    await index.catch_up()
    assert await indexed(index, "hunter2") == 0
    assert await found(bob, "hunter2") == []


async def test_a_new_indexer_catches_up_from_the_watermarks(
    index: Index, alice: Account, bob: Account
) -> None:
    """As after a crash or a restart: what was committed and not indexed is indexed."""
    chat = private(alice, bob)
    await alice.client.send(chat, "indexed before the stop")
    await index.catch_up()
    await index.pause()
    await alice.client.send(chat, "sent while it was down")
    edited = await alice.client.send(chat, "first words")
    await alice.client.edit(chat, edited.seq, "second words")
    assert await indexed(index, "while it was") == 0
    engine = create_async_engine(_URLS[id(index)])
    again: Index
    if isinstance(index, SqliteSearchIndex):
        again = SqliteSearchIndex(index.path.removesuffix(".search"))
        again.open()
    else:
        again = PgSearchIndex(engine)
    try:
        await again.catch_up()
    finally:
        await again.close()
        await engine.dispose()
    assert await indexed(index, "while it was") == 1
    assert await indexed(index, "indexed before") == 1
    assert await indexed(index, "first words") == 0 and await indexed(index, "second words") == 1
    assert await found(bob, "words") == ["second words"]


async def test_one_run_over_many_conversations_applies_each_ones_edits_and_recalls(
    index: Index, alice: Account, bob: Account, carol: Account
) -> None:
    """A run covers every conversation behind at once; a message edited twice in
    it is indexed once, by its last text."""
    await index.pause()
    with_bob, with_carol = private(alice, bob), private(alice, carol)
    twice = await alice.client.send(with_bob, "draft one of the plan")
    await alice.client.edit(with_bob, twice.seq, "draft two of the plan")
    await alice.client.edit(with_bob, twice.seq, "final draft of the plan")
    gone = await alice.client.send(with_carol, "a secret for carol")
    await alice.client.send(with_carol, "lunch with carol at noon")
    await alice.client.recall(with_carol, gone.seq)
    await alice.client.send(with_bob, "lunch with bob at one")
    index.resume()
    await index.catch_up()
    assert await indexed(index, "draft") == 1 and await indexed(index, "final draft") == 1
    assert await indexed(index, "secret") == 0
    assert await indexed(index, "lunch with") == 2
    assert await found(bob, "draft") == ["final draft of the plan"]
    assert await found(carol, "lunch with") == ["lunch with carol at noon"]


async def test_a_conversation_longer_than_one_run_is_indexed_to_its_end(
    index: Index, alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose budget ends inside a conversation comes back for the rest."""
    monkeypatch.setattr("tidings.store.search_index.ROWS_PER_RUN", 2)
    monkeypatch.setattr("tidings.store.search_pg.ROWS_PER_RUN", 2)
    await index.pause()
    chat = private(alice, bob)
    for n in range(5):
        await alice.client.send(chat, f"long thread part {n}")
    await index.catch_up()
    assert await indexed(index, "long thread part") == 5


async def test_two_characters_that_begin_too_many_terms_are_scanned_and_all_found(
    index: Index, alice: Account, bob: Account
) -> None:
    """Past MAX_TERMS trigrams beginning with the query, the OR of them would
    cost more than the scan: the search scans, and finds the same."""
    chat = private(alice, bob)
    bodies = [f"qz{chr(0x4E00 + n)} item {n}" for n in range(MAX_TERMS + 10)]
    for body in bodies:
        await alice.client.send(chat, body)
    await index.catch_up()
    assert await indexed(index, bodies[-1]) == 1
    assert sorted(await found(bob, "QZ"), key=str) == sorted(bodies)


async def test_a_file_is_found_by_its_name_through_the_index(
    index: Index, alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    await alice.client.send_file(chat, b"quarterly numbers", name="Quarterly-Report.txt")
    await index.catch_up()
    assert await indexed(index, "quarterly-report") == 1
    hits = await every_page(bob, "REPORT.TXT")
    assert [m.file.name for m in hits if m.file is not None] == ["Quarterly-Report.txt"]


async def test_pages_skip_indexed_messages_recalled_or_edited_since(
    index: Index, alice: Account, bob: Account
) -> None:
    """The index's matches are cut to one page before the re-check: the ones a
    later notice acts on must not take a place there and leave a page short."""
    chat = private(alice, bob)
    sent = [await alice.client.send(chat, f"apple pie {i}") for i in range(5)]
    await index.catch_up()
    await index.pause()
    await alice.client.recall(chat, sent[4].seq)
    await alice.client.edit(chat, sent[3].seq, "banana bread")
    for limit in (1, 2):
        pages = await every_page(bob, "apple", limit=limit)
        assert [m.body for m in pages] == ["apple pie 2", "apple pie 1", "apple pie 0"]
    assert [m.body for m in await every_page(bob, "banana", limit=1)] == ["banana bread"]


async def test_with_the_index_off_searches_scan_and_no_index_is_kept(
    make_server: ServerFactory,
) -> None:
    """TIDINGS_SEARCH_INDEX=false: no indexer and no index file; the same answers."""
    server = await make_server(search_index=False)
    assert server.app[SEARCH_INDEX]() is None
    url = server.settings.database_url
    if url.startswith("sqlite"):
        index_path = url.split("///", 1)[1] + ".search"
        assert not await asyncio.to_thread(os.path.exists, index_path)
    async with Client(server.url) as alice, Client(server.url) as bob:
        a = await alice.signup("alice", PASSWORD)
        b = await bob.signup("bob", PASSWORD)
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)
        chat = f"p:{min(a.id, b.id)}-{max(a.id, b.id)}"
        await alice.send(chat, "scanned from 北京大学")
        for q in ("scanned", "北京大", "北京", "京"):
            page = await bob.search_messages(q)
            assert [m.body for m in page.messages] == ["scanned from 北京大学"], q


async def test_a_failed_run_is_retried_without_waiting_for_another_send(
    index: Index, alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails (a dropped connection, a locked file) is tried again about
    a second later on its own, not at the next send or the 30 s full pass."""
    await index.pause()
    await alice.client.send(private(alice, bob), "written while the index failed")
    real_pass = index._pass
    failures = 0

    async def failing_once(*, wait: bool) -> bool:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise index.retried[0]("the database went away")
        return await real_pass(wait=wait)

    monkeypatch.setattr(index, "_pass", failing_once)
    index.resume()
    for _ in range(100):  # 10 s: well before the 30 s full pass
        if await indexed(index, "while the index failed") == 1:
            break
        await asyncio.sleep(0.1)
    assert failures == 1
    assert await indexed(index, "while the index failed") == 1
