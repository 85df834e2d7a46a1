"""What archiving costs and saves (issue 23 §3): history page latency from the
live table and from Parquet segments, and the database's size before and after.

    .venv/bin/python bench/archive.py [--database URL] [--conversations 1000]
        [--per 1000] [--samples 2000] [--results bench/results/FILE.jsonl]

Seeds ``conversations`` × ``per`` messages (SQLite in a temp folder unless
``--database`` names an empty database), reads ``samples`` random history
pages (50 messages, ``before`` a random seq) from the live table, archives
everything (``Archiver.run(0)``, 10,000 rows per file), then reads the same
pages again: once with no segment cache (every page reads its file from
disk) and once with the default 64 MiB cache. Prints p50/p99 per case and
the sizes, and appends one JSON record to ``--results``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tidings.files.disk import DiskBlobStore
from tidings.ids import ConversationId, UserId, parse_conversation
from tidings.service.archive import Archiver, ParquetSegments
from tidings.store import SendRequest
from tidings.store.sql import SqlStore

PAGE = 50


async def seed(store: SqlStore, conversations: int, per: int) -> list[tuple[ConversationId, int]]:
    hub = await store.create_user("hub", "Hub", None)
    made: list[tuple[ConversationId, int]] = []
    pending: list[SendRequest] = []
    for i in range(conversations):
        other = await store.create_user(f"u{i}", f"User {i}", None)
        ref = parse_conversation(f"p:{hub.id}-{other.id}")
        assert ref is not None
        made.append((ref.id, per))
        for n in range(per):
            sender = UserId(hub.id if n % 2 else other.id)
            body = f"message {n} of conversation {i}: " + "lorem ipsum dolor sit amet " * 2
            pending.append(SendRequest(sender, ref, body, f"{i}-{n}"))
            if len(pending) == 1000:
                await store.commit_batch(pending, 300_000)
                pending = []
    if pending:
        await store.commit_batch(pending, 300_000)
    return made


async def pages(
    store: SqlStore, made: list[tuple[ConversationId, int]], samples: int, rng: random.Random
) -> list[float]:
    took: list[float] = []
    for _ in range(samples):
        cid, per = rng.choice(made)
        before = rng.randint(PAGE + 1, per - 1)
        start = time.perf_counter()
        page = await store.history(cid, None, before=before, after=None, limit=PAGE)
        took.append((time.perf_counter() - start) * 1000)
        assert len(page) == PAGE and page[-1].seq == before - 1, (cid, before, len(page))
    return took


def quantiles(took: list[float]) -> dict[str, float]:
    ordered = sorted(took)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 3),
    }


async def size_of(store: SqlStore, url: str, folder: Path, *, compact: bool = False) -> int:
    """Bytes the database holds: SQLite's pages in use; PostgreSQL's database size
    (after VACUUM FULL of the two tables archiving shrinks, with ``compact``);
    MySQL's tables' data and indexes."""
    if url.startswith("sqlite"):
        # The pages in use (a VACUUM would give the file this size back).
        plain = sqlite3.connect(folder / "bench.db", isolation_level=None)
        try:
            pages = plain.execute("PRAGMA page_count").fetchone()[0]
            free = plain.execute("PRAGMA freelist_count").fetchone()[0]
            size = plain.execute("PRAGMA page_size").fetchone()[0]
        finally:
            plain.close()
        return int((pages - free) * size)
    engine = store._engines.writer  # noqa: SLF001 - a bench reads what it measures
    async with engine.connect() as conn:
        if url.startswith("postgresql"):
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if compact:
                # What a DELETE frees is reused by later inserts; VACUUM FULL
                # (pg_repack in production: it does not lock) gives it back.
                await conn.execute(text("VACUUM FULL messages"))
                await conn.execute(text("VACUUM FULL client_msg_ids"))
            row = await conn.execute(text("SELECT pg_database_size(current_database())"))
            return int(row.scalar_one())
        row = await conn.execute(
            text(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                "WHERE table_schema = DATABASE()"
            )
        )
        return int(row.scalar_one())


def largest_tables(url: str, folder: Path) -> dict[str, int]:
    """SQLite: bytes per table and index (dbstat), the five largest; elsewhere empty."""
    if not url.startswith("sqlite"):
        return {}
    plain = sqlite3.connect(folder / "bench.db", isolation_level=None)
    try:
        rows = plain.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 5"
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        plain.close()
    return {str(name): int(size) for name, size in rows}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="an empty database's URL (default: SQLite, temp)")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--per", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--results", help="append the record to this JSONL file")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        store = SqlStore.from_url(url, search_index=False)
        await store.open()
        blobs = await DiskBlobStore.open(folder / "files")
        try:
            started = time.perf_counter()
            made = await seed(store, args.conversations, args.per)
            seeded_s = time.perf_counter() - started
            total = args.conversations * args.per
            live = quantiles(await pages(store, made, args.samples, rng))
            size_before = await size_of(store, url, folder)

            started = time.perf_counter()
            report = await Archiver(store.archive(), blobs).run(0)
            archived_s = time.perf_counter() - started
            size_after = await size_of(store, url, folder, compact=True)
            tables_after = largest_tables(url, folder)

            store.use_archive(ParquetSegments(blobs, cache_bytes=0))
            cold = quantiles(await pages(store, made, args.samples, rng))
            store.use_archive(ParquetSegments(blobs))
            await pages(store, made, args.samples, rng)  # fill the cache
            warm = quantiles(await pages(store, made, args.samples, rng))
        finally:
            await blobs.close()
            await store.close()
    record: dict[str, Any] = {
        "bench": "archive",
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.node(),
        "database": url.split(":", 1)[0],
        "messages": total,
        "conversations": args.conversations,
        "seeded_msgs_per_s": round(total / seeded_s),
        "archived_msgs_per_s": round(report.messages / archived_s),
        "archived_messages": report.messages,
        "archive_files": report.segments,
        "archive_bytes": report.bytes,
        "database_bytes_before": size_before,
        "database_bytes_after": size_after,
        "largest_tables_after": tables_after,
        "page_live": live,
        "page_archived_uncached": cold,
        "page_archived_cached": warm,
    }
    print(json.dumps(record, indent=2))
    if args.results:
        append(Path(args.results), record)


def append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
