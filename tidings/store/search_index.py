"""SQLite's search index: an FTS5 trigram table in a file of its own, kept
off the send path and caught up from per-conversation watermarks.

Why beside the send path and not in it: kept by triggers in the send's
transaction, the same table halved the embedded server's private msgs/s
(docs/benchmarks.md, stop 18). Here one thread writes it, in transactions
of up to ``ROWS_PER_RUN`` rows, into ``<database>.search`` (its own WAL, its
own write lock: the message writer never waits for it).

What the file holds (everything in it is derived from ``messages``; delete
it and the next start rebuilds it):

- ``watermarks(conversation_id, indexed_seq)``: every message of the
  conversation at or below ``indexed_seq`` is in ``fts`` with its text as of
  some commit after its last edit notice at or below ``indexed_seq``
  (an edit notice moves its target's row; a recall notice removes it).
- ``docs(id, conversation_id, seq, sent_at)``: the FTS rowid of each indexed
  message, and its place in the results' order (a page is cut here).
- ``fts(body, name)``: the body and file name, folded by Python's
  ``str.lower`` (the search's own folding) and ended by ``SENTINEL``,
  ``tokenize='trigram'`` (case sensitive on the folded text, so a phrase
  match is exactly a substring); ``fts_terms``, its sorted trigrams.
- ``meta``: the identity and generation of the database it was built from;
  a restored or different database (another generation) starts it afresh.

The search (store/search.py) trusts the index only at or below each
watermark and re-checks every candidate against ``messages``, so a lagging
index is never wrong, only less of a shortcut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tidings.models import NOTICE_KINDS
from tidings.store.indexer import ROWS_PER_RUN, Indexer

log = logging.getLogger(__name__)

# The schema name of the index file on read connections (engines.py attaches it).
ATTACHED_AS = "search_index"

FORMAT = 1
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS watermarks ("
    " conversation_id TEXT PRIMARY KEY, indexed_seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS docs ("
    " id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " sent_at INTEGER NOT NULL, UNIQUE (conversation_id, seq))",
    # case_sensitive 1: the text is folded already, by the search's own folding,
    # so a phrase match is exactly a substring of it (no match to re-check away).
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5("
    "body, name, tokenize='trigram case_sensitive 1')",
    # Its terms (trigrams), sorted: what a 2-character query is looked up in.
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts_terms USING fts5vocab(fts, row)",
)
# Appended to every indexed text, so that each occurrence of a 2-character
# string begins a trigram ("ab" at the end of "...ab" is in "ab\x01"): a
# 2-character query is then the OR of the trigrams that begin with it. A query
# holding this character is scanned instead (it could match across the end).
SENTINEL = "\x01"


def index_file(database: str) -> str:
    """Where the index of the SQLite database at ``database`` lives."""
    return f"{database}.search"


def folded(text: str | None) -> str | None:
    """The text as indexed: the search's folding, then the sentinel."""
    return None if text is None else text.lower() + SENTINEL


def folded_name(attachment: str | None) -> str | None:
    if attachment is None:
        return None
    try:
        name = json.loads(attachment).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


# Nice value of the indexer's thread: it yields to the send path's threads
# (nice 0) when both want the core, and still runs on what they leave.
_INDEX_NICENESS = 10


