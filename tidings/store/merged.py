"""A write batch's bulk writes sent to PostgreSQL as one statement.

A private send's batch ends with three writes: INSERT messages, UPDATE
conversations, UPDATE members; a send with a client_msg_id adds INSERT
client_msg_ids. Each was a round trip, waited for in turn (docs/benchmarks.md,
stop 19b). On asyncpg they go out as one statement, the first ones as
data-modifying ``WITH`` parts of the last:

    WITH w1 AS (INSERT INTO messages … unnest($1, …)),
         w2 AS (UPDATE conversations … unnest($8, …))
    UPDATE members … unnest($12, …)

PostgreSQL runs every part of such a statement on one snapshot, in no
defined order, and no part sees another's rows. So only writes that do not
depend on each other are merged: inserts of new rows, and updates of rows
that existed before the statement, each row written by one part at most.
The batch calls ``flush`` before any other statement (an update of a row a
part also writes, a delete that must see an insert), so statements still
take effect in the batch's order. Other drivers run each write at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

# The SQL of one unnest statement each; shared with bulk.py's single statements.
from tidings.store.bulk import columns, insert_many, unnest_insert, unnest_update, update_many

_PLACEHOLDER = re.compile(r"\$(\d+)")


class MergedWrites:
    """Bulk inserts and updates held until ``flush``, then sent as one statement."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._merge = conn.dialect.driver == "asyncpg"  # the SQL is in asyncpg's $n style
        self._parts: list[tuple[str, tuple[list[Any], ...]]] = []

    def insert(self, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """``bulk.insert_many``: ``rows`` must be new rows."""
        if not self._merge:
            insert_many(self._conn, table, names, rows)
            return
        sql = unnest_insert(self._conn.dialect, table, tuple(names))
        self._parts.append((sql, columns(rows)))

    def update(
        self,
        table: Table,
        keys: Sequence[str],
        values: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        only_up: str | None = None,
    ) -> None:
        """``bulk.update_many``: rows that no other write of this flush touches."""
        if not self._merge:
            update_many(self._conn, table, keys, values, rows, only_up=only_up)
            return
        sql = unnest_update(self._conn.dialect, table, tuple(keys), tuple(values), only_up)
        self._parts.append((sql, columns(rows)))

    def flush(self) -> None:
        """Send the writes held so far, in one statement."""
        parts, self._parts = self._parts, []
        if not parts:
            return
        if len(parts) == 1:
            self._conn.exec_driver_sql(*parts[0])
            return
        texts: list[str] = []
        arguments: list[list[Any]] = []
        for sql, arrays in parts:
            offset = len(arguments)
            texts.append(_shifted(sql, offset))
            arguments.extend(arrays)
        heads = ", ".join(f"w{i} AS ({text})" for i, text in enumerate(texts[:-1], start=1))
        self._conn.exec_driver_sql(f"WITH {heads} {texts[-1]}", tuple(arguments))


def _shifted(sql: str, offset: int) -> str:
    """``sql`` with its parameters ``$n`` renumbered ``$(n + offset)``."""
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)
