"""Message search (PROTOCOL-v2 §7): each database's own substring index over message text.

- SQLite: an FTS5 table with the ``trigram`` tokenizer (SQLite 3.34+),
  kept by triggers on ``messages``, so every write of a message (a batch's
  send, an edit, a recall) changes the index in its own statement and
  transaction; nothing in Python can forget it.
- PostgreSQL: a ``pg_trgm`` GIN index on ``messages.body`` (an index of
  the table itself: the database keeps it in the same transaction).
- MySQL/MariaDB: nothing. MariaDB has no ngram parser (MySQL's is not in
  it, nor Mroonga here), and its FULLTEXT parser splits on spaces, which
  finds no Chinese word. Searches there scan the user's own conversations
  (see ``store/search.py`` and docs/protocol.md, "Search").

Upgrades in place: existing messages are indexed here. Queries under three
characters do not use these indexes (a trigram needs three); they scan the
user's own conversations on every database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("tidings.store.migrations")

# The countable kinds (PROTOCOL-v2 §1): notices are never search results.
_COUNTABLE = "('text', 'image', 'file', 'voice')"

# SQLite. The FTS table holds its own copy of each indexed body beside the
# message's position. Its rowid is its own: the rowid of ``messages`` (which
# has no INTEGER PRIMARY KEY) may change on VACUUM, so it cannot key the
# index. A row is found again by its old text (a MATCH on the whole old body,
# then the position): an edit or recall is rare next to a send, and this
# keeps a send's cost to one FTS insert, with no key table to write too.
# Bodies under three characters hold no trigram: they are left out, and only
# the short-query scan (which reads ``messages``) can find them.
_SQLITE_UP = (
    "CREATE VIRTUAL TABLE message_search USING fts5("
    "body, conversation_id UNINDEXED, seq UNINDEXED, tokenize = 'trigram')",
    f"""CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.kind IN {_COUNTABLE} AND new.recall_seq IS NULL AND length(new.body) >= 3
    BEGIN
        INSERT INTO message_search (body, conversation_id, seq)
        VALUES (new.body, new.conversation_id, new.seq);
    END""",
    # An edit replaces the text; a recall blanks it (body '') and so drops it.
    f"""CREATE TRIGGER message_search_update AFTER UPDATE OF body, recall_seq ON messages
    WHEN new.kind IN {_COUNTABLE}
    BEGIN
        DELETE FROM message_search WHERE rowid IN (
            SELECT rowid FROM message_search
            WHERE length(old.body) >= 3
              AND message_search MATCH '"' || replace(old.body, '"', '""') || '"'
              AND conversation_id = old.conversation_id AND seq = old.seq
        );
        INSERT INTO message_search (body, conversation_id, seq)
        SELECT new.body, new.conversation_id, new.seq
        WHERE new.recall_seq IS NULL AND length(new.body) >= 3;
    END""",
    f"""CREATE TRIGGER message_search_delete AFTER DELETE ON messages
    WHEN old.kind IN {_COUNTABLE} AND length(old.body) >= 3
    BEGIN
        DELETE FROM message_search WHERE rowid IN (
            SELECT rowid FROM message_search
            WHERE message_search MATCH '"' || replace(old.body, '"', '""') || '"'
              AND conversation_id = old.conversation_id AND seq = old.seq
        );
    END""",
    # The messages stored before this migration.
    f"""INSERT INTO message_search (body, conversation_id, seq)
    SELECT body, conversation_id, seq FROM messages
    WHERE kind IN {_COUNTABLE} AND recall_seq IS NULL AND length(body) >= 3""",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS message_search_delete",
    "DROP TRIGGER IF EXISTS message_search_update",
    "DROP TRIGGER IF EXISTS message_search_insert",
    "DROP TABLE IF EXISTS message_search",
)

# PostgreSQL. pg_trgm is a trusted extension (PostgreSQL 13+): the database's
# owner, or any role with CREATE on it, may create it. Without it, search
# still answers, by scanning the user's conversations (ILIKE is core
# PostgreSQL); the index can be added later (docs/operations.md, "Search").
PG_INDEX = "ix_messages_body_trgm"
_PG_INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON messages USING gin (body gin_trgm_ops)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql":
        _upgrade_postgresql()


def _upgrade_postgresql() -> None:
    bind = op.get_bind()
    # A savepoint, so that a role that may not create the extension leaves the
    # migration's transaction usable.
    savepoint = bind.begin_nested()
    try:
        bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as exc:  # a refusal: the database says why
        savepoint.rollback()
        log.warning(
            "search: cannot create the pg_trgm extension (%s); searches will scan "
            "each user's conversations. To index them, run as a superuser or the "
            "database owner: CREATE EXTENSION pg_trgm; %s;",
            str(exc.orig).splitlines()[0],
            _PG_INDEX_SQL,
        )
        return
    savepoint.commit()
    # On the partitioned table this builds one index per partition.
    op.execute(_PG_INDEX_SQL)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
