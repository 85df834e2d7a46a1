"""Offline push (PROTOCOL-v2 §8): browsers' subscriptions.

A new table only: nothing existing changes, and no send touches it. The
VAPID key pair is a row of ``server_secrets`` (0007), made on first start.

Revision ID: 0008
Revises: 0007 (0006 is skipped: see 0007_files.py)
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("endpoint_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("p256dh", sa.String(128), nullable=False),
        sa.Column("auth", sa.String(64), nullable=False),
        sa.Column("expiration_time", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("push_subscriptions_user", "push_subscriptions", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("push_subscriptions")
