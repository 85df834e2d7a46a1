"""Factories for the suite: a real server on loopback and signed-in clients.

``server`` runs the whole app in-process on 127.0.0.1 (a real socket, real
SQLite file in a temp folder); ``spawn_server`` runs ``tidings serve`` as a
subprocess, for tests that kill it. Clients are ``tidings.client``: the
same code SDK users get, speaking the contract over real sockets.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from argon2 import PasswordHasher

from tests.backends import database_url, redis_url, unavailable
from tests.loopback import start_loopback
from tests.swift import ACCESS_KEY as SWIFT_ACCESS_KEY
from tests.swift import REGION as SWIFT_REGION
from tests.swift import SECRET_KEY as SWIFT_SECRET_KEY
from tests.swift import SwiftS3
from tidings.app import build_app
from tidings.client import Client
from tidings.config import Settings
from tidings.harness.spawn import (
    CHEAP_HASHING,
    ServerProcess,
    free_port,
    serve_command,
    serve_env,
)
from tidings.models import User

# Cheap hashing for tests: the cost of argon2 is a setting, its use is not.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse"


@dataclass
class RunningServer:
    url: str
    settings: Settings
    app: web.Application
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def username(self, prefix: str = "user") -> str:
        return f"{prefix}{next(self._names)}"


@dataclass
class Account:
    """A signed-up user with an HTTP client holding its token."""

    user: User
    client: Client
    username: str

    @property
    def id(self) -> int:
        return self.user.id


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}",
        sqlite_synchronous="NORMAL",
        # Uploads in the test's folder, on every stack (not ./data/files of the repo).
        files_url=f"file://{tmp_path / 'files'}",
    ).with_(**changes)


async def start_server(settings: Settings) -> tuple[RunningServer, web.AppRunner]:
    app = build_app(settings, hasher=FAST_HASHER)
    runner, origin = await start_loopback(
        app, handle_signals=False, access_log=None, shutdown_timeout=5
    )
    return RunningServer(origin, settings, app), runner


ServerFactory = Callable[..., Awaitable[RunningServer]]

# Every server test runs on each stack: the embedded default, the production
# pair PostgreSQL + Redis, and MariaDB. TIDINGS_TEST_STACKS narrows it locally.
STACKS = os.environ.get("TIDINGS_TEST_STACKS", "sqlite,postgresql+redis,mysql").split(",")


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_server(tmp_path: Path, stack: str) -> AsyncIterator[ServerFactory]:
    """Start servers on this stack with changed settings; all are stopped after the test."""
    runners: list[web.AppRunner] = []
    async with contextlib.AsyncExitStack() as resources:
        database, _, broker = stack.partition("+")
        url = await resources.enter_async_context(database_url(database, tmp_path))
        base: dict[str, Any] = {"database_url": url}
        if broker == "redis":
            base["redis_url"] = await resources.enter_async_context(redis_url())
            base["redis_prefix"] = f"tidings_t_{secrets.token_hex(6)}:"
        elif broker == "redis-cluster":  # a Redis Cluster of the test's own
            from tests.redis_cluster import redis_cluster

            servers = resources.enter_context(redis_cluster(tmp_path / "redis-cluster"))
            base |= {"redis_url": servers.url, "redis_cluster": True}
            base["redis_prefix"] = f"tidings_t_{secrets.token_hex(6)}:"

        async def make(**changes: Any) -> RunningServer:
            running, runner = await start_server(settings_for(tmp_path, **(base | changes)))
            runners.append(runner)
            return running

        try:
            yield make
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


@pytest.fixture
async def server(make_server: ServerFactory) -> RunningServer:
    return await make_server()


AccountFactory = Callable[..., Awaitable[Account]]


@pytest.fixture
async def make_account(server: RunningServer) -> AsyncIterator[AccountFactory]:
    clients: list[Client] = []

    async def make(name: str | None = None, display_name: str | None = None) -> Account:
        username = name or server.username()
        client = Client(server.url)
        clients.append(client)
        user = await client.signup(username, PASSWORD, display_name)
        await client.login(username, PASSWORD)
        return Account(user, client, username)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def alice(make_account: AccountFactory) -> Account:
    return await make_account("alice", "Alice")


@pytest.fixture
async def bob(make_account: AccountFactory) -> Account:
    return await make_account("bob", "Bob")


@pytest.fixture
async def carol(make_account: AccountFactory) -> Account:
    return await make_account("carol", "Carol")


def private(a: Account, b: Account) -> str:
    low, high = sorted((a.id, b.id))
    return f"p:{low}-{high}"


async def no_event(socket_: Any, within: float = 0.3) -> None:
    """Assert that nothing arrives on a socket for a short while."""
    try:
        event = await socket_.next_event(timeout=within)
    except TimeoutError:
        return
    raise AssertionError(f"expected no event, got {event}")


SWIFT_BUCKET = "tidings-test"


@pytest.fixture(scope="session")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftS3]:
    """A real S3 API (OpenStack Swift with s3api) with the suite's bucket, for the
    session; each test keeps to a prefix of its own. Skips without Swift, unless
    TIDINGS_TEST_SERVICES=required (CI), where it fails."""
    server = SwiftS3(tmp_path_factory.mktemp("swift"))
    try:
        server.start()
        server.create_bucket(SWIFT_BUCKET)
    except Exception as error:
        server.stop()
        unavailable("an S3 API (OpenStack Swift with s3api)", error)
    yield server
    server.stop()


@pytest.fixture
def s3_files_url(swift: SwiftS3) -> str:
    """A ``TIDINGS_FILES_URL`` for a fresh prefix of the Swift bucket."""
    options = urlencode(
        {
            "endpoint": swift.endpoint,
            "region": SWIFT_REGION,
            "access_key_id": SWIFT_ACCESS_KEY,
            "secret_access_key": SWIFT_SECRET_KEY,
        }
    )
    return f"s3://{SWIFT_BUCKET}/t{secrets.token_hex(6)}?{options}"


@pytest.fixture
def spawn_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Run ``python -m tidings serve`` in a subprocess on a temp database (``tidings.harness``)."""
    servers: list[ServerProcess] = []

    def spawn(stderr_to: Path | None = None, **env_changes: str) -> ServerProcess:
        """``stderr_to``: a file for the server's logs (else they go to the test's stderr)."""
        settings = {
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'spawned.db'}",
            "TIDINGS_LOG_LEVEL": "WARNING",
            # Cheap password hashing, as in-process servers get (FAST_HASHER).
            **CHEAP_HASHING,
        }
        env = serve_env(settings | env_changes)
        server = ServerProcess(
            serve_command(), env, cwd=tmp_path, log=stderr_to, discard_stdout=True
        )
        servers.append(server)
        return server

    yield spawn
    for server in servers:
        server.kill()


