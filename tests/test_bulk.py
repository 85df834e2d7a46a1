"""Batch rows go to the driver as tuples, or as dicts for a driver with named parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tests.backends import BACKENDS, database_url
from tidings.store.bulk import insert_many, update_many
from tidings.store.schema import client_msg_ids, conversations, members, metadata
from tidings.store.sql import SqlStore

ROWS = [(1, "a", "p:1-2", 1), (2, "b", "p:1-2", 2), (1, "é 😀", "p:1-3", 1)]
NAMES = ("sender_id", "client_msg_id", "conversation_id", "seq")


@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
def test_insert_many_stores_every_row_whatever_the_paramstyle(paramstyle: str) -> None:
    engine = create_engine("sqlite://", paramstyle=paramstyle)
    metadata.create_all(engine)
    with engine.begin() as conn:
        insert_many(conn, client_msg_ids, NAMES, ROWS)
        # Columns given in another order than the table's land in the right place.
        insert_many(conn, client_msg_ids, tuple(reversed(NAMES)), [(5, "p:9-9", "z", 9)])
        stored = conn.execute(select(client_msg_ids).order_by("conversation_id", "seq"))
        assert [tuple(row) for row in stored] == [
            (1, "a", "p:1-2", 1),
            (2, "b", "p:1-2", 2),
            (1, "é 😀", "p:1-3", 1),
            (9, "z", "p:9-9", 5),
        ]
    engine.dispose()


@asynccontextmanager
async def migrated(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database of ``backend`` with the store's schema."""
    async with database_url(backend, tmp_path) as found:
        store = SqlStore.from_url(found)
        await store.open()  # the schema
        await store.close()
        yield found


async def heads_and_reads(
    conn: AsyncConnection,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every conversation's (id, last_seq, last_sent_at) and every member's read_seq."""
    heads = await conn.execute(
        select(conversations.c.id, conversations.c.last_seq, conversations.c.last_sent_at).order_by(
            conversations.c.id
        )
    )
    reads = await conn.execute(
        select(members.c.conversation_id, members.c.user_id, members.c.read_seq).order_by(
            members.c.conversation_id, members.c.user_id
        )
    )
    return [tuple(r) for r in heads], [tuple(r) for r in reads]


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with migrated(request.param, tmp_path) as found:
        yield found


@pytest.fixture
async def mysql_url(tmp_path: Path) -> AsyncIterator[str]:
    async with migrated("mysql", tmp_path) as found:
        yield found


async def test_update_many_sets_the_rows_it_names_and_only_up_never_lowers(url: str) -> None:
    def member(cid: str, user: int, read_seq: int) -> dict[str, object]:
        return {
            "conversation_id": cid,
            "user_id": user,
            "peer_id": None,
            "joined_seq": 0,
            "read_seq": read_seq,
            "joined_at": 0,
        }

    def conversation(cid: str) -> dict[str, object]:
        return {"id": cid, "kind": "private", "last_seq": 3, "last_sent_at": 10, "created_at": 0}

    def move(sync: Connection) -> None:
        update_many(
            sync,
            conversations,
            ("id",),
            ("last_seq", "last_sent_at"),
            [("p:1-2", 7, 1_000), ("p:1-3", 4, None)],
        )
        update_many(
            sync,
            members,
            ("conversation_id", "user_id"),
            ("read_seq",),
            [("p:1-2", 1, 6), ("p:1-2", 2, 2), ("p:1-3", 1, 4)],
            only_up="read_seq",
        )

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(conversations), [conversation(c) for c in ("p:1-2", "p:1-3", "p:2-3")]
            )
            await conn.execute(
                insert(members),
                [
                    member("p:1-2", 1, 5),
                    member("p:1-2", 2, 5),
                    member("p:1-3", 1, 0),
                    member("p:2-3", 2, 1),
                ],
            )
            await conn.run_sync(move)
            heads, reads = await heads_and_reads(conn)
            assert heads == [
                ("p:1-2", 7, 1_000),
                ("p:1-3", 4, None),
                ("p:2-3", 3, 10),  # not named: untouched
            ]
            assert reads == [
                ("p:1-2", 1, 6),
                ("p:1-2", 2, 5),  # 2 < 5: only up, so it stays
                ("p:1-3", 1, 4),
                ("p:2-3", 2, 1),
            ]
    finally:
        await engine.dispose()


async def test_update_many_on_mysql_updates_several_rows_in_one_statement(mysql_url: str) -> None:
    """MySQL's driver runs an UPDATE per row of an executemany: the rows go as one joined one.

    (SQLite and PostgreSQL: the test above checks the same calls change the same rows.)
    """
    updates: list[int] = []  # per UPDATE the driver is handed, how many it runs

    def count(
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(len(parameters) if executemany else 1)

    def member(cid: str, user: int) -> dict[str, object]:
        return {
            "conversation_id": cid,
            "user_id": user,
            "peer_id": None,
            "joined_seq": 0,
            "read_seq": 5,
            "joined_at": 0,
        }

    def conversation(cid: str) -> dict[str, object]:
        return {"id": cid, "kind": "private", "last_seq": 3, "last_sent_at": 10, "created_at": 0}

    def heads(sync: Connection) -> None:
        update_many(
            sync,
            conversations,
            ("id",),
            ("last_seq", "last_sent_at"),
            [("p:1-2", 7, 1_000), ("p:1-3", 4, None), ("p:2-3", 9, 900)],
        )

    def reads(sync: Connection) -> None:
        update_many(
            sync,
            members,
            ("conversation_id", "user_id"),
            ("read_seq",),
            [("p:1-2", 1, 6), ("p:1-2", 2, 2), ("p:1-3", 1, 8), ("p:2-3", 2, 7)],
            only_up="read_seq",
        )

    cids = ("p:1-2", "p:1-3", "p:2-3", "p:3-4")
    engine = create_async_engine(mysql_url)
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(conversations), [conversation(c) for c in cids])
            await conn.execute(
                insert(members),
                [member(c, u) for c, u in [*[(c, 1) for c in cids], ("p:1-2", 2), ("p:2-3", 2)]],
            )
            updates.clear()
            await conn.run_sync(heads)
            assert updates == [1]  # three rows, one statement
            updates.clear()
            await conn.run_sync(reads)
            assert updates == [1]  # four rows (one not raised), one statement
            got_heads, got_reads = await heads_and_reads(conn)
            assert got_heads == [
                ("p:1-2", 7, 1_000),
                ("p:1-3", 4, None),
                ("p:2-3", 9, 900),
                ("p:3-4", 3, 10),  # not named: untouched
            ]
            assert got_reads == [
                ("p:1-2", 1, 6),
                ("p:1-2", 2, 5),  # 2 < 5: only up, so it stays
                ("p:1-3", 1, 8),
                ("p:2-3", 1, 5),  # not named
                ("p:2-3", 2, 7),
                ("p:3-4", 1, 5),  # not named
            ]
    finally:
        await engine.dispose()
