"""Rows picked by a list of two-column keys, with one index probe per key.

``a IN (...) AND b IN (...)`` is the obvious way to ask for a set of
(a, b) keys, and the wrong one: every database then probes the index for
every combination. A write batch of 1,000 sends from 100 senders asked its
idempotency table for 100 × 1,000 = 100,000 keys, 30 ms on SQLite,
PostgreSQL and MariaDB alike, every batch. Each dialect has a form that
probes once per key instead (timings for 1,000 keys in a 400,000-row
table):

- PostgreSQL: join ``unnest(:a[], :b[])``, 3 ms; one statement shape
  whatever the number of keys, so it stays prepared. ``(a, b) IN ((..), ..)``
  becomes 1,000 ORed conditions, 27 ms.
- SQLite: join ``json_each(:keys)``, 1.1 ms, again one statement shape. A
  ``VALUES`` list is as fast to run (0.8 ms) but SQLAlchemy compiles it
  anew for every batch (a third of a 1,000-send batch's time), and
  ``(a, b) IN (VALUES ..)`` scans the whole table.
- MySQL and MariaDB: ``(a, b) IN ((..), ..)``, 6 ms, a range scan with one
  range per key.

Each statement here is built once per call site and dialect (the caller
caches it) and takes its keys as parameters from ``keys_params``, so it
can run as driver SQL (``store/compiled.py``). ``in_list`` does the same
for a one-column ``IN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY


def where_keys(
    query: Select[Any], dialect: str, key: tuple[Column[Any], Column[Any]]
) -> Select[Any]:
    """``query`` (on the keys' table) narrowed to the keys given by ``keys_params``."""
    first, second = key
    table = first.table
    if dialect == "postgresql":
        firsts = bindparam("key_firsts", type_=ARRAY(first.type))
        seconds = bindparam("key_seconds", type_=ARRAY(second.type))
        keys = func.unnest(firsts, seconds).table_valued("k0", "k1").render_derived()
        return query.select_from(keys.join(table, and_(first == keys.c.k0, second == keys.c.k1)))
    if dialect == "sqlite":
        pairs = func.json_each(bindparam("keys_json"))
        keys = pairs.table_valued("value", name="wanted")
        return query.select_from(
            keys.join(
                table,
                and_(
                    first == func.json_extract(keys.c.value, "$[0]"),
                    second == func.json_extract(keys.c.value, "$[1]"),
                ),
            )
        )
    return query.where(tuple_(first, second).in_(bindparam("keys", expanding=True)))


def keys_params(dialect: str, wanted: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """The parameters of a ``where_keys`` statement asking for ``wanted``."""
    if dialect == "postgresql":
        return {"key_firsts": [k[0] for k in wanted], "key_seconds": [k[1] for k in wanted]}
    if dialect == "sqlite":
        return {"keys_json": msgspec.json.encode(wanted).decode()}
    return {"keys": [tuple(k) for k in wanted]}


def in_list(column: Column[Any], dialect: str, name: str) -> ColumnElement[bool]:
    """``column IN`` the list given as parameter ``name`` by ``list_param``."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    if dialect == "sqlite":
        values: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam(name))
        )
        return column.in_(values)
    return column.in_(bindparam(name, expanding=True))


def list_param(dialect: str, values: Sequence[Any]) -> Any:
    """The value of an ``in_list`` parameter holding ``values``."""
    if dialect == "sqlite":
        return msgspec.json.encode(values).decode()
    return list(values)
