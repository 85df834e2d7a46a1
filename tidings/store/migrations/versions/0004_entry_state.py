"""The chat list per user (PROTOCOL-v2 §5): pinned, muted, marked unread, hidden, draft.

Upgrades in place: every existing entry reads as v1 (nothing pinned,
muted, marked, hidden or drafted).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MEMBER_COLUMNS = (
    ("pinned", lambda: sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false())),
    ("muted", lambda: sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false())),
    (
        "marked_unread",
        lambda: sa.Column("marked_unread", sa.Boolean, nullable=False, server_default=sa.false()),
    ),
    ("hidden_seq", lambda: sa.Column("hidden_seq", sa.BigInteger, nullable=True)),
    ("draft", lambda: sa.Column("draft", sa.Text, nullable=True)),
    ("draft_at", lambda: sa.Column("draft_at", sa.BigInteger, nullable=True)),
)


def upgrade() -> None:
    # One ALTER per column, as in 0003: constant defaults need no table rewrite.
    for _, column in _MEMBER_COLUMNS:
        op.add_column("members", column())


def downgrade() -> None:
    for name, _ in reversed(_MEMBER_COLUMNS):
        op.drop_column("members", name)
