"""Search over 1,000,000 messages on SQLite: through the index file, and the scan.

    PYTHONPATH=. .venv/bin/python bench/search_index.py [--messages 1000000] [--postgresql]
        [--archive-rounds 3]

One user in 1,000 conversations holding every message (generated: mixed
Chinese and English bodies of 20-80 characters, bulk inserted), so the scan
reads all of them: the worst case for the scan, the usual one for the
index. Then: the index built from nothing by the indexer (rows/s), its file
size per message, and p50/p99 of ~200 searches (2, 3 and 5 characters, CJK
and Latin) through ``SqlStore.search_messages``, first page of 20; then a
sample of the same queries by the scan for the ratio (docs/benchmarks.md,
stop 19s). The SQLite database lives in a temp folder; with ``--postgresql``
a database ``tidings_bench_search_<random>`` is made on 127.0.0.1:5432 (user
postgres) and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import tidings.store.sql as sql_module
from tidings.ids import UserId
from tidings.store.sql import SqlStore

CONVERSATIONS = 1000
LATIN = [
    "hello",
    "world",
    "meeting",
    "budget",
    "report",
    "schedule",
    "project",
    "deadline",
    "coffee",
    "lunch",
    "tomorrow",
    "review",
    "design",
    "server",
    "deploy",
    "release",
    "invoice",
    "travel",
    "ticket",
    "weekend",
    "family",
    "photo",
]
HANZI = (
    "你好世界北京上海明天会议报告项目时间地址朋友消息今天晚上吃饭周末旅行照片家人公司"
    "工作服务器发布检查设计预算咖啡午餐车票酒店电话邮件问题计划"
)


def body(rng: random.Random) -> str:
    parts: list[str] = []
    size = rng.randint(20, 80)
    while sum(len(p) + 1 for p in parts) < size:
        if rng.random() < 0.5:
            parts.append(
                rng.choice(LATIN).capitalize() if rng.random() < 0.2 else rng.choice(LATIN)
            )
        else:
            parts.append("".join(rng.choice(HANZI) for _ in range(rng.randint(2, 6))))
    return " ".join(parts)[:size]


def populate(database: str, total: int, rng: random.Random) -> float:
    """Bulk insert the user (id 1), a peer per group, 1,000 groups and ``total`` messages."""
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    start = time.perf_counter()
    db.execute("BEGIN")
    now = int(time.time() * 1000) - total * 10
    per = total // CONVERSATIONS
    for c in range(1, CONVERSATIONS + 1):
        cid = f"g:{c}"
        db.execute(
            "INSERT INTO conversations(id, kind, group_id, last_seq, last_sent_at, shown_seq,"
            " created_at) VALUES (?, 'group', ?, ?, ?, ?, ?)",
            (cid, c, per, now, per, now),
        )
        for user in (1, 2):
            db.execute(
                "INSERT INTO members(conversation_id, user_id, joined_seq, read_seq, joined_at,"
                " join_rank) VALUES (?, ?, 0, 0, ?, ?)",
                (cid, user, now, user),
            )
    rows = []
    for i in range(total):
        c, seq = i % CONVERSATIONS + 1, i // CONVERSATIONS + 1
        rows.append((f"g:{c}", seq, 1 + i % 2, body(rng), now + i * 10, 0))
        if len(rows) == 50_000:
            db.executemany(
                "INSERT INTO messages(conversation_id, seq, sender_id, body, sent_at,"
                " time_separator) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows = []
    db.executemany(
        "INSERT INTO messages(conversation_id, seq, sender_id, body, sent_at, time_separator)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - start


ROWS = ("conversations", "members", "messages")


def rows_for(total: int, rng: random.Random) -> dict[str, list[tuple[object, ...]]]:
    """The same rows as ``populate``, for PostgreSQL's COPY."""
    now = int(time.time() * 1000) - total * 10
    per = total // CONVERSATIONS
    made: dict[str, list[tuple[object, ...]]] = {name: [] for name in ROWS}
    for c in range(1, CONVERSATIONS + 1):
        made["conversations"].append((f"g:{c}", "group", c, per, now, per, now))
        for user in (1, 2):
            made["members"].append((f"g:{c}", user, 0, 0, now, user))
    for i in range(total):
        c, seq = i % CONVERSATIONS + 1, i // CONVERSATIONS + 1
        made["messages"].append((f"g:{c}", seq, 1 + i % 2, body(rng), now + i * 10, False))
    return made


async def populate_pg(url: str, total: int, rng: random.Random) -> float:
    import asyncpg

    columns = {
        "conversations": [
            "id",
            "kind",
            "group_id",
            "last_seq",
            "last_sent_at",
            "shown_seq",
            "created_at",
        ],
        "members": [
            "conversation_id",
            "user_id",
            "joined_seq",
            "read_seq",
            "joined_at",
            "join_rank",
        ],
        "messages": ["conversation_id", "seq", "sender_id", "body", "sent_at", "time_separator"],
    }
    made = rows_for(total, rng)
    start = time.perf_counter()
    db = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for name in ROWS:
            await db.copy_records_to_table(name, records=made[name], columns=columns[name])
        await db.execute("ANALYZE")
    finally:
        await db.close()
    return time.perf_counter() - start


