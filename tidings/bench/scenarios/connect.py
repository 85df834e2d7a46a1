"""``connect``: N idle authenticated connections, and what each costs the server in RSS.

A few users are logged in and their tokens reused by many sockets (logins
cost an argon2 hash each). Process ``i`` connects from 127.0.0.(2+i), so
that no source address runs out of ephemeral ports (~28k per destination).
The server's RSS is read before the connections open and after they have
settled; the difference over N is the figure. A spawned server is started
afresh for each run, or memory freed by the previous run would be reused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tidings.bench.context import Context, split
from tidings.bench.spec import Member

SETTLE_SECONDS = 2.0


async def run(ctx: Context, connections: int) -> dict[str, Any]:
    o = ctx.options
    if ctx.respawn is not None:
        # A fresh server: memory freed by an earlier run would be reused and hide the cost.
        ctx.respawn()
    if ctx.target == "socketio":
        ids_tokens = [(i + 1, "") for i in range(o.connect_users)]
    else:
        ids_tokens = [(u.id, u.token) for u in await ctx.pool.take(o.connect_users)]
    members = [Member(*ids_tokens[i % len(ids_tokens)]) for i in range(connections)]
    processes = max(o.processes, -(-connections // 9000))  # each under the per-process fd cap
    specs = [
        ctx.spec(part, hold=True, local_host=f"127.0.0.{2 + i}", connect_concurrency=100)
        for i, part in enumerate(split(members, processes))
    ]
    return await asyncio.to_thread(_hold, ctx, specs, connections)


def _hold(ctx: Context, specs: list[Any], connections: int) -> dict[str, Any]:
    from tidings.bench.fleet import Fleet

    probe = ctx.probe
    before = probe.rss() if probe is not None else 0
    fleet = Fleet(specs, ctx.load_cpus)
    started = time.monotonic()
    try:
        opened, retried = fleet.open()
        elapsed = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        after = probe.rss() if probe is not None else 0
        fleet.stop()
    finally:
        fleet.join()
    figures: dict[str, Any] = {
        "connections": opened,
        "connect_per_s": round(opened / elapsed, 1),
        "connect_retries": retried,
        "lost": connections - opened,
        "duplicated": 0,
    }
    if probe is not None:
        figures["server_rss_before_mib"] = round(before / 2**20, 1)
        figures["server_rss_after_mib"] = round(after / 2**20, 1)
        figures["rss_per_connection_kib"] = round((after - before) / opened / 1024, 2)
    return figures
