"""Search (PROTOCOL-v2 §7) on PostgreSQL: a side table with a trigram index.

``search_docs`` holds each indexed message's text, folded by ``lower()``
(the scan's own folding), with ``gin_trgm_ops`` indexes; ``search_watermarks``
says how far each conversation is indexed (store/search_pg.py). Written by
an indexer beside the send path, never by a send. PostgreSQL only: SQLite's
index is a file of its own (store/search_index.py), MariaDB has no n-gram
parser. When ``pg_trgm`` cannot be created (no right to), the tables are
made without the GIN indexes and searches keep the scan (a log line says so).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("tidings.store.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.create_table(
        "search_watermarks",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("indexed_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "search_docs",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
    )
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm cannot be created (%s): search keeps the scan", exc.orig)
        return
    op.execute("CREATE INDEX search_docs_body ON search_docs USING gin (body gin_trgm_ops)")
    op.execute("CREATE INDEX search_docs_name ON search_docs USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("search_docs")
    op.drop_table("search_watermarks")
