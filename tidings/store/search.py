"""Message search (PROTOCOL-v2 §7): one query per dialect over what a user may see now.

Every search is the same join: the user's memberships (so only
conversations the user is in now), their messages after the join, the
countable kinds only, not recalled, newest first by
``(sent_at, conversation_id, seq)``, a total order the cursor resumes
from. ``messages.body`` is the current text (an edit replaces it, a recall
blanks it in the same commit: store/batch.py), so a match on it is a match
on what the message says now. Only the match differs per database:

- PostgreSQL, three characters or more: ``ILIKE '%q%'`` (``%``, ``_`` and ``\\``
  escaped), which the ``pg_trgm`` GIN index answers.
- Under three characters on PostgreSQL, and SQLite and MySQL/MariaDB
  always: a case-folded substring test (``instr``/``strpos``) on the
  messages of the user's own conversations, read by primary key from each
  join position. A trigram index cannot answer a query shorter than a
  trigram; this scan is bounded by the user's history, not the whole
  database. SQLite has no index yet: an FTS5 trigram table kept in each
  batch's transaction halved its private msgs/s (docs/benchmarks.md, stop
  18); one written off the send path is the next step.

Text searched: ``messages.body``, which is a text message's text and an
attachment's caption. A file's name, once files exist, joins it here
(``searched_text``), and in the PostgreSQL index.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.sql.elements import BindParameter

from tidings.ids import ConversationId, UserId
from tidings.store import SearchPosition
from tidings.store.rows import MESSAGE_COLUMNS
from tidings.store.schema import members, messages

# PROTOCOL-v2 §1: the kinds that are messages; notices are never results.
COUNTABLE_KINDS = ("text", "image", "file", "voice")
# The shortest query a trigram index answers.
TRIGRAM = 3
# SQLite: Python's str.lower, registered on every connection (engines.py), so
# the scan folds case beyond ASCII, which SQLite's own lower() does not.
SQLITE_LOWER = "tidings_lower"


def searched_text() -> ColumnElement[Any]:
    """The text a message is found by (the hook for a file's name)."""
    return messages.c.body


def search_params(
    dialect: str,
    user: UserId,
    q: str,
    conversation: ConversationId | None,
    before: SearchPosition | None,
    limit: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement and parameters of one page of ``limit`` results."""
    short = len(q) < TRIGRAM
    params: dict[str, Any] = {"user": user, "limit": limit}
    if dialect == "sqlite":
        params["folded"] = q.lower()
    elif dialect == "postgresql" and not short:
        params["pattern"] = "%" + like_escape(q) + "%"
    else:
        params["q"] = q
    if conversation is not None:
        params["conversation"] = conversation
    if before is not None:
        params |= {"b_at": before.sent_at, "b_c": before.conversation, "b_s": before.seq}
    query = _search_query(dialect, short, conversation is not None, before is not None)
    return query, params


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern whose escape character is ``\\``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _match(dialect: str, short: bool) -> ColumnElement[bool]:
    text = searched_text()
    if dialect == "sqlite":
        return func.instr(getattr(func, SQLITE_LOWER)(text), bindparam("folded")) > 0
    if dialect == "postgresql":
        if short:
            return func.strpos(func.lower(text), func.lower(bindparam("q"))) > 0
        return text.ilike(bindparam("pattern"), escape="\\")
    # MySQL/MariaDB: their default collations also fold accents ("e" = "é");
    # lower-casing both sides and comparing bytes folds case only.
    return func.instr(func.lower(text).collate("utf8mb4_bin"), func.lower(bindparam("q"))) > 0


@functools.cache
def _search_query(
    dialect: str, short: bool, in_conversation: bool, after_cursor: bool
) -> Select[Any]:
    """Built once per shape, like the history pages (store/rows.py)."""
    query = (
        select(*MESSAGE_COLUMNS)
        .join(
            members,
            and_(
                members.c.conversation_id == messages.c.conversation_id,
                members.c.user_id == bindparam("user"),
            ),
        )
        .where(
            messages.c.seq > members.c.joined_seq,
            messages.c.kind.in_(COUNTABLE_KINDS),
            messages.c.recall_seq.is_(None),
            _match(dialect, short),
        )
    )
    if in_conversation:
        query = query.where(messages.c.conversation_id == bindparam("conversation"))
    if after_cursor:
        at: BindParameter[int] = bindparam("b_at")
        cid: BindParameter[str] = bindparam("b_c")
        seq: BindParameter[int] = bindparam("b_s")
        query = query.where(
            or_(
                messages.c.sent_at < at,
                and_(
                    messages.c.sent_at == at,
                    or_(
                        messages.c.conversation_id < cid,
                        and_(messages.c.conversation_id == cid, messages.c.seq < seq),
                    ),
                ),
            )
        )
    return query.order_by(
        messages.c.sent_at.desc(), messages.c.conversation_id.desc(), messages.c.seq.desc()
    ).limit(bindparam("limit"))
