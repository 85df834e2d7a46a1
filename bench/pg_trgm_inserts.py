"""What a PostgreSQL pg_trgm GIN index costs inserts shaped like a send batch.

    .venv/bin/python bench/pg_trgm_inserts.py

20,000 bodies of 100 characters (English and Chinese words) inserted, 20
rows per transaction, into a table keyed like ``messages`` (conversation,
seq), without and with ``USING gin (body gin_trgm_ops)``, alternating, 4
rounds, on PostgreSQL at 127.0.0.1:5432 (database ``test``, user
``postgres``; the table ``bench_trgm`` is dropped after). docs/benchmarks.md,
stop 18.
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg

WORDS = (
    "hello world the quick brown fox jumps over lazy dog 你好 世界 今天 天气 很好 我们 明天 见面"
)


def body(rng: random.Random) -> str:
    text = ""
    while len(text) < 100:
        text += rng.choice(WORDS.split()) + " "
    return text[:100]


async def main() -> None:
    rng = random.Random(1)
    rows = [(i // 50, i, body(rng)) for i in range(20_000)]
    db = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for round_ in range(4):
            for indexed in (False, True):
                await db.execute("DROP TABLE IF EXISTS bench_trgm")
                await db.execute(
                    "CREATE TABLE bench_trgm (c int, s int, body text, PRIMARY KEY (c, s))"
                )
                if indexed:
                    await db.execute("CREATE INDEX ON bench_trgm USING gin (body gin_trgm_ops)")
                start = time.perf_counter()
                for i in range(0, len(rows), 20):
                    async with db.transaction():
                        await db.executemany(
                            "INSERT INTO bench_trgm VALUES ($1, $2, $3)", rows[i : i + 20]
                        )
                elapsed = time.perf_counter() - start
                label = "GIN trigram index" if indexed else "no index"
                print(f"round {round_}, {label:17s}: {len(rows) / elapsed:7.0f} rows/s")
    finally:
        await db.execute("DROP TABLE IF EXISTS bench_trgm")
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
