"""SQLite's WAL copied into the database from a thread of its own.

By default SQLite checkpoints inside the commit that takes the WAL past
``wal_autocheckpoint`` pages: that commit copies the WAL's pages into the
database file and fsyncs it while every send of its batch, and the batches
queued behind it, wait: the tallest waves in the open-loop latency
(docs/benchmarks.md, stop 13).

This thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection
every ``interval`` seconds instead. A passive checkpoint never waits for
the writer or blocks it, and the sqlite3 module lets go of the GIL while
it runs, so the copy and its fsync happen beside the write path, not in
it; when a pass has copied everything, the next write transaction starts
the WAL over from its beginning. The commits' own checkpoint stays as the
backstop: if this thread falls behind, the WAL still stops growing at
``wal_autocheckpoint`` pages.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.25


class WalCheckpointer:
    """Checkpoints the WAL of the database at ``path`` until ``stop``."""

    def __init__(
        self, path: str, *, synchronous: str, interval: float = CHECKPOINT_INTERVAL
    ) -> None:
        self._path = path
        self._synchronous = synchronous.upper()
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="tidings-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            # The fsync of the database file before the WAL may be reused.
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            failing = False
            while not self._stopping.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    failing = False
                except sqlite3.Error as exc:
                    # The commits' own checkpoints still bound the WAL: say so once.
                    if not failing:
                        log.warning("WAL checkpoint failed (%s); commits will checkpoint", exc)
                    failing = True
        finally:
            connection.close()