@pytest.fixture
async def cluster_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Environment for ``tidings serve`` nodes sharing a fresh PostgreSQL database and Redis."""
    async with database_url("postgresql", tmp_path) as url, redis_url() as redis:
        yield {
            "TIDINGS_DATABASE_URL": url,
            "TIDINGS_REDIS_URL": redis,
            "TIDINGS_REDIS_PREFIX": f"tidings_t_{secrets.token_hex(6)}:",
        }


@pytest.fixture
async def redis_cluster_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """As ``cluster_env``, on a Redis Cluster of the test's own (six servers on loopback)."""
    from tests.redis_cluster import redis_cluster

    async with database_url("postgresql", tmp_path) as url:
        with redis_cluster(tmp_path / "redis-cluster") as servers:
            yield {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_REDIS_URL": servers.url,
                "TIDINGS_REDIS_CLUSTER": "1",
                "TIDINGS_REDIS_PREFIX": f"tidings_t_{secrets.token_hex(6)}:",
            }


@pytest.fixture(params=["redis", "redis-cluster"])
def any_redis_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """``cluster_env`` on one Redis server, then on a Redis Cluster."""
    name = "cluster_env" if request.param == "redis" else "redis_cluster_env"
    env: dict[str, str] = request.getfixturevalue(name)
    return env


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and restart) a private redis-server on a fixed free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", FileNotFoundError("redis-server is not on PATH"))
    assert binary is not None
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        )
        started.append(process)
        for _ in range(50):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return process
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    start.port = port  # type: ignore[attr-defined]
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)
