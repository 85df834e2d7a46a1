"""Kinds of entries (PROTOCOL-v2 §1): notices, recall, edit, reply, forward, mentions.

Upgrades a v1 database in place: every stored message reads as a text
message, nothing counts differently (no notice or recall yet), and each
conversation's shown entry is its last one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MESSAGE_COLUMNS = (
    ("kind", lambda: sa.Column("kind", sa.String(8), nullable=False, server_default="text")),
    ("reply_seq", lambda: sa.Column("reply_seq", sa.BigInteger, nullable=True)),
    (
        "forward_conversation",
        lambda: sa.Column("forward_conversation", sa.String(48), nullable=True),
    ),
    ("forward_seq", lambda: sa.Column("forward_seq", sa.BigInteger, nullable=True)),
    ("forward_sender", lambda: sa.Column("forward_sender", sa.BigInteger, nullable=True)),
    ("mentions", lambda: sa.Column("mentions", sa.Text, nullable=True)),
    (
        "mention_all",
        lambda: sa.Column("mention_all", sa.Boolean, nullable=False, server_default=sa.false()),
    ),
    ("target_seq", lambda: sa.Column("target_seq", sa.BigInteger, nullable=True)),
    ("recall_seq", lambda: sa.Column("recall_seq", sa.BigInteger, nullable=True)),
    ("edited_at", lambda: sa.Column("edited_at", sa.BigInteger, nullable=True)),
    ("system", lambda: sa.Column("system", sa.Text, nullable=True)),
)


def upgrade() -> None:
    # One ALTER per column: SQLite adds columns one at a time, and on
    # PostgreSQL a column with a constant default is added without a rewrite
    # (also to every hash partition of ``messages``).
    for _, column in _MESSAGE_COLUMNS:
        op.add_column("messages", column())
    op.add_column(
        "conversations",
        sa.Column("shown_seq", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute("UPDATE conversations SET shown_seq = last_seq")
    op.create_table(
        "uncounted",
        sa.Column("conversation_id", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("conversation_id", "seq", name="pk_uncounted"),
    )
    op.create_table(
        "mentions",
        sa.Column("conversation_id", sa.String(48), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", "seq", name="pk_mentions"),
    )


def downgrade() -> None:
    op.drop_table("mentions")
    op.drop_table("uncounted")
    op.drop_column("conversations", "shown_seq")
    for name, _ in reversed(_MESSAGE_COLUMNS):
        op.drop_column("messages", name)
