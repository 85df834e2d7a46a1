"""PostgreSQL's search index: ``search_docs`` (migration 0009), a side table
with ``gin_trgm_ops`` indexes, filled beside the send path from watermarks.

The same design as SQLite's (store/search_index.py): everything of a
conversation at or below ``search_watermarks.indexed_seq`` is in
``search_docs`` with its text as of some commit after its last edit notice
at or below it; the search trusts the table only there and re-checks every
candidate. Here the text is folded by ``lower()`` in SQL, the scan's own
folding, and copied by ``INSERT … SELECT`` (no row leaves the database).

Many nodes: each runs an indexer; a run takes a transaction-scoped advisory
lock first (``pg_try_advisory_xact_lock``), so one node indexes at a time
and the others skip that run. Every statement of a run reads committed
state as of its own start (READ COMMITTED), and a watermark moves only to
the ``last_seq`` the run read before copying, so a row the run did not see
is never below it.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tidings.store.indexer import ROWS_PER_RUN, Indexer

log = logging.getLogger(__name__)

_LOCK_ID = 0x7469_6469_7365  # "tidise": the indexers' lock, one run at a time
_COUNTABLE = "('text', 'image', 'file', 'voice')"

_BEHIND = (
    "SELECT c.id, c.last_seq, coalesce(w.indexed_seq, 0) AS indexed FROM conversations c"
    " LEFT JOIN search_watermarks w ON w.conversation_id = c.id"
    " WHERE c.last_seq > coalesce(w.indexed_seq, 0)"
)
_NAME = "json_extract_path_text(CAST({t}.attachment AS json), 'name')"
_COPY = f"""
INSERT INTO search_docs (conversation_id, seq, sent_at, body, name)
SELECT m.conversation_id, m.seq, m.sent_at, lower(m.body), lower({_NAME.format(t="m")})
FROM messages m
WHERE m.conversation_id = :c AND m.seq > :low AND m.seq <= :high
  AND m.kind IN {_COUNTABLE} AND m.recall_seq IS NULL
ON CONFLICT (conversation_id, seq) DO UPDATE SET body = excluded.body, name = excluded.name
"""
# The targets of recall and edit notices in the range: out, then the edited
# ones back with their text now (a notice's own body is the notice's).
_DROP_TARGETS = """
DELETE FROM search_docs d USING messages n
WHERE n.conversation_id = :c AND n.seq > :low AND n.seq <= :high
  AND n.kind IN ('edit', 'recall') AND d.conversation_id = :c AND d.seq = n.target_seq
"""
_PUT_EDITED = f"""
INSERT INTO search_docs (conversation_id, seq, sent_at, body, name)
SELECT t.conversation_id, t.seq, t.sent_at, lower(t.body), lower({_NAME.format(t="t")})
FROM messages n JOIN messages t ON t.conversation_id = n.conversation_id AND t.seq = n.target_seq
WHERE n.conversation_id = :c AND n.seq > :low AND n.seq <= :high AND n.kind = 'edit'
  AND t.kind IN {_COUNTABLE} AND t.recall_seq IS NULL
ON CONFLICT (conversation_id, seq) DO UPDATE SET body = excluded.body, name = excluded.name
"""
_MOVE = """
INSERT INTO search_watermarks (conversation_id, indexed_seq) VALUES (:c, :high)
ON CONFLICT (conversation_id) DO UPDATE SET indexed_seq = excluded.indexed_seq
"""


async def usable(conn: AsyncConnection) -> bool:
    """Whether migration 0009 made the trigram indexes (pg_trgm could be created)."""
    found = await conn.scalar(text("SELECT to_regclass('search_docs_body') IS NOT NULL"))
    return bool(found)


class PgSearchIndex(Indexer):
    """One node's indexer of ``search_docs``: ``start``, ``wake`` after commits."""

    retried = (SQLAlchemyError, OSError)

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        self._running = asyncio.Lock()

    async def _release(self) -> None:
        pass  # the engine is the store's, and closed by it

    async def pause(self) -> None:
        self._paused = True
        async with self._running:  # the pass under way, if any, has committed
            pass

    async def _pass(self, *, wait: bool) -> bool:
        async with self._running:
            named, full = self._take()
            try:
                return await self._index_in_transaction(named, wait=wait)
            except BaseException:
                self._give_back(named, full)
                raise

    async def _index_in_transaction(self, named: set[str] | None, *, wait: bool) -> bool:
        if named is not None and not named:
            return False
        async with self._engine.begin() as conn:
            lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
            got = await conn.scalar(text(f"SELECT {lock}({_LOCK_ID})"))
            if not wait and not got:
                return False  # another node is indexing; its run covers these rows
            if named is None:
                behind = (await conn.execute(text(_BEHIND))).all()
            else:
                query = text(_BEHIND + " AND c.id = ANY(:ids)")
                behind = (await conn.execute(query, {"ids": sorted(named)})).all()
            budget, more = ROWS_PER_RUN, False
            for conversation, last_seq, indexed in behind:
                if budget <= 0:
                    more = True
                    self._look_again(conversation)
                    continue
                high = min(int(last_seq), int(indexed) + budget)
                params = {"c": conversation, "low": int(indexed), "high": high}
                for statement in (_COPY, _DROP_TARGETS, _PUT_EDITED, _MOVE):
                    await conn.execute(text(statement), params)
                budget -= max(high - int(indexed), 1)
                self.rows_indexed += high - int(indexed)
                if high < int(last_seq):
                    more = True
                    self._look_again(conversation)
            if more and named is None:
                self._full_pass = True
            return more
