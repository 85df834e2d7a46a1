"""``private``: pairs of users, each sender messaging its partner, acked and delivered.

Closed loop (``--window`` sends in flight per sender, one more on each
ack) finds the maximum rate; open loop (``--rate`` msgs/s in total) holds a
set rate and shows the latency at that rate. Pairs are whole within a
process, so a pair's sender and receiver share nothing but the server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tidings.bench.context import Context, delivery_summary, split
from tidings.bench.spec import Member
from tidings.client import private_conversation


async def pair_members(ctx: Context, pairs: int) -> list[tuple[Member, Member]]:
    if ctx.target == "socketio":
        ids = [(2 * i + 1, 2 * i + 2) for i in range(pairs)]
        tokens = [("", "") for _ in ids]
        targets = [f"u:{b}" for _, b in ids]
    else:
        users = await ctx.pool.take(2 * pairs)
        ids = [(users[2 * i].id, users[2 * i + 1].id) for i in range(pairs)]
        tokens = [(users[2 * i].token, users[2 * i + 1].token) for i in range(pairs)]
        targets = [private_conversation(a, b) for a, b in ids]
    return [
        (Member(a, ta, sends_to=target), Member(b, tb, listens=(target,)))
        for (a, b), (ta, tb), target in zip(ids, tokens, targets, strict=True)
    ]


async def run(ctx: Context, *, open_loop: bool) -> dict[str, Any]:
    o = ctx.options
    pairs = await pair_members(ctx, o.pairs)
    groups = split(pairs, o.processes)
    rate = o.rate / len(groups) if open_loop else 0.0
    nonce = ctx.nonce()  # one per run: receivers ignore other runs' messages by it
    specs = [
        ctx.spec(
            [m for pair in group for m in pair],
            window=o.window,
            rate=rate,
            nonce=nonce,
            recall_every=o.recall_every,
        )
        for group in groups
    ]
    results, probed = await asyncio.to_thread(ctx.run_fleet, specs)
    figures: dict[str, Any] = {
        "pairs": o.pairs,
        "mode": f"open {o.rate:g}/s" if open_loop else f"closed window {o.window}",
    }
    if o.recall_every:
        figures["v2"] = f"recall 1/{o.recall_every}"
    figures.update(delivery_summary(results, o.duration))
    figures.update(probed)
    return figures
