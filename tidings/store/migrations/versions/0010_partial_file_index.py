"""The index of messages by ``file_id`` keeps only the messages with a file.

Migration 0007 indexed every message, and nearly all have no file: each
send paid a second B-tree insert for a NULL key (about 1 µs of SQLite's
13 µs per row; docs/benchmarks.md, stop 20). The orphan collector's look-up
(``file_id = :id``) implies ``IS NOT NULL``, so SQLite and PostgreSQL use the
partial index for it. MySQL and MariaDB have no partial indexes: theirs
stays as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NAME = "ix_messages_file_id"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return
    op.drop_index(_NAME, table_name="messages")
    where = sa.text("file_id IS NOT NULL")
    op.create_index(_NAME, "messages", ["file_id"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    if op.get_bind().dialect.name not in ("sqlite", "postgresql"):
        return
    op.drop_index(_NAME, table_name="messages")
    op.create_index(_NAME, "messages", ["file_id"])
