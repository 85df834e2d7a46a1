"""What the migrations leave in each database's own catalogue, read back from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.backends import BACKENDS, database_url
from tidings.store.sql import SqlStore

FILE_INDEX = "ix_messages_file_id"


async def file_index_definitions(url: str) -> list[str]:
    """How the database itself defines the index of messages by ``file_id``.

    SQLite: its CREATE INDEX. PostgreSQL: the partitioned table's index and
    the one it made on every hash partition (``messages_p<n>_file_id_idx``).
    MySQL/MariaDB: one line per column of the index, ``<column> <sub_part>``.
    """
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                found = await conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"),
                    {"name": FILE_INDEX},
                )
                return [str(row[0]) for row in found]
            if engine.dialect.name == "postgresql":
                found = await conn.execute(
                    text(
                        "SELECT pg_get_indexdef(i.oid) FROM pg_class i"
                        " WHERE i.relname = :name"
                        " OR i.oid IN (SELECT inhrelid FROM pg_inherits"
                        "   WHERE inhparent = (SELECT oid FROM pg_class WHERE relname = :name))"
                        " ORDER BY i.relname"
                    ),
                    {"name": FILE_INDEX},
                )
                return [str(row[0]) for row in found]
            found = await conn.execute(
                text(f"SHOW INDEX FROM messages WHERE Key_name = '{FILE_INDEX}'")
            )
            return [f"{row.Column_name} {row.Sub_part}" for row in found]
    finally:
        await engine.dispose()


async def assert_file_index_only_holds_messages_with_a_file(url: str) -> None:
    """Partial (``file_id IS NOT NULL``) on SQLite and PostgreSQL; on MySQL, a full index."""
    definitions = await file_index_definitions(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        assert len(definitions) == 1, definitions
        assert "WHERE file_id IS NOT NULL" in definitions[0], definitions
    elif backend == "postgresql":
        # The parent's index and one per partition, each partial.
        assert len(definitions) > 1, definitions
        assert any(f"INDEX {FILE_INDEX} ON ONLY" in d for d in definitions), definitions
        for definition in definitions:
            assert definition.endswith("WHERE (file_id IS NOT NULL)"), definition
    else:  # no partial indexes: every message stays indexed
        assert definitions == ["file_id None"], definitions


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_fresh_database_indexes_only_the_messages_with_a_file(
    backend: str, tmp_path: Path
) -> None:
    async with database_url(backend, tmp_path) as url:
        store = SqlStore.from_url(url)
        await store.open()  # runs every migration
        await store.close()
        await assert_file_index_only_holds_messages_with_a_file(url)
