"""Read-by (PROTOCOL-v2 §6) for a group of 5,000 on PostgreSQL: the p50 and
p99 of ``GET /api/v1/conversations/{id}/messages/{seq}/reads``, end to end
over HTTP, and of the store's one query alone.

    .venv/bin/python bench/readby_query.py [POSTGRES_ADMIN_URL]

Creates a fresh database (dropped at the end), starts the server on it in
this process, sends 100 messages as the group's owner, then adds 4,999
members straight into SQL with random read positions (0 to 100) and asks
who read a random one of the 100 messages, 300 times, one at a time.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import sys
import time

from aiohttp import web
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tidings.app import build_app
from tidings.client import Client
from tidings.config import Settings
from tidings.ids import ConversationId
from tidings.store.schema import members, users
from tidings.store.sql import SqlStore

ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MEMBERS = 5000
MESSAGES = 100
ASKS = 300


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(admin_url: str) -> None:
    name = f"tidings_readby_{secrets.token_hex(4)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        await measure(url)
    finally:
        if "--keep" in sys.argv:  # to look at the plans afterwards
            print(f"kept the database {name}")
        else:
            async with admin.connect() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


async def measure(url: str) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        database_url=url,
        rate_limit_user=0,
        rate_limit_connection=0,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )
    runner = web.AppRunner(build_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    rng = random.Random(5000)
    try:
        async with Client(base) as owner:
            await owner.signup("owner", "password1")
            await owner.login("owner", "password1")
            group = await owner.create_group("five thousand", [])
            team = f"g:{group.id}"
            for i in range(MESSAGES):
                await owner.send(team, f"message {i}")
            engine = create_async_engine(url)
            async with engine.begin() as conn:
                first = 1_000_000
                await conn.execute(
                    insert(users),
                    [
                        {
                            "id": first + i,
                            "username": f"m{first + i}",
                            "username_key": f"m{first + i}",
                            "display_name": f"Member {i}",
                            "password_hash": None,
                            "created_at": 0,
                        }
                        for i in range(MEMBERS - 1)
                    ],
                )
                await conn.execute(
                    insert(members),
                    [
                        {
                            "conversation_id": team,
                            "user_id": first + i,
                            "peer_id": None,
                            "joined_seq": 0,
                            "read_seq": rng.randint(0, MESSAGES),
                            "joined_at": 0,
                            "join_rank": i + 1,
                        }
                        for i in range(MEMBERS - 1)
                    ],
                )
                await conn.execute(text("ANALYZE members"))
            await engine.dispose()
            http: list[float] = []
            for _ in range(ASKS):
                seq = rng.randint(1, MESSAGES)
                start = time.perf_counter()
                got = await owner.read_by(team, seq)
                http.append((time.perf_counter() - start) * 1000)
                assert got.read + got.unread == MEMBERS - 1
        store = SqlStore.from_url(url)
        await store.open()
        try:
            alone: list[float] = []
            for _ in range(ASKS):
                seq = rng.randint(1, MESSAGES)
                start = time.perf_counter()
                found = await store.readers(ConversationId(team), seq)
                alone.append((time.perf_counter() - start) * 1000)
                assert found is not None
                assert len(found.read_ids) + len(found.unread_ids) == MEMBERS
        finally:
            await store.close()
    finally:
        await runner.cleanup()
    for label, taken in (("GET …/reads over HTTP", http), ("the store's query", alone)):
        p50, p99 = statistics.median(taken), percentile(taken, 0.99)
        print(f"{label:22s} p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({MEMBERS} members, {ASKS} asks)")


if __name__ == "__main__":
    given = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(given[0] if given else ADMIN))
