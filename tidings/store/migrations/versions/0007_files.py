"""Files, images and voice (PROTOCOL-v2 §3): the uploads, and the messages that carry them.

Upgrades in place: every existing message reads as before (no file), and
the new index on ``messages.file_id`` is built over NULLs only. The
``server_secrets`` table is empty until a server starts and makes the key
that signs file links (insert-if-absent: every node then reads the same one).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-04

Why 0007 after 0005: a search migration numbered 0006 reached main and was
then removed (nothing of it was needed). A database a server of those days
upgraded is stamped 0006; naming this one 0006 too would let such a
database skip it silently. After 0005, under its own number, it cannot.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("uploader_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("duration_ms", sa.BigInteger, nullable=True),
        sa.Column("blob_key", sa.String(128), nullable=False),
        sa.Column("thumbnail_key", sa.String(128), nullable=True),
        sa.Column("thumbnail_type", sa.String(32), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("attached_at", sa.BigInteger, nullable=True),
        sa.Column("attach_seq", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_files_uploader_id", "files", ["uploader_id"])
    op.create_index("ix_files_created_at", "files", ["created_at"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    # Nullable columns with no default: no table rewrite on any database.
    op.add_column("messages", sa.Column("file_id", sa.String(32), nullable=True))
    op.add_column("messages", sa.Column("attachment", sa.Text, nullable=True))
    # On PostgreSQL an index on the partitioned table is made on every partition.
    op.create_index("ix_messages_file_id", "messages", ["file_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_file_id", table_name="messages")
    op.drop_column("messages", "attachment")
    op.drop_column("messages", "file_id")
    op.drop_table("server_secrets")
    op.drop_index("ix_files_created_at", table_name="files")
    op.drop_index("ix_files_uploader_id", table_name="files")
    op.drop_table("files")