def queries(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(class, query): 2, 3 and 5 characters of CJK and Latin, cut from the vocabularies."""
    picked: list[tuple[str, str]] = []
    for i in range(count):
        length = (2, 3, 5)[i % 3]
        if i % 2:
            word = rng.choice([w for w in LATIN if len(w) >= length])
            start = rng.randrange(len(word) - length + 1)
            picked.append((f"latin {length}", word[start : start + length]))
        else:
            picked.append((f"cjk {length}", "".join(rng.choice(HANZI) for _ in range(length))))
    return picked


async def timed(store: SqlStore, picked: list[tuple[str, str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for label, q in picked:
        start = time.perf_counter()
        await store.search_messages(UserId(1), q, conversation=None, before=None, limit=20)
        times.setdefault(label, []).append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, times: dict[str, list[float]]) -> None:
    every = sorted(t for ts in times.values() for t in ts)
    for label, ts in sorted(times.items()) + [("all", every)]:
        ts = sorted(ts)
        p99 = ts[min(len(ts) - 1, int(len(ts) * 0.99))]
        p50 = statistics.median(ts)
        print(f"{name:6s} {label:8s} n={len(ts):3d} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")


async def archive_cost(store: SqlStore, picked: list[tuple[str, str]], rounds: int) -> None:
    """The same searches with the archive wired in, as a node does (it is empty
    here: the cost of asking the manifest), and without, in interleaved rounds."""
    from tidings.files.disk import DiskBlobStore
    from tidings.service.archive import ParquetSegments

    with tempfile.TemporaryDirectory() as blobs:
        segments = ParquetSegments(DiskBlobStore(Path(blobs)))
        sides: dict[str, dict[str, list[float]]] = {"plain": {}, "archive": {}}
        for _ in range(rounds):
            for side, times in sides.items():
                store._segments = segments if side == "archive" else None  # noqa: SLF001
                for label, ts in (await timed(store, picked)).items():
                    times.setdefault(label, []).extend(ts)
        store._segments = None  # noqa: SLF001
    for side, times in sides.items():
        report(side, times)


def file_sizes(folder: str, database: str) -> tuple[int, int]:
    """The index file (with its WAL) and the messages' database, in bytes."""
    index = sum(os.path.getsize(p) for p in Path(folder).glob("bench.db.search*"))
    return index, os.path.getsize(database)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=198)
    parser.add_argument("--scan-searches", type=int, default=18)
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument(
        "--archive-rounds",
        type=int,
        default=0,
        help="also time searches with and without the (empty) archive wired in",
    )
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, load {os.getloadavg()}")
    if args.postgresql:
        await on_postgresql(args)
        return
    rng = random.Random(19)
    with tempfile.TemporaryDirectory() as folder:
        database = str(Path(folder) / "bench.db")
        store = SqlStore.from_url(f"sqlite+aiosqlite:///{database}", sqlite_synchronous="NORMAL")
        await store.open()
        index = store.search_index
        assert index is not None
        await index.pause()
        for user, name in ((1, "searcher"), (2, "peer")):
            await store.create_user(f"{name}{user}", name, None)
        took = populate(database, args.messages, rng)
        print(f"inserted {args.messages:,} messages in {took:.1f} s")
        start = time.perf_counter()
        await index.catch_up()
        built = time.perf_counter() - start
        size, main_size = file_sizes(folder, database)
        print(
            f"index built: {index.rows_indexed:,} rows in {built:.1f} s"
            f" ({index.rows_indexed / built:,.0f} rows/s); index file {size / 2**20:.0f} MiB,"
            f" {size / args.messages:.0f} bytes per message (messages file {main_size / 2**20:.0f}"
            f" MiB, {main_size / args.messages:.0f} bytes per message)"
        )
        await searches(store, rng, args)


async def searches(store: SqlStore, rng: random.Random, args: argparse.Namespace) -> None:
    picked = queries(rng, args.searches)
    await timed(store, picked[:6])  # warm the page cache
    report("index", await timed(store, picked))
    if args.archive_rounds:
        await archive_cost(store, picked, args.archive_rounds)
    # The same kind of queries by the scan (each reads every message).
    sql_module.indexable = lambda _folded: False
    sql_module.PG_MIN_INDEXED_CHARS = 10**9
    report("scan", await timed(store, picked[: args.scan_searches]))
    await store.close()


async def on_postgresql(args: argparse.Namespace) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    name = f"tidings_bench_search_{secrets.token_hex(4)}"
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        rng = random.Random(19)
        store = SqlStore.from_url(url)
        await store.open()
        index = store.search_index
        assert index is not None, "no pg_trgm"
        await index.pause()
        for user, who in ((1, "searcher"), (2, "peer")):
            await store.create_user(f"{who}{user}", who, None)
        took = await populate_pg(url, args.messages, rng)
        print(f"inserted {args.messages:,} messages in {took:.1f} s (COPY)")
        start = time.perf_counter()
        await index.catch_up()
        built = time.perf_counter() - start
        async with admin.connect() as conn:
            await conn.execute(text("SELECT 1"))
        probe = create_async_engine(url)
        async with probe.connect() as conn:
            await conn.execute(text("ANALYZE search_docs"))
            size = int(
                await conn.scalar(
                    text(
                        "SELECT pg_total_relation_size('search_docs')"
                        " + pg_total_relation_size('search_watermarks')"
                    )
                )
                or 0
            )
            main_size = int(
                await conn.scalar(
                    text(
                        "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
                        " WHERE inhparent = 'messages'::regclass"
                    )
                )
                or 0
            )
        await probe.dispose()
        print(
            f"index built: {index.rows_indexed:,} rows in {built:.1f} s"
            f" ({index.rows_indexed / built:,.0f} rows/s); search_docs {size / 2**20:.0f} MiB,"
            f" {size / args.messages:.0f} bytes per message (messages {main_size / 2**20:.0f}"
            f" MiB, {main_size / args.messages:.0f} bytes per message)"
        )
        await searches(store, rng, args)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
