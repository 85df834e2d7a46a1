"""PostgreSQL's write batches on their own, unpinged connection: a connection
that dies is replaced, and a batch runs again only when that cannot store it twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import QueuePool, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.backends import database_url
from tidings.errors import ErrorCode, TidingsError
from tidings.ids import ConversationId, UserId, parse_conversation
from tidings.store import SendRequest, StoredMessage
from tidings.store.sql import SqlStore

GAP = 300_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with database_url("postgresql", tmp_path) as url:
        opened = SqlStore.from_url(url)
        await opened.open()
        yield opened
        await opened.close()


def _batch_engine(store: SqlStore) -> AsyncEngine:
    engine = store._engines.batch_writer
    assert engine is not None
    return engine


def _send(sender: UserId, conversation: str, body: str, key: str) -> SendRequest:
    ref = parse_conversation(conversation)
    assert ref is not None
    return SendRequest(sender, ref, body, key)


def _cut_at(engine: AsyncEngine, hook: str, statement: int) -> Callable[[], None]:
    """Close the batch connection's socket at the ``statement``-th statement from now
    (before it is sent, or after its answer), once; returns the undo."""
    seen = 0

    def cut(conn: Any, *_args: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == statement:
            conn.connection.dbapi_connection._connection.terminate()  # asyncpg's, at once

    event.listen(engine.sync_engine, hook, cut)
    return lambda: event.remove(engine.sync_engine, hook, cut)


async def _history(store: SqlStore, conversation: str) -> list[tuple[int, str | None]]:
    page = await store.history(
        ConversationId(conversation), None, before=None, after=None, limit=50
    )
    return [(m.seq, m.client_msg_id) for m in page]


async def _two_users(store: SqlStore) -> tuple[UserId, str]:
    a = UserId((await store.create_user("alice", "Alice", None)).id)
    b = UserId((await store.create_user("bob", "Bob", None)).id)
    return a, f"p:{a}-{b}"


async def test_a_batch_whose_connection_died_before_its_first_statement_is_stored_once(
    store: SqlStore,
) -> None:
    a, ab = await _two_users(store)
    await store.commit_batch([_send(a, ab, "one", "k1")], GAP)
    undo = _cut_at(_batch_engine(store), "before_cursor_execute", 1)
    try:
        outcomes = await store.commit_batch([_send(a, ab, "two", "k2")], GAP)
    finally:
        undo()
    stored = outcomes[0]
    assert isinstance(stored, StoredMessage) and stored.message.seq == 2
    assert await _history(store, ab) == [(1, "k1"), (2, "k2")]


async def test_a_batch_whose_connection_died_after_a_statement_is_not_run_again(
    store: SqlStore,
) -> None:
    a, ab = await _two_users(store)
    await store.commit_batch([_send(a, ab, "one", "k1")], GAP)
    # The first statement completed, so the batch is refused, not run again;
    # the client resends with its client_msg_id once storage answers.
    undo = _cut_at(_batch_engine(store), "after_cursor_execute", 1)
    try:
        with pytest.raises(TidingsError) as refused:
            await store.commit_batch([_send(a, ab, "two", "k2")], GAP)
    finally:
        undo()
    assert refused.value.code == ErrorCode.UNAVAILABLE
    again = await store.commit_batch([_send(a, ab, "two", "k2")], GAP)
    assert isinstance(again[0], StoredMessage) and again[0].message.seq == 2
    assert await _history(store, ab) == [(1, "k1"), (2, "k2")]


async def test_batches_reuse_one_connection_and_replace_it_when_the_database_closes_it(
    store: SqlStore,
) -> None:
    a, ab = await _two_users(store)
    engine = _batch_engine(store)
    for n in range(3):
        await store.commit_batch([_send(a, ab, f"m{n}", f"k{n}")], GAP)
    pool = engine.sync_engine.pool
    assert (
        isinstance(pool, QueuePool) and pool.checkedin() == 1
    )  # one connection, lent and returned

    killer = create_async_engine(
        engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    try:
        async with killer.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await killer.dispose()
    after = await store.commit_batch([_send(a, ab, "after", "k3")], GAP)
    assert isinstance(after[0], StoredMessage) and after[0].message.seq == 4
    assert [seq for seq, _ in await _history(store, ab)] == [1, 2, 3, 4]
