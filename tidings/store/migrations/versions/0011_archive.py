"""History beyond the hot table (issue 23 §3): the archive's manifest.

Two new tables; nothing existing changes and no send touches them.
``archive_segments`` lists the Parquet files that hold a conversation's
oldest messages, ``archived_files`` the archived messages that carry a file.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_segments",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("low_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("high_seq", sa.BigInteger, nullable=False),
        sa.Column("message_count", sa.BigInteger, nullable=False),
        sa.Column("first_sent_at", sa.BigInteger, nullable=False),
        sa.Column("last_sent_at", sa.BigInteger, nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False, unique=True),
        sa.Column("blob_size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "archived_files",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("file_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_archived_files_file_id", "archived_files", ["file_id"])


def downgrade() -> None:
    op.drop_table("archived_files")
    op.drop_table("archive_segments")
