"""Groups that can be run (PROTOCOL-v2 §6): admins, mutes, announcement, dissolution.

Upgrades in place: every existing group reads as v1 (no admins, nobody
muted, no announcement, not dissolved), and no send needs a new check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS: tuple[tuple[str, Callable[[], sa.Column[object]]], ...] = (
    ("chat_groups", lambda: sa.Column("announcement", sa.Text, nullable=True)),
    ("chat_groups", lambda: sa.Column("announcement_at", sa.BigInteger, nullable=True)),
    ("chat_groups", lambda: sa.Column("announcement_by", sa.BigInteger, nullable=True)),
    (
        "chat_groups",
        lambda: sa.Column("muted_all", sa.Boolean, nullable=False, server_default=sa.false()),
    ),
    ("chat_groups", lambda: sa.Column("dissolved_at", sa.BigInteger, nullable=True)),
    (
        "conversations",
        lambda: sa.Column("guarded", sa.Boolean, nullable=False, server_default=sa.false()),
    ),
    ("members", lambda: sa.Column("role", sa.SmallInteger, nullable=False, server_default="0")),
    ("members", lambda: sa.Column("muted_until", sa.BigInteger, nullable=True)),
)


def upgrade() -> None:
    # One ALTER per column, as in 0003: constant defaults need no table rewrite.
    for table, column in _COLUMNS:
        op.add_column(table, column())


def downgrade() -> None:
    for table, column in reversed(_COLUMNS):
        op.drop_column(table, column().name)