def _yield_to_the_send_path() -> None:
    """Run this thread at a lower priority than the server's others (Linux only:
    a thread id is a process id to ``setpriority`` there). The index's FTS5
    writes are bursts of CPU with the GIL released; on a busy core they
    otherwise take turns with the send path's commit and the event loop, and
    every send in the burst waits (docs/benchmarks.md, stop 38). A lower
    priority gives the index the CPU the sends leave; under sustained
    overload it falls behind and searches scan the tail, as they do while it
    catches up."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _INDEX_NICENESS)


class SqliteSearchIndex(Indexer):
    """The indexer of one SQLite database: ``open``, ``start``, ``wake`` after commits."""

    retried = (sqlite3.Error,)

    def __init__(self, database: str) -> None:
        super().__init__()
        self._database = str(Path(database).expanduser())
        self.path = index_file(self._database)
        self._thread = ThreadPoolExecutor(
            1, thread_name_prefix="tidings-search-index", initializer=_yield_to_the_send_path
        )
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle ------------------------------------------------------------

    def open(self) -> None:
        """Make the file and its tables (before any read connection attaches it)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # Derived data: a crash may lose the last run, which the watermarks redo.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("ATTACH DATABASE ? AS tidings", (self._database,))
        self._conn = conn
        self._check_origin()

    def _check_origin(self) -> None:
        """Start afresh when the database is not the one the index was built from."""
        conn = self._require()
        try:
            row = conn.execute(
                "SELECT identity, generation FROM tidings.deployment WHERE id = 1"
            ).fetchone()
        except sqlite3.OperationalError:
            row = None  # an older schema: nothing to compare with
        # The file's layout is part of it: a later layout starts afresh too.
        origin = f"{FORMAT}:" + ("" if row is None else f"{row[0]}.{row[1]}")
        kept = conn.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
        if kept is not None and kept[0] == origin:
            return
        if kept is not None:
            log.warning("the search index was built from another database state; rebuilding it")
        conn.execute("BEGIN")
        for table in ("watermarks", "docs", "fts"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('origin', ?)", (origin,))
        conn.execute("COMMIT")

    async def _release(self) -> None:
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def pause(self) -> None:
        self._paused = True
        # The thread runs one thing at a time: this returns after that pass.
        await asyncio.get_running_loop().run_in_executor(self._thread, lambda: None)

    # -- the indexer ------------------------------------------------------------

    async def _pass(self, *, wait: bool) -> bool:
        # One node per file: there is no other indexer to wait for.
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._index_run)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the search index is not open")
        return self._conn

    def _index_run(self) -> bool:
        """One transaction of up to ``ROWS_PER_RUN`` rows; True if more may wait."""
        conn = self._require()
        named, full = self._take()
        # Deferred: the read of messages is a WAL snapshot, and the first write
        # locks only this file (BEGIN IMMEDIATE would lock the main database too).
        conn.execute("BEGIN")
        try:
            behind = self._behind(conn, named)
            budget = ROWS_PER_RUN
            more = False
            for conversation, last_seq, indexed in behind:
                if budget <= 0:
                    more = True
                    self._look_again(conversation)  # not reached this pass
                    continue
                done, finished = self._index_conversation(
                    conn, conversation, indexed, last_seq, budget
                )
                budget -= done
                if not finished:  # the budget ran out inside it
                    more = True
                    self._look_again(conversation)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._give_back(named, full)
            raise
        self.rows_indexed += ROWS_PER_RUN - budget
        if more and full:
            self._full_pass = True
        return more

    def _behind(
        self, conn: sqlite3.Connection, named: set[str] | None
    ) -> list[tuple[str, int, int]]:
        query = (
            "SELECT c.id, c.last_seq, coalesce(w.indexed_seq, 0) FROM tidings.conversations c"
            " LEFT JOIN watermarks w ON w.conversation_id = c.id"
            " WHERE c.last_seq > coalesce(w.indexed_seq, 0)"
        )
        if named is None:
            return list(conn.execute(query))
        behind: list[tuple[str, int, int]] = []
        for conversation in sorted(named):
            behind += conn.execute(query + " AND c.id = ?", (conversation,))
        return behind

    def _index_conversation(
        self, conn: sqlite3.Connection, conversation: str, indexed: int, last_seq: int, budget: int
    ) -> tuple[int, bool]:
        """Index up to ``budget`` of its rows: how many it took, and whether it is done."""
        rows = conn.execute(
            "SELECT seq, kind, body, attachment, target_seq, recall_seq, sent_at"
            " FROM tidings.messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation, indexed, budget),
        ).fetchall()
        for seq, kind, body, attachment, target, recall_seq, sent_at in rows:
            if kind == "edit" and target is not None:
                self._refresh(conn, conversation, target)
            elif kind == "recall" and target is not None:
                self._remove(conn, conversation, target)
            elif kind not in NOTICE_KINDS and recall_seq is None:
                self._put(conn, conversation, seq, sent_at, body, attachment)
        # All read (fewer than asked): the watermark is the conversation's last
        # seq in this snapshot, past any seq that has no row.
        finished = len(rows) < budget or rows[-1][0] >= last_seq
        reached = last_seq if finished else rows[-1][0]
        conn.execute(
            "INSERT INTO watermarks(conversation_id, indexed_seq) VALUES (?, ?)"
            " ON CONFLICT (conversation_id) DO UPDATE SET indexed_seq = excluded.indexed_seq",
            (conversation, reached),
        )
        return max(len(rows), 1), finished

    def _refresh(self, conn: sqlite3.Connection, conversation: str, seq: int) -> None:
        """An edit's target: its text now (the notice's own body is the notice's)."""
        row = conn.execute(
            "SELECT kind, body, attachment, recall_seq, sent_at FROM tidings.messages"
            " WHERE conversation_id = ? AND seq = ?",
            (conversation, seq),
        ).fetchone()
        if row is None or row[0] in NOTICE_KINDS or row[3] is not None:
            self._remove(conn, conversation, seq)
        else:
            self._put(conn, conversation, seq, row[4], row[1], row[2])

    def _put(
        self,
        conn: sqlite3.Connection,
        conversation: str,
        seq: int,
        sent_at: int,
        body: str | None,
        attachment: str | None,
    ) -> None:
        found = conn.execute(
            "SELECT id FROM docs WHERE conversation_id = ? AND seq = ?", (conversation, seq)
        ).fetchone()
        if found is None:
            cursor = conn.execute(
                "INSERT INTO docs(conversation_id, seq, sent_at) VALUES (?, ?, ?)",
                (conversation, seq, sent_at),
            )
            rowid = cursor.lastrowid
        else:
            rowid = found[0]
            conn.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
        conn.execute(
            "INSERT INTO fts(rowid, body, name) VALUES (?, ?, ?)",
            (rowid, folded(body), folded(folded_name(attachment))),
        )

    def _remove(self, conn: sqlite3.Connection, conversation: str, seq: int) -> None:
        found = conn.execute(
            "SELECT id FROM docs WHERE conversation_id = ? AND seq = ?", (conversation, seq)
        ).fetchone()
        if found is not None:
            conn.execute("DELETE FROM fts WHERE rowid = ?", (found[0],))
            conn.execute("DELETE FROM docs WHERE id = ?", (found[0],))
