"""The Redis chat list is a copy of one database as it is now, never of another (issue 16).

Each test starts real servers on real databases and one shared Redis, and
checks the lists a user would see against a server of the same database
with the Redis chat list turned off (it computes every entry from SQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis import asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.backends import BACKENDS, database_url, redis_url
from tests.conftest import FAST_HASHER, PASSWORD, RunningServer, settings_for
from tests.loopback import start_loopback
from tests.test_redis_chat_list import metric
from tidings.app import build_app
from tidings.client import ApiError, Client
from tidings.redis_target import RedisTarget
from tidings.state.restore import restored
from tidings.store.migrate import upgrade


class Deployment:
    """Servers on one database and the test's Redis prefix, stopped with ``stop``."""

    def __init__(self, database: str, redis: str, prefix: str, tmp_path: Path) -> None:
        self.database, self.redis, self.prefix, self.tmp_path = database, redis, prefix, tmp_path
        self._runners: list[web.AppRunner] = []
        self._clients: list[Client] = []

    async def server(self, **changes: Any) -> RunningServer:
        given = {"database_url": self.database, "redis_url": self.redis}
        settings = settings_for(self.tmp_path, **(given | {"redis_prefix": self.prefix} | changes))
        app = build_app(settings, hasher=FAST_HASHER)
        runner, origin = await start_loopback(
            app, handle_signals=False, access_log=None, shutdown_timeout=5
        )
        self._runners.append(runner)
        return RunningServer(origin, settings, app)

    def client(self, server: RunningServer, token: str | None = None) -> Client:
        client = Client(server.url, token=token)
        self._clients.append(client)
        return client

    async def stop(self) -> None:
        for client in self._clients:
            await client.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._clients, self._runners = [], []


async def signed_up(deployment: Deployment, server: RunningServer, *names: str) -> list[Client]:
    clients = []
    for name in names:
        client = deployment.client(server)
        await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        clients.append(client)
    return clients


async def logged_in(deployment: Deployment, server: RunningServer, *names: str) -> list[Client]:
    clients = []
    for name in names:
        client = deployment.client(server)
        await client.login(name, PASSWORD)
        clients.append(client)
    return clients


async def assert_lists_are_sql(
    deployment: Deployment, cached: list[Client], oracle: RunningServer
) -> None:
    for client in cached:
        expected = await deployment.client(oracle, client.token).conversations()
        assert await client.conversations() == expected


