"""One big chat-list read on a Redis Cluster, round by round (state/spread.py).

    .venv/bin/python bench/spread_read.py --url redis://127.0.0.1:<port>/0

Fills one user's copy on a real Redis Cluster (``--url`` names any node; a
throwaway namespace) through the spread scripts, the same data as
``bench/chatlist_scripts.py`` (1,000 conversations, nine in ten groups,
every one unread), then reads it as a node does, ``--reads`` times: the
index (with the epoch), the heads, the sort, the page with the read seqs,
the total. Prints the client's median per round, then each round alone
with each primary's own time in it (``INFO commandstats``, reset before:
use a cluster nothing else uses). Keys expire after an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chatlist_scripts import one_users_copy  # bench/ is the script's folder
from redis.asyncio.cluster import RedisCluster

from tidings.ids import UserId
from tidings.state import redis as chat_lists
from tidings.state.spread import SpreadCopy

_TTL = 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="any node of a Redis Cluster")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    redis = RedisCluster.from_url(args.url)
    await redis.initialize()
    try:
        copy = SpreadCopy(redis, _TTL)
        copy.bind("{tidings_bench_" + secrets.token_hex(4) + ":cl2:bench.1}:")
        user = 1
        await fill(copy, user, args.conversations)
        rounds: dict[str, list[float]] = {}
        for _ in range(args.reads):
            await read_list(copy, user, args.page, rounds)
        for name, took in rounds.items():
            print(f"{name:7} median {statistics.median(took) * 1e3:6.2f} ms at the client")
        print(f"read    median {sum(statistics.median(t) for t in rounds.values()) * 1e3:6.2f} ms")
        await each_round_alone(redis, copy, user, args.page)
    finally:
        await redis.aclose()


async def fill(copy: SpreadCopy, user: int, count: int) -> None:
    index, heads = one_users_copy(user, count)
    epoch = await copy.epoch()
    absent = await copy.user_index(epoch, user)
    await copy.install(epoch, user, absent[1], index)
    for start in range(0, len(heads), 100):
        await copy.fill(epoch, heads[start : start + 100])


async def read_list(
    copy: SpreadCopy, user: int, limit: int, rounds: dict[str, list[float]]
) -> None:
    """What ``RedisChatList._spread_list`` does, without SQL (nothing is missing)."""
    marks = [time.perf_counter()]
    epoch, first = await copy.user_index_now(user)
    marks.append(time.perf_counter())
    listed = chat_lists._listed(first[1])
    heads = await copy.heads(epoch, listed)
    marks.append(time.perf_counter())
    index = chat_lists._read_index(first[1], heads, limit, {}, False)
    marks.append(time.perf_counter())
    page = [
        (cid, index.joins.get(cid, b""), read)
        for cid, read in zip(index.page, index.page_reads, strict=True)
    ]
    asked = index.asked[0::2]
    got = await copy.read(epoch, user, page, index.asked, asked + index.page)
    marks.append(time.perf_counter())
    assert got is not None
    shown, above, reads = got
    chat_lists._spread_total(index, above, reads[: len(asked)])
    chat_lists._spread_values(UserId(user), index.page, shown, reads[len(asked) :], index.joins)
    marks.append(time.perf_counter())
    for name, start, end in zip(
        ("index", "heads", "sort", "page", "total"), marks[:-1], marks[1:], strict=True
    ):
        rounds.setdefault(name, []).append(end - start)


async def each_round_alone(redis: RedisCluster, copy: SpreadCopy, user: int, limit: int) -> None:
    epoch, first = await copy.user_index_now(user)
    listed = chat_lists._listed(first[1])
    index = chat_lists._read_index(first[1], await copy.heads(epoch, listed), limit, {}, False)
    page = [
        (cid, index.joins.get(cid, b""), read)
        for cid, read in zip(index.page, index.page_reads, strict=True)
    ]
    fields = index.asked[0::2] + index.page
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "index": lambda: copy.user_index_now(user),
        "heads": lambda: copy.heads(epoch, listed),
        "page": lambda: copy.read(epoch, user, page, index.asked, fields),
    }
    primaries = redis.get_primaries()
    for name, call in calls.items():
        await redis.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
        took = []
        for _ in range(100):
            start = time.perf_counter()
            await call()
            took.append(time.perf_counter() - start)
        spent = []
        for node in primaries:
            stats = await redis.info("commandstats", target_nodes=node)
            spent.append(stats.get("cmdstat_evalsha", {}).get("usec", 0) // 100)
        print(
            f"{name:7} alone: {statistics.median(took) * 1e3:5.2f} ms at the client; "
            f"each primary's own µs per call: {', '.join(str(s) for s in spent)}"
        )


if __name__ == "__main__":
    main()
