"""What an SQLite FTS5 trigram table costs per row, by rows per transaction.

    python3 bench/fts5_inserts.py

40,000 bodies of 100 characters (English and Chinese words) inserted into a
bare ``fts5(body, tokenize='trigram')`` table, WAL, synchronous NORMAL, in
transactions of 20 (a send batch), 500 and 5,000 rows, with full detail and
``detail=none`` (docs/benchmarks.md, stop 18).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time

WORDS = (
    "hello world the quick brown fox jumps over lazy dog 你好 世界 今天 天气 很好 我们 明天 见面"
)


def body(rng: random.Random) -> str:
    text = ""
    while len(text) < 100:
        text += rng.choice(WORDS.split()) + " "
    return text[:100]


def main() -> None:
    rng = random.Random(1)
    rows = [(i, body(rng)) for i in range(40_000)]
    for per in (20, 500, 5000):
        for detail in ("", ", detail=none"):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "fts.db")
                db = sqlite3.connect(path, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"CREATE VIRTUAL TABLE f USING fts5(body, tokenize='trigram'{detail})")
                start = time.perf_counter()
                for i in range(0, len(rows), per):
                    db.execute("BEGIN")
                    db.executemany("INSERT INTO f(rowid, body) VALUES (?, ?)", rows[i : i + per])
                    db.execute("COMMIT")
                elapsed = time.perf_counter() - start
                db.close()
                label = "detail=none" if detail else "full detail"
                print(f"{per:5d} rows/transaction, {label:11s}: {len(rows) / elapsed:8.0f} rows/s")


if __name__ == "__main__":
    main()
