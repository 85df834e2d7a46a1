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
from typing import Any

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
# Every statement below takes the run's ranges as three arrays, one element per
# conversation: a run is four statements however many conversations it covers
# (one per conversation each was most of the indexer's cost on the node).
_RANGES = (
    "SELECT * FROM unnest(CAST(:cs AS varchar[]), CAST(:lows AS bigint[]),"
    " CAST(:highs AS bigint[])) AS r(c, low, high)"
)
_COPY = f"""
INSERT INTO search_docs (conversation_id, seq, sent_at, body, name)
SELECT m.conversation_id, m.seq, m.sent_at, lower(m.body), lower({_NAME.format(t="m")})
FROM ({_RANGES}) r JOIN messages m ON m.conversation_id = r.c AND m.seq > r.low AND m.seq <= r.high
WHERE m.kind IN {_COUNTABLE} AND m.recall_seq IS NULL
ON CONFLICT (conversation_id, seq) DO UPDATE SET body = excluded.body, name = excluded.name
"""
# The targets of recall and edit notices in the ranges: out, then the edited
# ones back with their text now (a notice's own body is the notice's).
_NOTICES = f"""
SELECT n.conversation_id, n.target_seq FROM ({_RANGES}) r
JOIN messages n ON n.conversation_id = r.c AND n.seq > r.low AND n.seq <= r.high
WHERE n.kind IN {{kinds}}
"""
_DROP_TARGETS = f"""
DELETE FROM search_docs d
WHERE (d.conversation_id, d.seq) IN ({_NOTICES.format(kinds="('edit', 'recall')")})
"""
# IN, not a join: a message edited twice in one run is put back once (an
# ON CONFLICT DO UPDATE may not touch one row twice in a statement).
_PUT_EDITED = f"""
INSERT INTO search_docs (conversation_id, seq, sent_at, body, name)
SELECT t.conversation_id, t.seq, t.sent_at, lower(t.body), lower({_NAME.format(t="t")})
FROM messages t
WHERE (t.conversation_id, t.seq) IN ({_NOTICES.format(kinds="('edit')")})
  AND t.kind IN {_COUNTABLE} AND t.recall_seq IS NULL
ON CONFLICT (conversation_id, seq) DO UPDATE SET body = excluded.body, name = excluded.name
"""
_MOVE = f"""
INSERT INTO search_watermarks (conversation_id, indexed_seq) SELECT c, high FROM ({_RANGES}) r
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
            ranges: dict[str, list[Any]] = {"cs": [], "lows": [], "highs": []}
            for conversation, last_seq, indexed in behind:
                if budget <= 0:
                    more = True
                    self._look_again(conversation)
                    continue
                high = min(int(last_seq), int(indexed) + budget)
                ranges["cs"].append(conversation)
                ranges["lows"].append(int(indexed))
                ranges["highs"].append(high)
                budget -= max(high - int(indexed), 1)
                if high < int(last_seq):
                    more = True
                    self._look_again(conversation)
            if ranges["cs"]:
                for statement in (_COPY, _DROP_TARGETS, _PUT_EDITED, _MOVE):
                    await conn.execute(text(statement), ranges)
                self.rows_indexed += sum(ranges["highs"]) - sum(ranges["lows"])
            if more and named is None:
                self._full_pass = True
            return more
