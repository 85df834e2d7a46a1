"""Message search (PROTOCOL-v2 §7): PostgreSQL's substring index over message text.

- SQLite: nothing yet. An FTS5 ``trigram`` table kept by triggers in each
  batch's transaction halved private msgs/s (docs/benchmarks.md, stop 18):
  small transactions are FTS5's most expensive case. Searches scan the
  user's own conversations until an index written off the send path lands.
- PostgreSQL: a ``pg_trgm`` GIN index on ``messages.body`` (an index of
  the table itself: the database keeps it in the same transaction).
- MySQL/MariaDB: nothing. MariaDB has no ngram parser (MySQL's is not in
  it, nor Mroonga here), and its FULLTEXT parser splits on spaces, which
  finds no Chinese word. Searches there scan the user's own conversations
  (see ``store/search.py`` and docs/protocol.md, "Search").

Upgrades in place: existing messages are indexed here. Queries under three
characters do not use the index (a trigram needs three); they scan the
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

# PostgreSQL. pg_trgm is a trusted extension (PostgreSQL 13+): the database's
# owner, or any role with CREATE on it, may create it. Without it, search
# still answers, by scanning the user's conversations (ILIKE is core
# PostgreSQL); the index can be added later (docs/operations.md, "Search").
PG_INDEX = "ix_messages_body_trgm"
_PG_INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON messages USING gin (body gin_trgm_ops)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
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
    if dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
