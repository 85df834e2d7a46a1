"""SQL statements one chat-list read costs on PostgreSQL + Redis, counted, not timed.

    .venv/bin/python bench/chatlist_statements.py [GROUPS]

Starts the server in this process on a fresh PostgreSQL database
(127.0.0.1:5432, user postgres) with the Redis chat list (127.0.0.1:6379, a
prefix of its own), makes one user a member of GROUPS groups (default 20)
with a message in each, reads the list twice (the Redis copy is built), then
counts the statements the reader engine runs over 5 more reads. A count is
exact where a timing on a shared machine is not: stop 17 added one SQL round
trip per list (group names), stop 18 took it back.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from sqlalchemy import event

import tidings.store.sql
from tidings.app import build_app
from tidings.client import Client
from tidings.config import Settings
from tidings.store.engines import Engines, create_engines

READS = 5
statements: list[str] = []


def counting_engines(url: str, **options: Any) -> Engines:
    engines = create_engines(url, **options)

    @event.listens_for(engines.reader.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split())[:80])

    return engines


async def main(groups: int) -> None:
    tidings.store.sql.create_engines = counting_engines  # type: ignore[assignment]
    database = f"bench_statements_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f"create database {database}")
    try:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
            redis_url="redis://127.0.0.1:6379/0",
            redis_prefix=f"{database}:",
        )
        runner = web.AppRunner(build_app(settings), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        reader, peer = Client(url), Client(url)
        try:
            await reader.signup("reader", "password1", "Reader")
            other = await peer.signup("peer", "password1", "Peer")
            await reader.login("reader", "password1")
            for n in range(groups):
                group = await reader.create_group(f"group {n}", [other.id])
                await reader.send(f"g:{group.id}", "hello")
            for _ in range(2):
                await reader.chat_list(100)
            statements.clear()
            for _ in range(READS):
                await reader.chat_list(100)
            print(f"reader statements per chat list of {groups} groups: {len(statements) / READS}")
            for statement in sorted(set(statements)):
                print("  ", statement)
        finally:
            await reader.close()
            await peer.close()
            await runner.cleanup()
    finally:
        await admin.execute(f"drop database {database} with (force)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
