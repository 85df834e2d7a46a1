"""PostgreSQL round trips one write batch costs, counted on the wire, not timed.

    .venv/bin/python bench/batch_statements.py [SENDS]

Starts the server in this process on a fresh PostgreSQL database
(127.0.0.1:5432, user postgres) with Redis (127.0.0.1:6379, a prefix of its
own), then sends SENDS messages (default 20) one at a time, each awaited, so
each is a batch of its own, in four shapes: private and group (5 members),
each without and with a client_msg_id. Last, a burst: 10 senders send 20
messages each at once, as the batcher groups them.

A round trip is one request to PostgreSQL that waits for its answer: each
call into asyncpg's protocol (a simple query such as BEGIN or COMMIT, a
prepare, a bind-and-execute). They are counted by wrapping the protocol of
every connection the write engines open, so the pool's pre-ping (BEGIN,
``;``, ROLLBACK on asyncpg) and the transaction's own BEGIN and COMMIT count
as what they cost. SQLAlchemy's view is printed beside it: pool checkouts
(each pays a ping when the pool pre-pings), BEGIN and COMMIT events, and
statements. A count is exact where a timing on a shared machine is not
(docs/benchmarks.md, stop 19b).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiohttp import web
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

import tidings.store.sql
from tidings.app import build_app
from tidings.client import Client
from tidings.config import Settings
from tidings.store.engines import Engines, create_engines

# Calls into asyncpg's protocol that each send a request and wait for its answer.
_ROUND_TRIPS = (
    "query",
    "prepare",
    "bind_execute",
    "bind_execute_many",
    "bind",
    "execute",
    "close_statement",
)


class Tally:
    """What the write path sent to PostgreSQL since the last ``clear``."""

    def __init__(self) -> None:
        self.trips: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()
        self.batches = 0

    def clear(self) -> None:
        self.trips.clear()
        self.events.clear()
        self.statements.clear()
        self.batches = 0


tally = Tally()


class _CountingProtocol:
    """asyncpg's protocol with each round trip counted; everything else passed through."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._protocol, name)
        if name not in _ROUND_TRIPS:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            tally.trips[_label(name, args)] += 1
            return found(*args, **kwargs)

        return counted


def _label(name: str, args: tuple[Any, ...]) -> str:
    """A round trip as printed: a simple query by its text, the rest by their kind."""
    if name == "query" and args:
        return f"query {' '.join(str(args[0]).split())[:40]}"
    return name


def _count(engine: AsyncEngine, label: str) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        raw = dbapi_connection._connection  # the asyncpg connection under SQLAlchemy's adapter
        raw._protocol = _CountingProtocol(raw._protocol)

    @event.listens_for(sync.pool, "checkout")
    def _checkout(*_args: Any) -> None:
        pinged = " (pre-ping)" if getattr(sync.pool, "_pre_ping", False) else ""
        tally.events[f"{label}: pool checkout{pinged}"] += 1

    @event.listens_for(sync, "begin")
    def _begin(_conn: Any) -> None:
        tally.events[f"{label}: BEGIN"] += 1

    @event.listens_for(sync, "commit")
    def _commit(_conn: Any) -> None:
        tally.events[f"{label}: COMMIT"] += 1

    @event.listens_for(sync, "before_cursor_execute")
    def _statement(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        tally.statements[f"{label}: {' '.join(statement.split())[:90]}"] += 1


def counting_engines(url: str, **options: Any) -> Engines:
    engines = create_engines(url, **options)
    _count(engines.writer, "writer")
    # The batches' own engine, where the branch has one (stop 19b).
    batch_writer = getattr(engines, "batch_writer", None)
    if isinstance(batch_writer, AsyncEngine) and batch_writer is not engines.writer:
        _count(batch_writer, "batch")
    return engines


def _count_batches() -> None:
    commit_batch = tidings.store.sql.SqlStore.commit_batch

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        tally.batches += 1
        return await commit_batch(self, *args, **kwargs)

    tidings.store.sql.SqlStore.commit_batch = counted  # type: ignore[method-assign]


async def _measure(title: str, sends: Callable[[], Awaitable[None]], verbose: bool) -> None:
    await asyncio.sleep(0.3)  # let the warm-up's after-commit work settle
    tally.clear()
    await sends()
    await asyncio.sleep(0.3)
    batches = max(tally.batches, 1)
    trips = sum(tally.trips.values())
    print(f"{title}: {tally.batches} batches, ROUND TRIPS per batch {trips / batches:.2f}")
    for label, n in sorted(tally.events.items()):
        print(f"    {n / batches:5.2f}  {label}")
    for label, n in tally.trips.most_common():
        print(f"    {n / batches:5.2f}  round trip: {label}")
    if verbose:
        for statement, n in tally.statements.most_common():
            print(f"    {n / batches:5.2f}  statement: {statement}")


async def main(count: int) -> None:
    tidings.store.sql.create_engines = counting_engines  # type: ignore[attr-defined, assignment]
    _count_batches()
    database = f"bench_batch_{uuid.uuid4().hex[:8]}"
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
        clients: list[Client] = []
        try:
            ids: list[int] = []
            for n in range(20):
                client = Client(url)
                clients.append(client)
                user = await client.signup(f"user{n}", "password1")
                await client.login(f"user{n}", "password1")
                ids.append(user.id)
            sockets = [await client.connect() for client in clients]
            first = sockets[0]
            private = f"p:{min(ids[0], ids[1])}-{max(ids[0], ids[1])}"
            group = await clients[0].create_group("five", ids[1:5])
            grouped = f"g:{group.id}"

            def one_by_one(conversation: str, keyed: bool) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    for k in range(count):
                        key = uuid.uuid4().hex if keyed else None
                        await first.send(conversation, f"m{k}", key)

                return run

            shapes = [
                ("private send", private, False),
                ("private send with client_msg_id", private, True),
                ("group send (5 members)", grouped, False),
                ("group send (5 members) with client_msg_id", grouped, True),
            ]
            for title, conversation, keyed in shapes:
                await first.send(conversation, "warm", uuid.uuid4().hex if keyed else None)
                await _measure(title, one_by_one(conversation, keyed), verbose=True)

            pairs = [
                (sockets[i], f"p:{min(ids[i], ids[i + 1])}-{max(ids[i], ids[i + 1])}")
                for i in range(0, 20, 2)
            ]
            for socket, conversation in pairs:
                await socket.send(conversation, "warm")

            async def burst() -> None:
                await asyncio.gather(*(s.send(c, f"m{k}") for s, c in pairs for k in range(count)))

            await _measure(f"burst: 10 private senders x {count} at once", burst, verbose=False)
            for socket in sockets:
                await socket.close()
        finally:
            for client in clients:
                await client.close()
            await runner.cleanup()
    finally:
        await admin.execute(f"drop database {database} with (force)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
