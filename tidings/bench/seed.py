"""Bulk history for the ``history`` scenario, written straight into the store's tables.

Going through the API would take hours for ten million messages; one
``INSERT ... SELECT ... generate_series`` per batch of conversations takes
minutes on PostgreSQL. The rows are what the server itself would write:
seqs 2..N+1 per conversation (seq 1 is the group's ``created`` notice),
``last_seq`` and ``last_sent_at`` to match.
SQLite (for the functional test and small runs) gets executemany batches.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Sequence

from sqlalchemy.engine import make_url

BASE_MS = 1_700_000_000_000
CONVERSATIONS_PER_STATEMENT = 4

_PG_INSERT = """
INSERT INTO messages (conversation_id, seq, sender_id, body, client_msg_id, sent_at,
                      time_separator)
SELECT c, s, $2::bigint, 'history bench message number ' || s, NULL, $3::bigint + s * 1000, s = 2
FROM unnest($1::text[]) AS c, generate_series(2, $4::bigint + 1) AS s
"""
_PG_POSITIONS = "UPDATE conversations SET last_seq = $2, last_sent_at = $3 WHERE id = ANY($1)"


async def seeded_counts(database_url: str, conversation_ids: Sequence[str]) -> dict[str, int]:
    """``last_seq`` of each conversation: how much history it already has."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(**_pg_params(database_url))
        try:
            rows = await conn.fetch(
                "SELECT id, last_seq FROM conversations WHERE id = ANY($1)", list(conversation_ids)
            )
        finally:
            await conn.close()
        return {r["id"]: r["last_seq"] for r in rows}
    with sqlite3.connect(_sqlite_path(database_url)) as db:
        marks = ",".join("?" * len(conversation_ids))
        query = f"SELECT id, last_seq FROM conversations WHERE id IN ({marks})"
        return dict(db.execute(query, list(conversation_ids)).fetchall())


async def seed_history(
    database_url: str, conversation_ids: Sequence[str], sender_id: int, per_conversation: int
) -> float:
    """Fill each new group (its created notice only) with ``per_conversation`` messages
    after that notice; return seconds taken."""
    started = time.monotonic()
    if make_url(database_url).get_backend_name() == "postgresql":
        await _seed_postgres(database_url, conversation_ids, sender_id, per_conversation)
    else:
        _seed_sqlite(database_url, conversation_ids, sender_id, per_conversation)
    return time.monotonic() - started


async def _seed_postgres(database_url: str, ids: Sequence[str], sender_id: int, per: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(**_pg_params(database_url))
    try:
        await conn.execute("SET synchronous_commit = off")
        for start in range(0, len(ids), CONVERSATIONS_PER_STATEMENT):
            chunk = list(ids[start : start + CONVERSATIONS_PER_STATEMENT])
            async with conn.transaction():
                await conn.execute(_PG_INSERT, chunk, sender_id, BASE_MS, per)
                await conn.execute(_PG_POSITIONS, chunk, per + 1, BASE_MS + (per + 1) * 1000)
            done = start + len(chunk)
            print(f"seeded {done * per:,} messages", file=sys.stderr, flush=True)
        await conn.execute("ANALYZE messages")
    finally:
        await conn.close()


def _seed_sqlite(database_url: str, ids: Sequence[str], sender_id: int, per: int) -> None:
    with sqlite3.connect(_sqlite_path(database_url), timeout=60) as db:
        for cid in ids:
            db.executemany(
                "INSERT INTO messages (conversation_id, seq, sender_id, body, client_msg_id,"
                " sent_at, time_separator) VALUES (?, ?, ?, ?, NULL, ?, ?)",
                (
                    (cid, s, sender_id, f"history bench message number {s}", BASE_MS + s, s == 2)
                    for s in range(2, per + 2)
                ),
            )
            db.execute(
                "UPDATE conversations SET last_seq = ?, last_sent_at = ? WHERE id = ?",
                (per + 1, BASE_MS + per + 1, cid),
            )


def _pg_params(database_url: str) -> dict[str, object]:
    url = make_url(database_url)
    return {
        "user": url.username,
        "password": url.password,
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "database": url.database,
    }


def _sqlite_path(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise SystemExit(f"history seeding supports PostgreSQL and SQLite, not {url.drivername}")
    path = url.database
    if not path:
        raise ValueError(f"no SQLite file in {database_url!r}")
    return path
