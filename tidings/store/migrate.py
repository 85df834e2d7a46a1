"""Bring a database's schema to the latest Alembic migration.

Runs inside the server's event loop (at start) or from ``tidings migrate``;
Alembic is handed an open connection instead of building its own engine.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None, *, pg_partitions: int = 16) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    # How many hash partitions the messages table gets on PostgreSQL (fixed
    # when the table is created; see docs/operations.md to change it later).
    config.attributes["pg_partitions"] = pg_partitions
    return config


# Nodes started together must not migrate together: the first takes this lock,
# the others wait, then find the schema current and do nothing.
_LOCK_ID = 0x7469_6469_6E67  # "tiding"
_MYSQL_LOCK = "tidings_migrate"


async def upgrade(engine: AsyncEngine, revision: str = "head", *, pg_partitions: int = 16) -> None:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection, pg_partitions=pg_partitions), revision)

    dialect = engine.dialect.name
    async with engine.connect() as connection:
        if dialect == "mysql":
            await connection.execute(text(f"SELECT GET_LOCK('{_MYSQL_LOCK}', 120)"))
            await connection.commit()  # the lock is the session's, not the transaction's
        try:
            async with connection.begin():
                if dialect == "postgresql":
                    await connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
                await connection.run_sync(run)
        finally:
            if dialect == "mysql":
                await connection.execute(text(f"SELECT RELEASE_LOCK('{_MYSQL_LOCK}')"))
                await connection.commit()
