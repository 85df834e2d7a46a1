"""``history``: a page of 50 (``--page``) from a large messages table, at random places.

The table is seeded once (``tidings.bench.seed``, bulk SQL, not the API)
with ``--history-messages`` messages over ``--history-conversations``
groups of one reader, and reused by later runs on the same database: the
reader's name is fixed and a conversation already full is not refilled.
Each request reads ``before`` a random seq of a random conversation, the
way a client scrolls back, so pages come from all over the table.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import aiohttp

from tidings.bench.accounts import make_user
from tidings.bench.context import Context
from tidings.bench.requests import measure_requests
from tidings.bench.seed import seed_history, seeded_counts
from tidings.bench.stats import latency_summary
from tidings.client import Client

READER = "history_reader"


async def _prepare(ctx: Context, session: aiohttp.ClientSession) -> tuple[str, list[str], int]:
    o = ctx.options
    if ctx.database_url is None:
        raise SystemExit("history needs --database (the bench seeds the table directly)")
    per = max(o.page + 1, o.history_messages // o.history_conversations)
    reader = await make_user(ctx.url, READER, session)
    client = Client(ctx.url, reader.token, session=session)
    found = [c.id for c in await client.conversations(limit=10_000) if c.type == "group"]
    while len(found) < o.history_conversations:  # bounded: one group per missing one
        found.append(f"g:{(await client.create_group('history', [])).id}")
    ids = sorted(found)[: o.history_conversations]
    counts = await seeded_counts(ctx.database_url, ids)
    # A new group holds its created notice (seq 1); a seeded one per messages more.
    empty = [cid for cid in ids if counts.get(cid, 0) <= 1]
    partial = [cid for cid in ids if counts.get(cid, 0) not in (0, 1, per + 1)]
    if partial:
        raise SystemExit(f"history table seeded with another size ({partial[0]}); use a new db")
    if empty:
        print(f"seeding {len(empty) * per:,} messages ...", file=sys.stderr, flush=True)
        seconds = await seed_history(ctx.database_url, empty, reader.id, per)
        ctx.cache["history_seed_seconds"] = round(seconds, 1)
    return reader.token, ids, per


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    async with aiohttp.ClientSession() as session:
        if "history" not in ctx.cache:
            ctx.cache["history"] = await _prepare(ctx, session)
        token, ids, per = ctx.cache["history"]
        client = Client(ctx.url, token, session=session)
        picker = random.Random(7)

        async def page() -> int:
            before = picker.randint(o.page + 2, per + 2)  # seqs 2..per+1 are messages
            return len(await client.messages(picker.choice(ids), before=before, limit=o.page))

        if ctx.probe is not None:
            ctx.probe.start()
        window = await measure_requests(
            page, warmup=o.warmup, duration=o.duration, concurrency=o.http_concurrency
        )
        probed = ctx.probe.stop() if ctx.probe is not None else {}
    short = sum(size != o.page for size in window.answers)
    figures: dict[str, Any] = {
        "table_messages": per * len(ids),
        "conversations": len(ids),
        "page": o.page,
        "requests_per_s": window.per_second,
        "concurrency": o.http_concurrency,
        "short_pages": short,
        "lost": short,
        "duplicated": 0,
    }
    if "history_seed_seconds" in ctx.cache:
        figures["seed_seconds"] = ctx.cache["history_seed_seconds"]
    figures.update(latency_summary(window.latencies_us))
    figures.update(probed)
    return figures
