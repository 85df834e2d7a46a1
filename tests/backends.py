"""Real databases for the store's contract suite: SQLite, PostgreSQL, MariaDB.

Each test gets its own database (a temp file, or a freshly created database
named ``tidings_t_<random>`` that is dropped afterwards), so runs never see
each other's rows. Where a server is not reachable the test skips with the
reason, unless TIDINGS_TEST_SERVICES=required (CI), where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

POSTGRES_ADMIN = os.environ.get(
    "TIDINGS_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN = os.environ.get("TIDINGS_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306/test")
REDIS = os.environ.get("TIDINGS_TEST_REDIS", "redis://127.0.0.1:6379/0")

BACKENDS = ["sqlite", "postgresql", "mysql"]


def services_required() -> bool:
    return os.environ.get("TIDINGS_TEST_SERVICES", "") == "required"


def unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if services_required():
        pytest.fail(message + "; TIDINGS_TEST_SERVICES=required", pytrace=False)
    pytest.skip(message)


@asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database of this backend, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    admin_url = POSTGRES_ADMIN if backend == "postgresql" else MYSQL_ADMIN
    name = f"tidings_t_{secrets.token_hex(6)}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # any driver error means: no usable server here
        await engine.dispose()
        unavailable(backend, exc)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with engine.connect() as conn:
            if backend == "postgresql":
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await engine.dispose()


@asynccontextmanager
async def redis_url() -> AsyncIterator[str]:
    """The URL of a reachable Redis (tests isolate themselves by key prefix)."""
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable("redis", exc)
    await client.aclose()
    yield REDIS
