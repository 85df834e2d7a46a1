"""``chatlist``: GET /api/v1/conversations for a user in ``--conversations`` conversations.

The user's conversations are made once per invocation through the API:
groups it owns (a group of one costs no extra user, unlike a private chat,
whose peer needs an argon2 sign-up), each with one message so the list is
ordered by real activity, plus private chats with pool users already
made. Requests then run back to back (``--http-concurrency`` at a time).

``--chatlist-recalls R`` makes each group a pair with a pool user, who
then sends R messages that @ the list's user and recalls each: 2R
uncounted seqs and R mention rows above the user's read position in every
conversation, the worst case for the v2 counts (PROTOCOL-v2 §1), which
must still come in the same round trips.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tidings.bench.accounts import make_user
from tidings.bench.context import Context
from tidings.bench.requests import measure_requests
from tidings.bench.stats import latency_summary
from tidings.client import Client, private_conversation

SETUP_CONCURRENCY = 8
DEFAULT_PAGE = 100  # the contract's default ?limit=


async def _seed(ctx: Context, session: aiohttp.ClientSession) -> str:
    count = ctx.options.conversations
    user = await make_user(ctx.url, f"{ctx.pool.prefix}list", session)
    client = Client(ctx.url, user.token, session=session)
    peers = [u for u in ctx.pool.users[: count // 10] if u.id != user.id]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    recalls = ctx.options.chatlist_recalls
    other = Client(ctx.url, peers[0].token, session=session) if recalls and peers else None

    async def group(index: int) -> None:
        async with gate:
            members = [] if other is None else [peers[0].id]
            made = await client.create_group(f"list {index}", members)
            conversation = f"g:{made.id}"
            await client.send(conversation, f"hello {index}")
            if other is not None:
                for _ in range(recalls):
                    sent = await other.send(conversation, "@you", mentions=[user.id])
                    await other.recall(conversation, sent.seq)

    async def private(peer_id: int) -> None:
        async with gate:
            await client.send(private_conversation(user.id, peer_id), "hello")

    await asyncio.gather(
        *(group(i) for i in range(count - len(peers))), *(private(p.id) for p in peers)
    )
    return user.token


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    connector = aiohttp.TCPConnector(limit=max(SETUP_CONCURRENCY, o.http_concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:
        if "chatlist_token" not in ctx.cache:
            ctx.cache["chatlist_token"] = await _seed(ctx, session)
        client = Client(ctx.url, ctx.cache["chatlist_token"], session=session)
        params = None if o.chatlist_limit is None else o.chatlist_limit
        expected = min(o.conversations, o.chatlist_limit or DEFAULT_PAGE)

        async def page() -> int:
            return len(await client.conversations(params))

        if ctx.probe is not None:
            ctx.probe.start()
        window = await measure_requests(
            page, warmup=o.warmup, duration=o.duration, concurrency=o.http_concurrency
        )
        probed = ctx.probe.stop() if ctx.probe is not None else {}
    figures: dict[str, Any] = {
        "conversations": o.conversations,
        "recalls_per_conversation": o.chatlist_recalls,
        "entries_per_page": sorted(set(window.answers)),
        "requests_per_s": window.per_second,
        "concurrency": o.http_concurrency,
        # pages with fewer entries than the user has (up to the limit)
        "lost": sum(size < expected for size in window.answers),
        "duplicated": 0,
    }
    figures.update(latency_summary(window.latencies_us))
    figures.update(probed)
    return figures
