"""CPU per private send in the store alone: write batches, no sockets, no network.

    PYTHONPATH=<checkout> .venv/bin/python bench/store_sends.py [--batch 200] [--batches 300]
        [--rounds 3] [--database URL] [--search-index]

Makes 1,000 users and 500 private conversations on a fresh SQLite file (or
the database URL given, which must be empty), then commits ``--batches``
write batches of ``--batch`` plain text sends each through
``SqlStore.commit_batch``, as the server's writer does, and prints the
process CPU time per send (the batch thread's and the caller's) and the
sends per second, per round and as medians.

This is the write path's own cost, which the socket benchmarks mix with
parsing, acks and deliveries, and on a shared machine with its noise. It
runs against whatever ``tidings`` is on ``PYTHONPATH``, so the same file
measures an older checkout (a ``git worktree``): interleave the two and
compare the medians (docs/benchmarks.md, stop 20). The search index is off
unless ``--search-index`` (its indexer works beside the sends, not in them).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tidings.ids import PrivateRef, UserId, parse_conversation
from tidings.store import SendRequest
from tidings.store.sql import SqlStore

BODY = "x" * 100
SEPARATOR_GAP_MS = 300_000


async def one_round(url: str, batch: int, batches: int, search_index: bool) -> tuple[float, float]:
    options: dict[str, Any] = {}
    # Older checkouts have no search index and no such option.
    if "search_index" in inspect.signature(SqlStore.from_url).parameters:
        options["search_index"] = search_index
    store = SqlStore.from_url(url, **options)
    await store.open()
    try:
        users = [(await store.create_user(f"u{i}", f"u{i}", None)).id for i in range(1000)]
        refs: list[PrivateRef] = []
        for i in range(500):
            low, high = sorted((users[i], users[i + 500]))
            ref = parse_conversation(f"p:{low}-{high}")
            assert isinstance(ref, PrivateRef)
            refs.append(ref)

        def requests(number: int) -> list[SendRequest]:
            picked = [refs[(number * batch + i) % len(refs)] for i in range(batch)]
            return [SendRequest(UserId(ref.low), ref, BODY, None) for ref in picked]

        for number in range(20):  # the conversations made, the code warm
            await store.commit_batch(requests(number), SEPARATOR_GAP_MS)
        cpu, wall = time.process_time(), time.perf_counter()
        for number in range(batches):
            await store.commit_batch(requests(20 + number), SEPARATOR_GAP_MS)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await store.close()
    sends = batch * batches
    return cpu / sends * 1e6, sends / wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=200, help="sends per write batch")
    parser.add_argument("--batches", type=int, default=300, help="batches measured per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--search-index", action="store_true", help="keep the search index on")
    args = parser.parse_args()
    cpus, rates = [], []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            if args.database and number:
                raise SystemExit("--database takes one round: the next needs an empty database")
            cpu, rate = await one_round(url, args.batch, args.batches, args.search_index)
        cpus.append(cpu)
        rates.append(rate)
        print(f"round {number + 1}: {cpu:.1f} us CPU per send, {rate:,.0f} sends/s")
    print(
        f"median: {statistics.median(cpus):.1f} us CPU per send,"
        f" {statistics.median(rates):,.0f} sends/s"
        f" ({args.batch} sends per batch, {args.batches} batches per round)"
    )


if __name__ == "__main__":
    asyncio.run(main())
