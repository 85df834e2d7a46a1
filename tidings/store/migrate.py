"""Bring a database's schema to the latest Alembic migration.

Runs inside the server's event loop (at start) or from ``tidings migrate``;
Alembic is handed an open connection instead of building its own engine.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
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


async def upgrade(engine: AsyncEngine, revision: str = "head", *, pg_partitions: int = 16) -> None:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection, pg_partitions=pg_partitions), revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
