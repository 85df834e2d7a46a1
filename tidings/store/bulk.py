"""executemany with rows handed to the driver as they are.

A write batch inserts and updates hundreds of rows per statement.
SQLAlchemy's executemany turns every row's dict into the driver's
parameters in Python (per row: compile-time parameter map, bind
processors, a tuple), a fifth of the server's CPU under load
(docs/benchmarks.md). The batch's values are plain ints, strings, bools and
None, which every supported driver takes without conversion, so the
statement is compiled once per dialect and the rows go to the driver as
tuples in the compiled statement's parameter order.

Inserts and updates on PostgreSQL go further: one ``INSERT … SELECT *
FROM unnest($1::type[], …)`` or ``UPDATE … FROM unnest(…)`` with one
array per column instead of a statement per row (asyncpg's executemany
runs one per row). On MySQL and MariaDB, inserts are one multi-row
statement already (the driver rewrites them) and updates join the rows as
a derived table, one statement too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase

from tidings.store.compiled import plan


def insert_many(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (values of the columns ``names``, in that order) into ``table``."""
    if conn.dialect.driver != "asyncpg":  # the SQL below is in asyncpg's $n style
        execute_many(conn, _plain_insert(table), names, rows)
        return
    sql = unnest_insert(conn.dialect, table, tuple(names))
    conn.exec_driver_sql(sql, columns(rows))


def update_many(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    values: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    only_up: str | None = None,
) -> None:
    """Set columns ``values`` of the rows of ``table`` found by columns ``keys``.

    Each row is a tuple of the key values, then the new values. With
    ``only_up`` (one of ``values``), a row changes only if that column grows.
    Each key must appear once in ``rows``.
    """
    shape = (table, tuple(keys), tuple(values), only_up)
    if conn.dialect.name in ("mysql", "mariadb") and len(rows) > 1:
        # One statement, not one round trip per row (the driver's executemany
        # runs an UPDATE per row: 2,000 round trips for a batch of 1,000 sends).
        head, first, rest = _joined_update(conn.dialect, *shape)
        sql = head.format(rows=" UNION ALL ".join([first, *[rest] * (len(rows) - 1)]))
        conn.exec_driver_sql(sql, tuple(value for row in rows for value in row))
        return
    if conn.dialect.driver != "asyncpg":
        names = tuple(f"b_{name}" for name in (*keys, *values))
        execute_many(conn, _plain_update(*shape), names, rows)
        return
    conn.exec_driver_sql(unnest_update(conn.dialect, *shape), columns(rows))


def columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows turned into one list per column: the arrays ``unnest`` takes."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def _arrays(dialect: Dialect, table: Table, names: tuple[str, ...]) -> str:
    """``$1::type[], $2::type[], …``: one typed array parameter per column, in asyncpg's style."""
    return ", ".join(
        f"${i}::{table.c[name].type.compile(dialect=dialect)}[]"
        for i, name in enumerate(names, start=1)
    )


@functools.cache
def unnest_insert(dialect: Dialect, table: Table, names: tuple[str, ...]) -> str:
    quote = dialect.identifier_preparer.quote
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) "
        f"SELECT * FROM unnest({_arrays(dialect, table, names)})"
    )


@functools.cache
def unnest_update(
    dialect: Dialect,
    table: Table,
    keys: tuple[str, ...],
    values: tuple[str, ...],
    only_up: str | None,
) -> str:
    quote = dialect.identifier_preparer.quote
    names = (*keys, *values)
    arrays = _arrays(dialect, table, names)
    conditions = [f"t.{quote(k)} = u.{quote(k)}" for k in keys]
    if only_up is not None:
        conditions.append(f"t.{quote(only_up)} < u.{quote(only_up)}")
    return (
        f"UPDATE {dialect.identifier_preparer.format_table(table)} AS t "
        f"SET {', '.join(f'{quote(v)} = u.{quote(v)}' for v in values)} "
        f"FROM unnest({arrays}) AS u({', '.join(quote(n) for n in names)}) "
        f"WHERE {' AND '.join(conditions)}"
    )


@functools.cache
def _plain_update(
    table: Table, keys: tuple[str, ...], values: tuple[str, ...], only_up: str | None
) -> UpdateBase:
    # Parameters are named b_<column>: SQLAlchemy keeps the bare column names for SET.
    conditions = [table.c[k] == bindparam(f"b_{k}") for k in keys]
    if only_up is not None:
        conditions.append(table.c[only_up] < bindparam(f"b_{only_up}"))
    return update(table).where(*conditions).values({v: bindparam(f"b_{v}") for v in values})


@functools.cache
def _joined_update(
    dialect: Dialect,
    table: Table,
    keys: tuple[str, ...],
    values: tuple[str, ...],
    only_up: str | None,
) -> tuple[str, str, str]:
    """MySQL's bulk update: the rows as a derived table joined to ``table``.

    ``UPDATE t JOIN (SELECT %s AS b_k, %s AS b_v UNION ALL SELECT %s, %s …) b
    ON t.k = b.b_k SET t.v = b.b_v``: the head (with ``{rows}``), the first
    row's SELECT (it names the columns) and every other row's. Portable to
    MySQL 5.7+ and MariaDB (no table value constructor).
    """
    quote = dialect.identifier_preparer.quote
    names = (*keys, *values)
    first = "SELECT " + ", ".join(f"%s AS {quote('b_' + n)}" for n in names)
    rest = "SELECT " + ", ".join("%s" for _ in names)
    # The column's own collation on both sides: a derived table's strings
    # carry the connection's, and comparing two implicit collations is an error.
    join = " AND ".join(_joined_key(dialect, table, k) for k in keys)
    sets = ", ".join(f"t.{quote(v)} = b.{quote('b_' + v)}" for v in values)
    where = "" if only_up is None else f" WHERE t.{quote(only_up)} < b.{quote('b_' + only_up)}"
    table_name = dialect.identifier_preparer.format_table(table)
    head = f"UPDATE {table_name} AS t JOIN ({{rows}}) AS b ON {join} SET {sets}{where}"
    return head, first, rest


def _joined_key(dialect: Dialect, table: Table, key: str) -> str:
    quote = dialect.identifier_preparer.quote
    collation = getattr(table.c[key].type.dialect_impl(dialect), "collation", None)
    cast = f" COLLATE {collation}" if collation else ""
    return f"t.{quote(key)} = b.{quote('b_' + key)}{cast}"


@functools.cache
def _plain_insert(table: Table) -> UpdateBase:
    # One statement object per table, so compiled.plan's cache keys on it.
    return insert(table)


def execute_many(
    conn: Connection,
    statement: UpdateBase,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Run ``statement`` once per row; each row holds the values of ``names``, in that order."""
    found = _row_order(conn.dialect, statement, tuple(names))
    if found is None:
        # A driver with named parameters: SQLAlchemy's way, dicts per row.
        conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
        return
    sql, order = found
    if order == tuple(range(len(names))):
        conn.exec_driver_sql(sql, list(rows))
    else:
        conn.exec_driver_sql(sql, [tuple(row[i] for i in order) for row in rows])


@functools.cache
def _row_order(
    dialect: Dialect, statement: UpdateBase, names: tuple[str, ...]
) -> tuple[str, tuple[int, ...]] | None:
    """The SQL and, for each driver parameter, its index in a row of ``names``."""
    found = plan(dialect, statement, names)
    if found is None:
        return None
    sql, order, _ = found
    return sql, tuple(names.index(name) for name in order)
