"""Batch rows go to the driver as tuples, or as dicts for a driver with named parameters."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from tidings.store.bulk import insert_many
from tidings.store.schema import client_msg_ids, metadata

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
