"""Database engines: one SQLAlchemy async engine per role, tuned per dialect.

SQLite allows one writer at a time. Write batches (the hot path) get a
synchronous engine of one connection, driven from one thread of the store,
so a whole batch is one hop off the event loop; the other writes (users,
groups, sessions) get an async writer engine of one connection. Both open
transactions with BEGIN IMMEDIATE, so when they meet, one waits for the
other (``busy_timeout``) instead of failing. Readers get their own engine
whose WAL snapshots never block a writer.

PostgreSQL and MySQL/MariaDB get two pools. The writer's runs transactions
and pings a connection before lending it (a batch must not fail on a
connection the database closed). The reader's serves single-statement
reads in autocommit: no BEGIN and ROLLBACK around each read and no ping,
so a read is one round trip instead of six (the asyncpg dialect's ping is
BEGIN, ``;``, ROLLBACK outside a transaction). A read that meets a closed
connection is retried once by the store; SQLAlchemy then discards the
whole pool, so a database restart costs nothing visible. Reads that need
one snapshot across statements take the writer's pool (``snapshot``).

PostgreSQL's write batches (through asyncpg) get a third engine,
``batch_writer``: one connection, checked out by one batch at a time (a
node's group-commit writer has one batch with the database at once), and
not pinged. The ping cost three round trips per batch out of nine
(docs/benchmarks.md, stop 19b). Instead, a checkout asks asyncpg whether
the connection's socket is closed, which costs nothing on the wire: a
database that restarted or dropped the connection closed the socket, so
the pool opens a new one before the batch starts. A connection that dies
unseen (a cut network) fails the batch's first statement; the store then
runs the batch again on a new connection, knowing no COMMIT of it was
sent (store/sql.py, ``_Attempt``). MySQL's batches keep the pinged writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, QueuePool, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.config import SettingsError
from tidings.store.checkpoint import WalCheckpointer
from tidings.store.search import SQLITE_LOWER
from tidings.store.search_index import ATTACHED_AS, SqliteSearchIndex


@dataclass(frozen=True, slots=True)
class Engines:
    writer: AsyncEngine
    reader: AsyncEngine  # one statement per connection checkout
    snapshot: AsyncEngine  # several reads that must see one state
    dialect: str  # "sqlite" | "postgresql" | "mysql"
    # SQLite only: a synchronous engine for write batches, used from one thread.
    batch: Engine | None = None
    # SQLite only: copies the WAL into the database beside the write path.
    checkpointer: WalCheckpointer | None = None
    # PostgreSQL only: write batches' own connection, not pinged (module docstring).
    batch_writer: AsyncEngine | None = None
    # SQLite only: the search index in its own file, attached to the readers.
    search_index: SqliteSearchIndex | None = None

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if self.search_index is not None:
            await self.search_index.close()
        await self.writer.dispose()
        await self.reader.dispose()
        if self.batch_writer is not None:
            await self.batch_writer.dispose()
        if self.batch is not None:
            self.batch.dispose()


def describe(url_text: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url_text).render_as_string(hide_password=True)


def create_engines(
    url_text: str, *, sqlite_synchronous: str = "FULL", search_index: bool = True
) -> Engines:
    url = make_url(url_text)
    dialect = url.get_backend_name()
    if dialect == "sqlite":
        return _sqlite_engines(url, sqlite_synchronous, search_index)
    if dialect in ("postgresql", "mysql", "mariadb"):
        # Bounded waits: a database that is down must give `unavailable` soon,
        # not hold a request (or the writer) for minutes.
        if dialect == "postgresql":
            connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
        else:
            connect_args = {"connect_timeout": 5}
        common: dict[str, Any] = {
            "pool_timeout": 10,
            "connect_args": connect_args,
            "hide_parameters": True,  # error messages must not carry bodies or hashes
        }
        writer = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True, **common)
        reader = create_async_engine(
            url, pool_size=10, max_overflow=10, isolation_level="AUTOCOMMIT", **common
        )
        if dialect != "postgresql":
            return Engines(writer, reader, snapshot=writer, dialect="mysql")
        if url.get_driver_name() != "asyncpg":  # the checkout's socket check is asyncpg's
            return Engines(writer, reader, snapshot=writer, dialect="postgresql")
        batch_writer = create_async_engine(url, pool_size=1, max_overflow=0, **common)
        _check_socket_on_checkout(batch_writer)
        return Engines(
            writer, reader, snapshot=writer, dialect="postgresql", batch_writer=batch_writer
        )
    raise SettingsError(f"unsupported database {dialect!r}: use sqlite, postgresql or mysql")


def _check_socket_on_checkout(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine.pool, "checkout", _closed_on_checkout)


def _closed_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # SQLAlchemy's pessimistic disconnect handling without the round trip:
    # DisconnectionError makes the pool discard this connection and open
    # another (up to three tries, then the checkout fails as unavailable).
    raw = getattr(dbapi_connection, "_connection", None)  # asyncpg's, under the adapter
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the database closed this connection")


# SQLite checkpoints the WAL inside the commit that takes it past this many
# pages, and that commit (with every send waiting on it) pays for the copy.
# The checkpoint thread (checkpoint.py) copies beside the write path; this
# limit, ten times SQLite's default, is its backstop and keeps the WAL file
# under ~40 MB. Why these numbers: docs/benchmarks.md, stop 13.
WAL_AUTOCHECKPOINT_PAGES = 10_000


def _sqlite_engines(url: URL, synchronous: str, search_index: bool) -> Engines:
    database = url.database
    if not database or database == ":memory:":
        raise SettingsError(
            "an in-memory SQLite database cannot be shared by the writer and the readers; "
            "give a file path, e.g. sqlite+aiosqlite:///./data/tidings.db"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    writer = create_async_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=120, hide_parameters=True
    )
    reader = create_async_engine(url, pool_size=4, max_overflow=4, hide_parameters=True)
    # The same file through the plain sqlite3 driver: a batch runs whole in
    # the store's batch thread, with no hop to aiosqlite's thread and back per
    # statement.
    batch = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        hide_parameters=True,
        # Made and used in the batch thread; only dispose() comes from another.
        connect_args={"check_same_thread": False},
    )
    _configure_sqlite(writer.sync_engine, synchronous, begin="BEGIN IMMEDIATE")
    _configure_sqlite(batch, synchronous, begin="BEGIN IMMEDIATE")
    index = SqliteSearchIndex(database) if search_index else None
    _configure_sqlite(
        reader.sync_engine, synchronous, begin="BEGIN", attach=index.path if index else None
    )
    checkpointer = WalCheckpointer(database, synchronous=synchronous)
    return Engines(
        writer,
        reader,
        snapshot=reader,
        dialect="sqlite",
        batch=batch,
        checkpointer=checkpointer,
        search_index=index,
    )


def _configure_sqlite(
    engine: Engine, synchronous: str, *, begin: str, attach: str | None = None
) -> None:
    # The driver's own implicit BEGIN is switched off and ours emitted instead:
    # it would otherwise start transactions late (after a SELECT) and deferred.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        if attach is not None:
            # Only read here: one thread writes it (store/search_index.py).
            cursor.execute(f"ATTACH DATABASE ? AS {ATTACHED_AS}", (attach,))
        cursor.close()
        # Search folds case beyond ASCII, which SQLite's lower() does not (store/search.py).
        dbapi_connection.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def lost_a_race(exc: BaseException) -> bool:
    """A deadlock or serialization failure with a concurrent transaction: the
    database rolled this one back, and running it again is the answer. The
    drivers raise no common class for it, so the text decides: PostgreSQL says
    "deadlock detected" or "could not serialize access", MySQL/MariaDB
    "Deadlock found"; SQLite, one writer at a time, says neither."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "deadlock" in text or "could not serialize" in text
