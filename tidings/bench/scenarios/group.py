"""``group``: one group of ``--members`` users, all online, ``--senders`` of them sending.

The message is stored once and delivered to every other online member, so
the figure is deliveries/s (``delivered_per_s``), the fan-out rate. A new
group per run keeps runs apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tidings.bench.context import Context, delivery_summary, split
from tidings.bench.spec import Member
from tidings.client import Client, group_conversation


async def group_members(ctx: Context, size: int, senders: int) -> list[Member]:
    nonce = ctx.nonce()
    if ctx.target == "socketio":
        target = f"g:{nonce}"
        ids_tokens = [(i + 1, "") for i in range(size)]
        rooms: tuple[str, ...] = (target,)
    else:
        users = await ctx.pool.take(size)
        async with Client(ctx.url, users[0].token) as owner:
            group = await owner.create_group(f"bench {nonce}", [u.id for u in users[1:]])
        target = group_conversation(group.id)
        ids_tokens = [(u.id, u.token) for u in users]
        rooms = ()
    return [
        Member(uid, token, sends_to=target if i < senders else None, listens=(target,), rooms=rooms)
        for i, (uid, token) in enumerate(ids_tokens)
    ]


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    members = await group_members(ctx, o.members, o.senders)
    # Deal senders first so that they spread over the processes.
    nonce = ctx.nonce()  # one per run: receivers ignore other runs' messages by it
    mentioned = tuple(m.user_id for m in members[o.senders : o.senders + o.mentions])
    specs = [
        ctx.spec(
            part,
            window=o.group_window,
            nonce=nonce,
            mention_ids=mentioned,
            mention_every=o.mention_every,
            recall_every=o.recall_every,
            typing_rate=o.typing_rate / o.processes,
        )
        for part in split(members, o.processes)
    ]
    results, probed = await asyncio.to_thread(ctx.run_fleet, specs)
    figures: dict[str, Any] = {
        "members": o.members,
        "senders": o.senders,
        "mode": f"closed window {o.group_window}",
    }
    if o.mention_every or o.recall_every:
        figures["v2"] = f"mention 1/{o.mention_every or '-'} recall 1/{o.recall_every or '-'}"
    figures.update(delivery_summary(results, o.duration))
    if o.typing_rate:
        # Sent: frames the members sent; heard: typing events the members got
        # (each relay reaches every other member: at most 10 typists per 2 s).
        figures["typing_sent_per_s"] = round(sum(r.typing_sent for r in results) / o.duration, 1)
        figures["typing_heard_per_s"] = round(sum(r.typing_heard for r in results) / o.duration, 1)
    figures["messages_per_s"] = round(figures["delivered_per_s"] / max(1, o.members - 1), 1)
    figures.update(probed)
    return figures
