"""The deployment row: the database's identity and generation.

Derived copies of the database (the Redis chat list) are keyed by both, so
a copy built from another database, or from this one before a restore, is
never read. A database made before this migration gets its identity here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("identity", sa.String(32), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        table,
        [
            {
                "id": 1,
                "identity": secrets.token_hex(8),
                "generation": 1,
                "changed_at": int(time.time() * 1000),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("deployment")
