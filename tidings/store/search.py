"""Message search (PROTOCOL-v2 §7): one query per dialect over what a user may see now.

Every search is the same join: the user's memberships (so only
conversations the user is in now), their messages after the join, the
countable kinds only, not recalled, newest first by
``(sent_at, conversation_id, seq)``, a total order the cursor resumes
from. ``messages.body`` is the current text (an edit replaces it, a recall
blanks it in the same commit: store/batch.py), so a match on it is a match
on what the message says now, as of the last commit.

The match is a case-folded substring test (``instr``/``strpos``) on the
messages of the user's own conversations, read by primary key from each
join position: bounded by the user's history, not the whole database.
Only the case folding differs per database. That scan is the answer on
MySQL/MariaDB, on PostgreSQL for 1-2 characters (or without pg_trgm), and
on SQLite for a 1-character query.

SQLite has a text index (store/search_index.py): an FTS5 trigram table in a
file of its own, filled beside the send path (kept in the send's
transaction it halved the embedded server's private msgs/s:
docs/benchmarks.md, stop 18), with a watermark per conversation. A search
does not wait for it: its candidates are the index's matches at or below
each watermark, every message above it, and the targets of edit and recall
notices above it; each is re-checked by the scan's own test. What the index
has not seen is scanned, so the answer is the scan's, as of the last
commit (``SqlStore._search_indexed`` says why the snapshots line up).
PostgreSQL does the same with ``search_docs`` (migration 0009,
store/search_pg.py), in one REPEATABLE READ snapshot (``PG_TAILS``).

Text searched: ``messages.body``, which is a text message's text and an
attachment's caption, and the name of the file a message carries (from
``messages.attachment``, the file object as JSON; ``file_name``).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    cast,
    column,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import FromClause

from tidings.ids import ConversationId, UserId
from tidings.store import SearchPosition
from tidings.store.rows import MESSAGE_COLUMNS
from tidings.store.schema import members, messages
from tidings.store.search_index import ATTACHED_AS, SENTINEL

# PROTOCOL-v2 §1: the kinds that are messages; notices are never results.
COUNTABLE_KINDS = ("text", "image", "file", "voice")
# SQLite: Python's str.lower, registered on every connection (engines.py), so
# the scan folds case beyond ASCII, which SQLite's own lower() does not.
SQLITE_LOWER = "tidings_lower"


def searched_text() -> ColumnElement[Any]:
    """The text a message is found by (beside its file's name, ``file_name``)."""
    return messages.c.body


def file_name(dialect: str) -> ColumnElement[Any]:
    """The name in a message's file object (NULL without one), read by each database's JSON."""
    if dialect == "sqlite":
        return func.json_extract(messages.c.attachment, "$.name")
    if dialect == "postgresql":
        return func.json_extract_path_text(cast(messages.c.attachment, JSON), "name")
    return cast(
        func.json_unquote(func.json_extract(messages.c.attachment, "$.name")),
        mysql.CHAR(charset="utf8mb4"),
    )


def search_params(
    dialect: str,
    user: UserId,
    q: str,
    conversation: ConversationId | None,
    before: SearchPosition | None,
    limit: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement and parameters of one page of ``limit`` results."""
    params: dict[str, Any] = {"user": user, "limit": limit}
    if dialect == "sqlite":
        params["folded"] = q.lower()
    else:
        params["q"] = q
    if conversation is not None:
        params["conversation"] = conversation
    if before is not None:
        params |= {"b_at": before.sent_at, "b_c": before.conversation, "b_s": before.seq}
    query = _search_query(dialect, conversation is not None, before is not None)
    return query, params


def _match(dialect: str) -> ColumnElement[bool]:
    return or_(
        _contains(dialect, searched_text()),
        and_(messages.c.attachment.is_not(None), _contains(dialect, file_name(dialect))),
    )


def _contains(dialect: str, text: ColumnElement[Any]) -> ColumnElement[bool]:
    if dialect == "sqlite":
        return func.instr(getattr(func, SQLITE_LOWER)(text), bindparam("folded")) > 0
    if dialect == "postgresql":
        return func.strpos(func.lower(text), func.lower(bindparam("q"))) > 0
    # MySQL/MariaDB: their default collations also fold accents ("e" = "é");
    # lower-casing both sides and comparing bytes folds case only.
    return func.instr(func.lower(text).collate("utf8mb4_bin"), func.lower(bindparam("q"))) > 0


@functools.cache
def _search_query(
    dialect: str, in_conversation: bool, after_cursor: bool, indexed: bool = False
) -> Select[Any]:
    """Built once per shape, like the history pages (store/rows.py)."""
    source: FromClause = messages
    if indexed:
        # The candidates come first (the planner loops over them and reads
        # each message by primary key); the same predicates then re-check them.
        found = _candidates(dialect, in_conversation, after_cursor)
        source = found.join(
            messages,
            and_(messages.c.conversation_id == found.c.cid, messages.c.seq == found.c.cseq),
        )
    query = (
        select(*MESSAGE_COLUMNS)
        .select_from(source)
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
            _match(dialect),
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


# SQLite with its index file attached (store/search_index.py). Three sources
# of candidates, each only within the user's own conversations:
# 1. the FTS5 trigram matches at or below each conversation's watermark,
#    after the member's join, that no recall or edit notice above the
#    watermark acts on: exactly the matches there (the index holds the
#    folded text, matched case-sensitively), so only the first page of them
#    in the results' order is taken (sorted in the index file, by docs.sent_at);
# 2. every message above the watermark (not indexed yet: scanned);
# 3. the targets of recall and edit notices above it (their indexed text may
#    be old), which 1 leaves out.
# Every candidate is then re-checked against ``messages`` by the scan's predicate.
_SQLITE_CANDIDATES = """
SELECT cid, cseq FROM (
SELECT d.conversation_id AS cid, d.seq AS cseq
FROM {index}.fts AS f
JOIN {index}.docs AS d ON d.id = f.rowid
JOIN members AS mb ON mb.conversation_id = d.conversation_id AND mb.user_id = :user
JOIN {index}.watermarks AS w ON w.conversation_id = d.conversation_id
WHERE f.fts MATCH :phrase AND d.seq > mb.joined_seq AND d.seq <= w.indexed_seq {only} {cursor}
AND NOT EXISTS (
 SELECT 1 FROM messages AS n WHERE n.conversation_id = d.conversation_id
 AND n.seq > w.indexed_seq AND n.target_seq = d.seq AND n.kind IN ('edit', 'recall'))
ORDER BY d.sent_at DESC, d.conversation_id DESC, d.seq DESC LIMIT :limit)
UNION
SELECT m.conversation_id, m.seq
FROM members AS mb
LEFT JOIN {index}.watermarks AS w ON w.conversation_id = mb.conversation_id
JOIN messages AS m ON m.conversation_id = mb.conversation_id
 AND m.seq > max(mb.joined_seq, coalesce(w.indexed_seq, 0))
WHERE mb.user_id = :user {only}
UNION
SELECT m.conversation_id, m.target_seq
FROM members AS mb
LEFT JOIN {index}.watermarks AS w ON w.conversation_id = mb.conversation_id
JOIN messages AS m ON m.conversation_id = mb.conversation_id
 AND m.seq > coalesce(w.indexed_seq, 0)
WHERE mb.user_id = :user AND m.kind IN ('edit', 'recall') {only}
"""


# PostgreSQL: the same three sources from ``search_docs`` (migration 0009,
# store/search_pg.py), matched by LIKE on text folded by ``lower()`` (the
# scan's folding) through its ``gin_trgm_ops`` indexes; read after PG_TAILS
# in one snapshot of the side table, its watermarks and ``messages``.
_PG_PATTERN = (
    "chr(37) || replace(replace(replace(lower(:q), chr(92), chr(92) || chr(92)),"
    " chr(37), chr(92) || chr(37)), chr(95), chr(92) || chr(95)) || chr(37)"
)
_PG_CANDIDATES = f"""
SELECT cid, cseq FROM (
SELECT d.conversation_id AS cid, d.seq AS cseq
FROM search_docs AS d
JOIN members AS mb ON mb.conversation_id = d.conversation_id AND mb.user_id = :user
JOIN search_watermarks AS w ON w.conversation_id = d.conversation_id
WHERE (d.body LIKE ({_PG_PATTERN}) OR d.name LIKE ({_PG_PATTERN}))
AND d.seq > mb.joined_seq AND d.seq <= w.indexed_seq {{only}} {{cursor}}
AND NOT EXISTS (
 SELECT 1 FROM messages AS n WHERE n.conversation_id = d.conversation_id
 AND n.seq > w.indexed_seq AND n.target_seq = d.seq AND n.kind IN ('edit', 'recall'))
ORDER BY d.sent_at DESC, d.conversation_id DESC, d.seq DESC LIMIT :limit) AS hits
UNION
SELECT m.conversation_id, m.seq
FROM members AS mb
LEFT JOIN search_watermarks AS w ON w.conversation_id = mb.conversation_id
JOIN messages AS m ON m.conversation_id = mb.conversation_id
 AND m.seq > greatest(mb.joined_seq, coalesce(w.indexed_seq, 0))
WHERE mb.user_id = :user AND m.conversation_id = ANY(:tails) {{only}}
UNION
SELECT m.conversation_id, m.target_seq
FROM members AS mb
LEFT JOIN search_watermarks AS w ON w.conversation_id = mb.conversation_id
JOIN messages AS m ON m.conversation_id = mb.conversation_id
 AND m.seq > coalesce(w.indexed_seq, 0)
WHERE mb.user_id = :user AND m.kind IN ('edit', 'recall') AND m.conversation_id = ANY(:tails)
 {{only}}
"""


# The conversations of the user with a tail (rows above the watermark),
# read first in the same REPEATABLE READ snapshot: few, so the tails above are
# read by primary key (not knowing they are short, the planner would
# otherwise hash-join every message of the user's conversations).
PG_TAILS = """
SELECT mb.conversation_id FROM members AS mb
JOIN conversations AS c ON c.id = mb.conversation_id
LEFT JOIN search_watermarks AS w ON w.conversation_id = mb.conversation_id
WHERE mb.user_id = :user AND c.last_seq > coalesce(w.indexed_seq, 0)
"""


def _candidates(dialect: str, in_conversation: bool, after_cursor: bool) -> Subquery:
    only = "AND mb.conversation_id = :conversation" if in_conversation else ""
    cursor = (
        "AND (d.sent_at, d.conversation_id, d.seq) < (:b_at, :b_c, :b_s)" if after_cursor else ""
    )
    if dialect == "postgresql":
        sql = _PG_CANDIDATES.format(only=only, cursor=cursor)
    else:
        sql = _SQLITE_CANDIDATES.format(index=ATTACHED_AS, only=only, cursor=cursor)
    return text(sql).columns(column("cid", String), column("cseq", BigInteger)).subquery("found")


def pg_indexed_search_params(
    user: UserId,
    q: str,
    conversation: ConversationId | None,
    before: SearchPosition | None,
    limit: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """PostgreSQL's query through ``search_docs``, for 3 characters or more."""
    _, params = search_params("postgresql", user, q, conversation, before, limit)
    query = _search_query("postgresql", conversation is not None, before is not None, indexed=True)
    return query, params


# Trigrams need 3 characters; a 2-character query is the OR of the trigrams
# beginning with it (store/search_index.py, SENTINEL), looked up in the
# index's sorted terms; a 1-character query is scanned (as are queries whose
# 2 characters begin more than ``MAX_TERMS`` trigrams: the OR would cost more).
MIN_INDEXED_CHARS = 2
MAX_TERMS = 300
TERMS_BEGINNING = (
    f"SELECT term FROM {ATTACHED_AS}.fts_terms WHERE term >= :low AND term < :high LIMIT :most"
)


def indexable(folded: str) -> bool:
    """Whether a folded query may be answered through SQLite's index."""
    return len(folded) >= MIN_INDEXED_CHARS and SENTINEL not in folded


def phrase(text: str) -> str:
    """One FTS5 phrase: its trigrams in a row, i.e. the text as a substring."""
    return '"' + text.replace('"', '""') + '"'


def terms_params(folded: str) -> dict[str, Any]:
    """The range of trigrams that begin with a 2-character query (bytes order)."""
    return {"low": folded, "high": folded + "\U0010ffff", "most": MAX_TERMS + 1}


def indexed_search_params(
    user: UserId,
    q: str,
    match: str,
    conversation: ConversationId | None,
    before: SearchPosition | None,
    limit: int,
) -> tuple[Select[Any], dict[str, Any]]:
    """SQLite's query through the index, with ``match`` its FTS5 expression."""
    _, params = search_params("sqlite", user, q, conversation, before, limit)
    params["phrase"] = match
    query = _search_query("sqlite", conversation is not None, before is not None, indexed=True)
    return query, params
