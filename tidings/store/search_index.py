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
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tidings.models import NOTICE_KINDS

log = logging.getLogger(__name__)

# Rows read from messages per indexing transaction: large transactions are
# what make FTS5 cheap per row (bench/fts5_inserts.py: ~5x from 20 to 5,000).
ROWS_PER_RUN = 5000
# A full pass over conversations (beyond those the writer named) this often:
# writes that do not pass the writer (a bulk import) are indexed within it.
FULL_PASS_SECONDS = 30.0
# At most one indexing pass per this many seconds. Under load the writer wakes
# the indexer after every batch; gathering a whole interval's rows makes each
# transaction large, which is what makes the index cheap per row
# (bench/fts5_inserts.py). A search is exact meanwhile: it scans the tail past
# the watermarks.
INDEX_INTERVAL = 1.0
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


class SqliteSearchIndex:
    """The indexer of one SQLite database: ``open``, ``start``, ``wake`` after commits."""

    def __init__(self, database: str) -> None:
        self._database = str(Path(database).expanduser())
        self.path = index_file(self._database)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-search-index")
        self._conn: sqlite3.Connection | None = None
        self._named: set[str] = set()  # conversations the writer says moved
        self._lock = threading.Lock()
        self._full_pass = True  # the first run looks at every conversation
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._closing = False
        self._stopping = asyncio.Event()
        self.rows_indexed = 0

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

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._wakeup.set()
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="search-index")

    async def close(self) -> None:
        # A flag, not only cancel(): Python 3.11's wait_for can swallow a
        # cancel that meets the event being set, and the loop would go on.
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            self._stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def wake(self, conversations: Iterable[str]) -> None:
        """After a commit: these conversations have rows past their watermark."""
        with self._lock:
            self._named.update(conversations)
        if self._wakeup is not None:
            self._wakeup.set()

    # For tests: an index that lags (paused) must answer as one caught up.
    async def pause(self) -> None:
        """Stop indexing, once the run under way (if any) has committed."""
        self._paused = True
        # The thread runs one thing at a time: this returns after that run.
        await asyncio.get_running_loop().run_in_executor(self._thread, lambda: None)

    def resume(self) -> None:
        self._paused = False
        self._full_pass = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def catch_up(self) -> None:
        """Index everything committed so far (tests, the benchmark)."""
        self._full_pass = True
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._thread, self._index_run):
            pass

    # -- the indexer ------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                await asyncio.wait_for(self._wakeup.wait(), FULL_PASS_SECONDS)
            except TimeoutError:
                self._full_pass = True
            self._wakeup.clear()
            if self._paused or self._closing:
                continue
            try:
                # Several runs while the writer keeps naming conversations.
                while await loop.run_in_executor(self._thread, self._index_run):
                    if self._paused or self._closing:
                        break
            except sqlite3.Error:
                log.exception("indexing for search failed; retrying from the watermarks")
                self._full_pass = True
                await asyncio.sleep(1.0)
            # Rest (INDEX_INTERVAL says why); a close ends the rest at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), INDEX_INTERVAL)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the search index is not open")
        return self._conn

    def _index_run(self) -> bool:
        """One transaction of up to ``ROWS_PER_RUN`` rows; True if more may wait."""
        conn = self._require()
        with self._lock:
            named, self._named = self._named, set()
        full, self._full_pass = self._full_pass, False
        # Deferred: the read of messages is a WAL snapshot, and the first write
        # locks only this file (BEGIN IMMEDIATE would lock the main database too).
        conn.execute("BEGIN")
        try:
            behind = self._behind(conn, None if full else named)
            budget = ROWS_PER_RUN
            more = False
            for conversation, last_seq, indexed in behind:
                if budget <= 0:
                    more = True
                    with self._lock:  # not reached: look again next run
                        self._named.add(conversation)
                    continue
                done = self._index_conversation(conn, conversation, indexed, last_seq, budget)
                budget -= done
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            with self._lock:
                self._named.update(named)
            self._full_pass = self._full_pass or full
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
    ) -> int:
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
        reached = last_seq if len(rows) < budget else rows[-1][0]
        conn.execute(
            "INSERT INTO watermarks(conversation_id, indexed_seq) VALUES (?, ?)"
            " ON CONFLICT (conversation_id) DO UPDATE SET indexed_seq = excluded.indexed_seq",
            (conversation, reached),
        )
        return max(len(rows), 1)

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
