"""The initial schema: users, sessions, groups, conversations, members, messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tidings.store.schema import ExactString

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", ExactString(32), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("username_key", name="uq_users_username_key"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "chat_groups",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.BigInteger, nullable=False),
        sa.Column("join_counter", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("group_id", sa.BigInteger, nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_sent_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "members",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("peer_id", sa.BigInteger, nullable=True),
        sa.Column("joined_seq", sa.BigInteger, nullable=False),
        sa.Column("read_seq", sa.BigInteger, nullable=False),
        sa.Column("joined_at", sa.BigInteger, nullable=False),
        sa.Column("join_rank", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_members_user_id", "members", ["user_id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    partitions = int(context.config.attributes.get("pg_partitions") or 16)
    op.create_table(
        "messages",
        sa.Column("conversation_id", sa.String(48), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sender_id", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("client_msg_id", ExactString(64), nullable=True),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.Column("time_separator", sa.Boolean, nullable=False),
        # On PostgreSQL the history is spread over hash partitions of the
        # conversation id, so no single table grows without end.
        postgresql_partition_by="HASH (conversation_id)",
    )
    if postgres:
        for remainder in range(partitions):
            op.execute(
                f"CREATE TABLE messages_p{remainder} PARTITION OF messages "
                f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
            )
    op.create_table(
        "client_msg_ids",
        sa.Column("sender_id", sa.BigInteger, primary_key=True),
        sa.Column("client_msg_id", ExactString(64), primary_key=True),
        sa.Column("conversation_id", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "client_msg_ids",
        "messages",
        "members",
        "conversations",
        "chat_groups",
        "sessions",
    ):
        op.drop_table(table)
    op.drop_table("users")
