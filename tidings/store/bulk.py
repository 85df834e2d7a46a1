"""executemany with rows handed to the driver as they are.

A write batch inserts and updates hundreds of rows per statement.
SQLAlchemy's executemany turns every row's dict into the driver's
parameters in Python (per row: compile-time parameter map, bind
processors, a tuple), a fifth of the server's CPU in a private-chat
benchmark (py-spy). The batch's values are plain ints, strings, bools and
None, which every supported driver takes without conversion, so the
statement is compiled once per dialect and the rows go to the driver as
tuples in the compiled statement's parameter order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

# (statement, dialect name) -> (SQL text, where each driver parameter comes
# from in the caller's row tuple). Callers pass module-level statements.
_compiled: dict[tuple[ClauseElement, str], tuple[str, tuple[int, ...]]] = {}


def execute_many(
    conn: Connection,
    statement: ClauseElement,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Run ``statement`` once per row; each row holds the values of ``names``, in that order."""
    sql, order = _compile(conn, statement, tuple(names))
    if order == tuple(range(len(names))):
        conn.exec_driver_sql(sql, list(rows))
    else:
        conn.exec_driver_sql(sql, [tuple(row[i] for i in order) for row in rows])


def _compile(
    conn: Connection, statement: ClauseElement, names: tuple[str, ...]
) -> tuple[str, tuple[int, ...]]:
    key = (statement, conn.dialect.name)
    found = _compiled.get(key)
    if found is None:
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(names))
        assert isinstance(compiled, SQLCompiler)
        positions = compiled.positiontup
        if positions is None:  # pragma: no cover - every supported driver is positional
            raise TypeError(f"{conn.dialect.name}: execute_many needs a positional paramstyle")
        found = (str(compiled), tuple(names.index(p) for p in positions))
        _compiled[key] = found
    return found
