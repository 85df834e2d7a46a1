"""Which PostgreSQL layout lets archiving drop whole partitions (issue 23 §3), and
what it costs the reads and writes tidings makes.

    .venv/bin/python bench/pg_partitions.py [--admin URL] [--months 12]
        [--conversations 1000] [--per-month 100] [--samples 2000]

Three layouts of a table shaped like ``messages`` (conversation, seq,
sender, body, sent_at), in a scratch database made and dropped here:

- ``hash``: today's, ``PARTITION BY HASH (conversation_id)``, 16 partitions;
  the primary key (conversation_id, seq).
- ``hash/range``: each hash partition sub-partitioned ``BY RANGE (sent_at)``,
  one per month; the primary key must then hold sent_at.
- ``range/hash``: one partition per month, each ``BY HASH (conversation_id)``.

For each: inserts in batches of 1,000 (rows/s), a history page (50 below
a random seq of a random conversation, newest first, as store/rows.py asks
it) p50/p99, and removing the oldest month: a DELETE on ``hash`` (then
VACUUM), dropping its partitions on the others. Prints one JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import time
from typing import Any

import asyncpg

MONTH_MS = 30 * 86_400_000
START_MS = 1_700_000_000_000
HASHES = 16


def layouts(months: int) -> dict[str, list[str]]:
    cols = (
        "conversation_id varchar(48) NOT NULL, seq bigint NOT NULL, sender_id bigint NOT NULL,"
        " body text NOT NULL, sent_at bigint NOT NULL"
    )
    ranges = [(START_MS + m * MONTH_MS, START_MS + (m + 1) * MONTH_MS) for m in range(months)]
    hash_only = [
        f"CREATE TABLE m_hash ({cols}, PRIMARY KEY (conversation_id, seq))"
        " PARTITION BY HASH (conversation_id)",
        *[
            f"CREATE TABLE m_hash_{h} PARTITION OF m_hash"
            f" FOR VALUES WITH (MODULUS {HASHES}, REMAINDER {h})"
            for h in range(HASHES)
        ],
    ]
    hash_range = [
        f"CREATE TABLE m_hr ({cols}, PRIMARY KEY (conversation_id, seq, sent_at))"
        " PARTITION BY HASH (conversation_id)",
    ]
    for h in range(HASHES):
        hash_range.append(
            f"CREATE TABLE m_hr_{h} PARTITION OF m_hr"
            f" FOR VALUES WITH (MODULUS {HASHES}, REMAINDER {h}) PARTITION BY RANGE (sent_at)"
        )
        hash_range += [
            f"CREATE TABLE m_hr_{h}_{m} PARTITION OF m_hr_{h} FOR VALUES FROM ({lo}) TO ({hi})"
            for m, (lo, hi) in enumerate(ranges)
        ]
    range_hash = [
        f"CREATE TABLE m_rh ({cols}, PRIMARY KEY (conversation_id, seq, sent_at))"
        " PARTITION BY RANGE (sent_at)",
    ]
    for m, (lo, hi) in enumerate(ranges):
        range_hash.append(
            f"CREATE TABLE m_rh_{m} PARTITION OF m_rh FOR VALUES FROM ({lo}) TO ({hi})"
            " PARTITION BY HASH (conversation_id)"
        )
        range_hash += [
            f"CREATE TABLE m_rh_{m}_{h} PARTITION OF m_rh_{m}"
            f" FOR VALUES WITH (MODULUS {HASHES}, REMAINDER {h})"
            for h in range(HASHES)
        ]
    return {"hash": hash_only, "hash/range": hash_range, "range/hash": range_hash}


TABLES = {"hash": "m_hash", "hash/range": "m_hr", "range/hash": "m_rh"}


def rows(conversations: int, months: int, per_month: int) -> list[tuple[Any, ...]]:
    """Each conversation gets ``per_month`` messages a month, seqs rising with time."""
    made = []
    for c in range(conversations):
        cid = f"p:{c}-{c + 100000}"
        seq = 0
        for m in range(months):
            for n in range(per_month):
                seq += 1
                at = START_MS + m * MONTH_MS + n * (MONTH_MS // per_month)
                made.append((cid, seq, c, f"message {seq} of {cid}", at))
    random.Random(3).shuffle(made)  # arrival order mixes conversations, as sends do
    return made


async def measure(
    conn: asyncpg.Connection, layout: str, data: list[tuple[Any, ...]], args: Any
) -> dict[str, Any]:
    table = TABLES[layout]
    for statement in layouts(args.months)[layout]:
        await conn.execute(statement)
    ordered = sorted(data, key=lambda r: r[4])  # inserts arrive in time order
    started = time.perf_counter()
    for start in range(0, len(ordered), 1000):
        await conn.copy_records_to_table(table, records=ordered[start : start + 1000])
    insert_s = time.perf_counter() - started
    await conn.execute(f"ANALYZE {table}")
    page = await conn.prepare(
        f"SELECT conversation_id, seq, sender_id, body, sent_at FROM {table}"
        " WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 50"
    )
    rng = random.Random(11)
    total = args.months * args.per_month
    took = []
    for _ in range(args.samples):
        c = rng.randrange(args.conversations)
        before = rng.randint(51, total)
        t = time.perf_counter()
        found = await page.fetch(f"p:{c}-{c + 100000}", before)
        took.append((time.perf_counter() - t) * 1000)
        assert len(found) == 50
    took.sort()
    cutoff = START_MS + MONTH_MS
    started = time.perf_counter()
    if layout == "hash":
        gone = await conn.execute(f"DELETE FROM {table} WHERE sent_at < $1", cutoff)
        deleted_s = time.perf_counter() - started
        await conn.execute(f"VACUUM {table}")
        removed = f"DELETE ({gone}), then VACUUM"
    elif layout == "hash/range":
        for h in range(HASHES):
            await conn.execute(f"DROP TABLE m_hr_{h}_0")
        deleted_s = time.perf_counter() - started
        removed = f"DROP TABLE of {HASHES} partitions"
    else:
        await conn.execute("DROP TABLE m_rh_0")
        deleted_s = time.perf_counter() - started
        removed = "DROP TABLE of 1 partition (and its 16)"
    removed_s = time.perf_counter() - started
    return {
        "layout": layout,
        "rows": len(data),
        "insert_rows_per_s": round(len(data) / insert_s),
        "page_p50_ms": round(statistics.median(took), 3),
        "page_p99_ms": round(took[int(len(took) * 0.99) - 1], 3),
        "remove_oldest_month": removed,
        "remove_statement_s": round(deleted_s, 3),
        "remove_with_vacuum_s": round(removed_s, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--per-month", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--results", help="append the records to this JSONL file")
    args = parser.parse_args()
    data = rows(args.conversations, args.months, args.per_month)
    name = f"tidings_partitions_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.admin)
    await admin.execute(f"CREATE DATABASE {name}")
    records = []
    try:
        url = args.admin.rsplit("/", 1)[0] + "/" + name
        for layout in TABLES:
            conn = await asyncpg.connect(url)
            try:
                record = await measure(conn, layout, data, args)
            finally:
                await conn.close()
            record |= {"bench": "pg_partitions", "date": time.strftime("%Y-%m-%d")}
            records.append(record)
            print(json.dumps(record))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    if args.results:
        append(args.results, records)


def append(path: str, records: list[dict[str, Any]]) -> None:
    with open(path, "a") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
