"""The SQL schema: the truth of tidings. Every other piece of state is derived.

Times are BIGINT milliseconds since the epoch. Every query on ``messages``
is keyed by ``conversation_id`` (the leading column of its primary key), so
the table can be partitioned or sharded by conversation without a rewrite;
that is also why idempotency keys live in their own small table rather than
in a global unique index on ``messages``.

Unread counts are not stored: unread = ``conversations.last_seq`` minus
``members.read_seq`` minus the ``uncounted`` seqs above ``read_seq`` (notices
and recalled messages), and mentioned counts ``mentions`` rows above it; so
a group message costs O(1) writes whatever the group's size, and counts
cannot drift (docs/architecture.md, "Counts in v2").
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactString(TypeDecorator[str]):
    """A string compared byte for byte, on MySQL and MariaDB too.

    Their default collations fold case, accents and trailing spaces, so the
    client_msg_ids "a" and "A " would be one idempotency key there and two
    everywhere else. A binary collation without padding keeps keys exact
    (plain ``utf8mb4_bin`` still ignores trailing spaces).
    """

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[str]:
        if dialect.name in ("mysql", "mariadb"):
            collation = (
                "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
            )
            length = getattr(self.impl_instance, "length", None)
            return dialect.type_descriptor(
                mysql.VARCHAR(length, charset="utf8mb4", collation=collation)
            )
        return dialect.type_descriptor(self.impl_instance)


# One naming convention so Alembic names constraints alike on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys that autoincrement on SQLite, PostgreSQL and MySQL alike.
_IdType = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", _IdType, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False),
    # Lower-cased username: uniqueness ignores case, the display keeps it.
    Column("username_key", ExactString(32), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False),
    # None for users created by a business backend, which logs them in itself.
    Column("password_hash", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,  # never reuse an id, even the highest deleted one
)

sessions = Table(
    "sessions",
    metadata,
    # SHA-256 of the token: a leaked database does not leak usable tokens.
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
)

groups = Table(
    "chat_groups",
    metadata,
    Column("id", _IdType, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("owner_id", BigInteger, nullable=False),
    # Hands out members.join_rank, which orders members by seniority.
    Column("join_counter", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    # PROTOCOL-v2 §6: the announcement, mute-all and dissolution.
    Column("announcement", Text, nullable=True),
    Column("announcement_at", BigInteger, nullable=True),
    Column("announcement_by", BigInteger, nullable=True),
    Column("muted_all", Boolean, nullable=False, server_default=false()),
    Column("dissolved_at", BigInteger, nullable=True),
    sqlite_autoincrement=True,  # a deleted group's id never names a new one
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("kind", String(8), nullable=False),  # "private" | "group"
    Column("group_id", BigInteger, nullable=True),
    # The seq authority: assigned inside the commit that stores the message.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # The original design's last_time_at: when the shown entry (below) was sent.
    Column("last_sent_at", BigInteger, nullable=True),
    # The chat list's last_message: the newest entry that is not an edit notice.
    Column("shown_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    # A group where a send needs more than membership (dissolved, muted all,
    # or a member muted): read with the seq under the batch's lock, so the
    # common case costs no look-up at all.
    Column("guarded", Boolean, nullable=False, server_default=false()),
)

# members.role: an admin of its group (the owner is chat_groups.owner_id).
ADMIN = 1

members = Table(
    "members",
    metadata,
    Column("conversation_id", String(48), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    # The other user of a private conversation (its title), None in groups.
    Column("peer_id", BigInteger, nullable=True),
    # The member sees messages with seq > joined_seq: a late joiner no history.
    Column("joined_seq", BigInteger, nullable=False),
    Column("read_seq", BigInteger, nullable=False),
    Column("joined_at", BigInteger, nullable=False),
    Column("join_rank", BigInteger, nullable=False, default=0),
    # PROTOCOL-v2 §5: the entry as this user keeps it. Hidden is a position
    # (the last seq when hidden): the entry shows again once a countable
    # message lies above it, with no write to anyone's row at send time.
    Column("pinned", Boolean, nullable=False, server_default=false()),
    Column("muted", Boolean, nullable=False, server_default=false()),
    Column("marked_unread", Boolean, nullable=False, server_default=false()),
    Column("hidden_seq", BigInteger, nullable=True),
    Column("draft", Text, nullable=True),
    Column("draft_at", BigInteger, nullable=True),
    # PROTOCOL-v2 §6: 1 for a group's admin (the owner is chat_groups.owner_id);
    # a muted member may not send until muted_until (epoch ms).
    Column("role", SmallInteger, nullable=False, server_default="0"),
    Column("muted_until", BigInteger, nullable=True),
    Index("ix_members_user_id", "user_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("conversation_id", String(48), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("client_msg_id", ExactString(64), nullable=True),
    Column("sent_at", BigInteger, nullable=False),
    Column("time_separator", Boolean, nullable=False),
    # PROTOCOL-v2 §1. A v1 row reads as a text message with none of these set.
    Column("kind", String(8), nullable=False, server_default="text"),
    Column("reply_seq", BigInteger, nullable=True),
    Column("forward_conversation", String(48), nullable=True),
    Column("forward_seq", BigInteger, nullable=True),
    Column("forward_sender", BigInteger, nullable=True),
    # Mentioned user ids, comma-separated (the mentions table is what counts).
    Column("mentions", Text, nullable=True),
    Column("mention_all", Boolean, nullable=False, server_default=false()),
    # Recall and edit notices: the message they act on.
    Column("target_seq", BigInteger, nullable=True),
    # The seq of the notice that recalled this message (so a repeat returns it).
    Column("recall_seq", BigInteger, nullable=True),
    Column("edited_at", BigInteger, nullable=True),
    # System notices: their JSON object (PROTOCOL-v2 §6).
    Column("system", Text, nullable=True),
    # PROTOCOL-v2 §3: the uploaded file an image, file or voice message carries.
    # ``file_id`` is the reference (who may download it, what the orphan
    # collector keeps); ``attachment`` is the file object as JSON, copied at
    # send (files never change), so no read of a message joins ``files``.
    Column("file_id", String(32), nullable=True),
    Column("attachment", Text, nullable=True),
    # Only the messages with a file (migration 0010; MySQL indexes them all).
    Index(
        "ix_messages_file_id",
        "file_id",
        sqlite_where=text("file_id IS NOT NULL"),
        postgresql_where=text("file_id IS NOT NULL"),
    ),
)

files = Table(
    "files",
    metadata,
    # PROTOCOL-v2 §3: one upload. The id is random (128 bits) and public; the
    # blob keys are the store's own and never leave the server.
    Column("id", String(32), primary_key=True),
    Column("uploader_id", BigInteger, nullable=False),
    Column("name", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    # Sniffed from the bytes, never taken from the client.
    Column("content_type", String(100), nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("duration_ms", BigInteger, nullable=True),
    Column("blob_key", String(128), nullable=False),
    Column("thumbnail_key", String(128), nullable=True),
    Column("thumbnail_type", String(32), nullable=True),
    # SHA-256 of the bytes (hex): the download's ETag.
    Column("digest", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Moved by every send (and forward) that attaches the file, in the send's
    # transaction: the orphan collector deletes only the version it found, so
    # a send that commits first keeps the file (store/files.py says how).
    Column("attached_at", BigInteger, nullable=True),
    Column("attach_seq", BigInteger, nullable=False, server_default="0"),
    Index("ix_files_uploader_id", "uploader_id"),
    Index("ix_files_created_at", "created_at"),
)

secrets = Table(
    "server_secrets",
    metadata,
    # Keys every node must share, made once by whichever node starts first
    # (insert-if-absent): the HMAC key of signed file links, the VAPID key
    # pair of Web Push (its private key, base64url).
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

uncounted = Table(
    "uncounted",
    metadata,
    # The seqs that never count as unread: notices, and messages once recalled.
    # unread = last_seq - read_seq - (rows here above read_seq); few rows, and
    # the count is one index range per chat-list entry.
    Column("conversation_id", String(48), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

mentions = Table(
    "mentions",
    metadata,
    # One row per mentioned user of a message, or one with user_id 0 for @all
    # (then none per user): mentioned = rows for (user or 0) above read_seq.
    # A recall deletes its message's rows.
    Column("conversation_id", String(48), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

client_msg_ids = Table(
    "client_msg_ids",
    metadata,
    # (sender, client_msg_id) is stored at most once: the contract's idempotency.
    Column("sender_id", BigInteger, primary_key=True),
    Column("client_msg_id", ExactString(64), primary_key=True),
    Column("conversation_id", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
)

deployment = Table(
    "deployment",
    metadata,
    # One row (id 1): who this database is, for whatever is derived from it
    # elsewhere (the Redis chat list keys its copy by both columns).
    Column("id", Integer, primary_key=True, autoincrement=False),
    # Random, made by the migration that created the row; a dump carries it.
    Column("identity", String(32), nullable=False),
    # Moved on whenever the database may have gone back in time (a restore):
    # a copy built from an earlier generation is never read again.
    Column("generation", BigInteger, nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)

# PROTOCOL-v2 §8 (the VAPID key pair is a row of server_secrets, above).
# A browser's PushSubscription, per user. The endpoint is unique, but a URL
# of up to 2,048 characters cannot be a unique key on MariaDB (3,072 bytes
# per index at most): its SHA-256 is.
push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", _IdType, primary_key=True, autoincrement=True),
    Column("endpoint_hash", String(64), nullable=False, unique=True),
    Column("user_id", _IdType, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("p256dh", String(128), nullable=False),
    Column("auth", String(64), nullable=False),
    Column("expiration_time", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("push_subscriptions_user", "user_id", "created_at"),
    sqlite_autoincrement=True,
)

# Issue 23 §3: history beyond the hot table. A conversation's oldest messages
# move, a range at a time, into Parquet files in the blob store; each file is
# one row here, written in the transaction that deletes its messages from
# ``messages`` (store/archive.py says why that is crash-safe). What is
# archived is always a prefix of the conversation: every live message has a
# seq above every segment's ``high_seq``.
archive_segments = Table(
    "archive_segments",
    metadata,
    Column("conversation_id", String(48), primary_key=True),
    # The segment's first seq: two archivers racing on one conversation
    # start at the same place, so the second's insert fails and it rolls back.
    Column("low_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("high_seq", BigInteger, nullable=False),
    Column("message_count", BigInteger, nullable=False),
    Column("first_sent_at", BigInteger, nullable=False),
    Column("last_sent_at", BigInteger, nullable=False),
    Column("blob_key", String(128), nullable=False, unique=True),
    Column("blob_size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

archived_files = Table(
    "archived_files",
    metadata,
    # The archived messages that carry a file (and are not recalled): the
    # orphan collector and file links ask here as they ask ``messages``, so
    # archiving a message never orphans its file.
    Column("conversation_id", String(48), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("file_id", String(32), nullable=False),
    Index("ix_archived_files_file_id", "file_id"),
)
