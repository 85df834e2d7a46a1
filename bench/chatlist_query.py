"""The chat-list query on SQLite, shape against shape: the one-query form of stop 14
(every candidate row fully computed, then sorted) against the page-first form
(which since stop 16 also orders pinned entries first and carries
total_unread), and the total_unread subquery alone.

    .venv/bin/python bench/chatlist_query.py [RECALLS]

Seeds a fresh SQLite database through the real server (one reader in 1,000
groups, each with a peer's message and RECALLS recalled @-mentions of the
reader by the peer), then times both SQL statements on it, interleaved, 40
rounds, and prints the medians. Both must return the same 100 rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.dialects import sqlite

from tidings.app import build_app
from tidings.client import Client
from tidings.config import Settings
from tidings.store import rows
from tidings.store.schema import members

CONVERSATIONS = 1000
PAGE = 100


async def seed(folder: Path, recalls: int) -> Path:
    database = folder / "tidings.db"
    settings = Settings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite+aiosqlite:///{database}",
        rate_limit_user=0,
        rate_limit_connection=0,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )
    runner = web.AppRunner(build_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with Client(url) as reader, Client(url) as peer:
            me = await reader.signup("reader", "password1")
            await reader.login("reader", "password1")
            other = await peer.signup("peer", "password1")
            await peer.login("peer", "password1")
            gate = asyncio.Semaphore(16)

            async def one(index: int) -> None:
                async with gate:
                    group = await reader.create_group(f"g{index}", [other.id])
                    conversation = f"g:{group.id}"
                    await reader.send(conversation, f"hello {index}")
                    await peer.send(conversation, f"reply {index}")
                    for _ in range(recalls):
                        sent = await peer.send(conversation, "@you", mentions=[me.id])
                        await peer.recall(conversation, sent.seq)

            await asyncio.gather(*(one(i) for i in range(CONVERSATIONS)))
    finally:
        await runner.cleanup()
    return database


def sql(query: Any) -> str:
    return str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def main() -> None:
    recalls = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with tempfile.TemporaryDirectory() as folder:
        database = asyncio.run(seed(Path(folder), recalls))
        user = 1
        one_query = (
            rows.CHAT_LIST.where(members.c.user_id == user)
            .order_by(rows.UPDATED_AT.desc(), members.c.conversation_id)
            .limit(PAGE)
        )
        shapes = {
            "one query": sql(one_query),
            "page first": sql(rows.chat_list_page(user, PAGE)),
            "total alone": sql(rows.total_unread(user)),
        }
        db = sqlite3.connect(database)
        answers = {name: db.execute(text).fetchall() for name, text in shapes.items()}
        # The page-first form carries total_unread (PROTOCOL-v2 §5) as its last column.
        paged = [row[:-1] for row in answers["page first"]]
        assert answers["one query"] == paged and len(paged) == PAGE
        times: dict[str, list[float]] = {name: [] for name in shapes}
        for _ in range(40):
            for name, text in shapes.items():
                start = time.perf_counter()
                db.execute(text).fetchall()
                times[name].append((time.perf_counter() - start) * 1000)
        for name, taken in times.items():
            print(
                f"{name:10s} median {statistics.median(taken):.2f} ms"
                f"  ({CONVERSATIONS} conversations, page {PAGE}, {recalls} recalls each)"
            )


if __name__ == "__main__":
    main()