async def namespaces(redis: str, prefix: str) -> set[str]:
    """The chat-list namespaces under the prefix that hold a copy: ``{identity}.{generation}``."""
    connection = aioredis.Redis.from_url(redis)
    try:
        keys = [k.decode() async for k in connection.scan_iter(f"{prefix}cl2:*epoch")]
    finally:
        await connection.aclose()
    return {k.removeprefix(f"{prefix}cl2:").removesuffix(":epoch") for k in keys}


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[str, str]]:
    async with redis_url() as url:
        yield url, f"tidings_t_{secrets.token_hex(6)}:"


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
async def test_a_new_database_on_the_same_redis_shows_only_its_own_messages(
    backend: str, tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    """The issue's two steps: db_one's lists must not show up over db_two."""
    redis, prefix = shared_redis
    async with (
        database_url(backend, tmp_path) as db_one,
        database_url(backend, tmp_path) as db_two,
    ):
        one = Deployment(db_one, redis, prefix, tmp_path)
        try:
            server = await one.server()
            alice, bob = await signed_up(one, server, "alice", "bob")
            group = await alice.create_group("team", [2])
            assert group.id == 1
            for n in range(10):
                await alice.send("p:1-2", f"p{n}")
                await alice.send("g:1", f"g{n}")
            assert [(e.id, e.unread) for e in await bob.conversations()] == [
                ("g:1", 10),
                ("p:1-2", 10),
            ]
        finally:
            await one.stop()

        two = Deployment(db_two, redis, prefix, tmp_path)
        try:
            server = await two.server()
            oracle = await two.server(redis_chat_list=False)
            alice, bob = await signed_up(two, server, "alice", "bob")
            await alice.create_group("team", [2])
            [entry] = await bob.conversations()
            # db_two's group 1 shows its own created notice, not db_one's ten messages.
            assert (entry.id, entry.last_seq, entry.unread) == ("g:1", 1, 0)
            assert entry.last_message is not None and entry.last_message.kind == "system"
            assert entry.last_message.body == 'alice created the group "team"'
            sent = await alice.send("p:1-2", "the first message of db_two")
            assert sent.seq == 1
            private = next(e for e in await bob.conversations() if e.id == "p:1-2")
            assert (private.last_seq, private.unread) == (1, 1)
            assert private.last_message is not None
            assert private.last_message.body == "the first message of db_two"
            await assert_lists_are_sql(two, [alice, bob], oracle)
            assert len(await namespaces(redis, prefix)) == 2, "one copy per database"
        finally:
            await two.stop()


async def test_a_restart_on_the_same_database_keeps_the_copy(
    tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    """No rebuild storm: the next node on the same database reads the copy as it is."""
    redis, prefix = shared_redis
    async with database_url("postgresql", tmp_path) as database:
        deployment = Deployment(database, redis, prefix, tmp_path)
        names = [f"user{n}" for n in range(5)]
        try:
            server = await deployment.server()
            clients = await signed_up(deployment, server, *names)
            await clients[0].create_group("all", [2, 3, 4, 5])
            for n, client in enumerate(clients):
                await client.send("g:1", f"hello from {n}")
                await client.send(f"p:{n + 1}-{(n + 1) % 5 + 1}".replace("p:5-1", "p:1-5"), "hi")
            for client in clients:
                await client.conversations()
            assert await metric(server, "tidings_chat_list_rebuilds") == len(names)
        finally:
            await deployment.stop()
        try:
            server = await deployment.server()
            oracle = await deployment.server(redis_chat_list=False)
            clients = await logged_in(deployment, server, *names)
            await assert_lists_are_sql(deployment, clients, oracle)
            await clients[1].send("g:1", "after the restart")
            await assert_lists_are_sql(deployment, clients, oracle)
            assert await metric(server, "tidings_chat_list_rebuilds") == 0
            assert len(await namespaces(redis, prefix)) == 1
        finally:
            await deployment.stop()


@pytest.mark.parametrize("chat_list", ["true", "false"])
async def test_another_database_cannot_join_a_prefix_in_use(
    chat_list: str, tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    """Its nodes would receive the running deployment's events (one channel per prefix)."""
    redis, prefix = shared_redis
    async with (
        database_url("postgresql", tmp_path) as production,
        database_url("postgresql", tmp_path) as staging,
    ):
        running = Deployment(production, redis, prefix, tmp_path)
        refused = Deployment(staging, redis, prefix, tmp_path)
        try:
            await running.server()
            env = {
                **os.environ,
                "TIDINGS_DATABASE_URL": staging,
                "TIDINGS_REDIS_URL": redis,
                "TIDINGS_REDIS_PREFIX": prefix,
                "TIDINGS_REDIS_CHAT_LIST": chat_list,
                "TIDINGS_PORT": "0",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings",
                "serve",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 1, out
            assert "in use by another database" in err.decode()
            await refused.server(redis_prefix=f"{prefix}staging:")  # its own prefix: fine
        finally:
            await refused.stop()
            await running.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_from_before_the_deployment_row_gets_one_in_place(
    backend: str, tmp_path: Path
) -> None:
    async with database_url(backend, tmp_path) as url:
        engine = create_async_engine(url)
        try:
            await upgrade(engine, "0001")  # the schema of every database made so far
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO conversations (id, kind, last_seq, created_at) "
                        "VALUES ('p:1-2', 'private', 7, 0)"
                    )
                )
            await upgrade(engine)
            async with engine.connect() as conn:
                row = text("SELECT identity, generation FROM deployment")
                rows = (await conn.execute(row)).all()
                kept = (await conn.execute(text("SELECT last_seq FROM conversations"))).scalar()
        finally:
            await engine.dispose()
    [(identity, generation)] = rows
    assert len(identity) == 16 and int(identity, 16) >= 0
    assert (generation, kept) == (1, 7)


# -- a PostgreSQL backup, taken mid-traffic, restored -------------------------------


def _libpq(url: str) -> list[str]:
    parsed = make_url(url)
    return ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", "postgres"]


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"{command[0]}: {err.decode()}"
    return out.decode()


async def _traffic(clients: list[Client], stop: asyncio.Event) -> None:
    async def one(n: int, client: Client) -> None:
        count = 0
        while not stop.is_set():
            await client.send("g:1", f"g from {n} #{count}")
            await client.send(f"p:{min(n + 1, 4)}-{max(n + 1, 4)}" if n != 3 else "p:1-4", "p")
            await client.conversations()  # the copy follows every step
            count += 1

    await asyncio.gather(*(one(n, c) for n, c in enumerate(clients)))


@pytest.mark.parametrize("procedure", ["tidings restored", "nothing (caught at start)"])
async def test_a_restored_postgresql_dump_taken_mid_traffic(
    procedure: str, tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    redis, prefix = shared_redis
    names = ["ann", "ben", "cat", "dan"]
    dump = tmp_path / "tidings.dump"
    async with (
        database_url("postgresql", tmp_path) as live,
        database_url("postgresql", tmp_path) as restored_db,
    ):
        before = Deployment(live, redis, prefix, tmp_path)
        try:
            server = await before.server()
            clients = await signed_up(before, server, *names)
            await clients[0].create_group("all", [2, 3, 4])
            stop = asyncio.Event()
            traffic = asyncio.create_task(_traffic(clients, stop))
            await asyncio.sleep(0.5)
            await _run("pg_dump", *_libpq(live), "-Fc", "-f", str(dump), make_url(live).database)
            await asyncio.sleep(0.5)  # messages the backup will not have
            stop.set()
            await traffic
            seen = {e.id: e.last_seq for e in await clients[3].conversations()}
            old_token = clients[3].token
        finally:
            await before.stop()

        restored_name = make_url(restored_db).database or ""
        await _run("pg_restore", *_libpq(restored_db), "-d", restored_name, str(dump))
        if procedure == "tidings restored":
            env = {**os.environ, "TIDINGS_REDIS_PREFIX": prefix}
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings",
                "restored",
                "--database",
                restored_db,
                "--redis",
                redis,
                "--sign-out",
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            out = (await process.communicate())[0].decode()
            assert process.returncode == 0
            assert "generation 1 ->" in out and "generation 2" in out
            assert "g:1: the database is at seq" in out, out
            assert "sessions ended" in out

        after = Deployment(restored_db, redis, prefix, tmp_path)
        try:
            server = await after.server()
            oracle = await after.server(redis_chat_list=False)
            if procedure == "tidings restored":  # with --sign-out
                with pytest.raises(ApiError) as refused:
                    await after.client(server, old_token).conversations()
                assert refused.value.status == 401
            clients = await logged_in(after, server, *names)
            await assert_lists_are_sql(after, clients, oracle)
            now = {e.id: e for e in await clients[3].conversations()}
            kept = await clients[3].messages("g:1", after=0, limit=200)
            assert kept[-1].seq < seen["g:1"], "the backup was taken before the last messages"
            # No seq is given twice: each conversation goes on after the
            # highest seq any client saw (and the lists equal SQL's, above).
            assert {c: e.last_seq for c, e in now.items()} == seen
            sent = await clients[0].send("g:1", "the first message after the restore")
            assert sent.seq == seen["g:1"] + 1
            await assert_lists_are_sql(after, clients, oracle)
            entry = next(e for e in await clients[3].conversations() if e.id == "g:1")
            assert entry.last_message is not None
            assert entry.last_message.body == "the first message after the restore"
            history = await clients[3].messages("g:1", after=sent.seq - 1)
            assert [m.body for m in history] == ["the first message after the restore"]
            namespaces_now = await namespaces(redis, prefix)
            assert {n.rpartition(".")[2] for n in namespaces_now} == {"1", "2"}
        finally:
            await after.stop()
    with contextlib.suppress(FileNotFoundError):
        dump.unlink()


async def test_running_nodes_follow_a_generation_moved_under_them(
    tmp_path: Path, shared_redis: tuple[str, str]
) -> None:
    """Another node's start check, or ``tidings restored`` run too early: nodes follow."""
    redis, prefix = shared_redis
    async with database_url("postgresql", tmp_path) as database:
        deployment = Deployment(database, redis, prefix, tmp_path)
        try:
            server = await deployment.server()
            oracle = await deployment.server(redis_chat_list=False)
            ann, ben = await signed_up(deployment, server, "ann", "ben")
            await ann.send("p:1-2", "before")
            await assert_lists_are_sql(deployment, [ann, ben], oracle)
            done = await restored(database, RedisTarget(redis, prefix))
            assert (done.before.generation, done.after.generation) == (1, 2)
            for _ in range(100):  # the node looks every lease third (5 s)
                if any(n.endswith(".2") for n in await namespaces(redis, prefix)):
                    break
                await ann.conversations()
                await asyncio.sleep(0.1)
            await ann.send("p:1-2", "after")
            await assert_lists_are_sql(deployment, [ann, ben], oracle)
            assert any(n.endswith(".2") for n in await namespaces(redis, prefix))
            assert await metric(server, "tidings_chat_list_redis_trusted") == 1
        finally:
            await deployment.stop()
