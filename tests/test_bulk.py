"""Batch rows go to the driver as tuples, or as dicts for a driver with named parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

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


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(request.param, tmp_path) as found:
        store = SqlStore.from_url(found)
        await store.open()  # the schema
        await store.close()
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
            heads = await conn.execute(
                select(
                    conversations.c.id, conversations.c.last_seq, conversations.c.last_sent_at
                ).order_by(conversations.c.id)
            )
            reads = await conn.execute(
                select(members.c.conversation_id, members.c.user_id, members.c.read_seq).order_by(
                    members.c.conversation_id, members.c.user_id
                )
            )
            assert [tuple(r) for r in heads] == [
                ("p:1-2", 7, 1_000),
                ("p:1-3", 4, None),
                ("p:2-3", 3, 10),  # not named: untouched
            ]
            assert [tuple(r) for r in reads] == [
                ("p:1-2", 1, 6),
                ("p:1-2", 2, 5),  # 2 < 5: only up, so it stays
                ("p:1-3", 1, 4),
                ("p:2-3", 2, 1),
            ]
    finally:
        await engine.dispose()
