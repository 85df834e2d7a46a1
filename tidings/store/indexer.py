"""The search indexers' shared life: started, woken after commits, resting
between passes, paused for tests, closed.

SQLite's indexer (store/search_index.py) runs its passes in a thread on its
own file; PostgreSQL's (store/search_pg.py) runs them in the database. Both
keep the same books: the conversations the writer named since the last pass,
and whether the next pass must look at every conversation. A pass is one
transaction of up to ``ROWS_PER_RUN`` rows and says whether more may wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable

log = logging.getLogger(__name__)

# Rows read from messages per indexing transaction: large transactions are
# what make FTS5 and GIN cheap per row (bench/fts5_inserts.py: ~5x from 20 to 5,000).
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


class Indexer(ABC):
    """``start``, ``wake`` after commits, ``close``; ``pause``/``resume``/``catch_up`` for tests."""

    # What a pass may fail with and be retried from the watermarks.
    retried: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._named: set[str] = set()  # conversations the writer says moved
        # SQLite's passes take and give back names from their own thread.
        self._named_lock = threading.Lock()
        self._full_pass = True  # the first pass looks at every conversation
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._closing = False
        self._stopping = asyncio.Event()
        self.rows_indexed = 0

    @abstractmethod
    async def _pass(self, *, wait: bool) -> bool:
        """One transaction; True if more may wait. ``wait``: for another node's run."""

    @abstractmethod
    async def pause(self) -> None:
        """Stop indexing, once the pass under way (if any) has committed."""

    @abstractmethod
    async def _release(self) -> None:
        """What the indexer holds beyond its task, let go at ``close``."""

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
        await self._release()

    def wake(self, conversations: Iterable[str]) -> None:
        """After a commit: these conversations have rows past their watermark."""
        with self._named_lock:
            self._named.update(conversations)
        if self._wakeup is not None:
            self._wakeup.set()

    def resume(self) -> None:
        self._paused = False
        self._full_pass = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def catch_up(self) -> None:
        """Index everything committed so far (tests, the benchmark)."""
        self._full_pass = True
        while await self._pass(wait=True):
            pass

    # -- for the passes ---------------------------------------------------------

    def _take(self) -> tuple[set[str] | None, bool]:
        """What this pass looks at: the named conversations, or None for all of them."""
        with self._named_lock:
            named, self._named = self._named, set()
        full, self._full_pass = self._full_pass, False
        return (None if full else named), full

    def _give_back(self, named: set[str] | None, full: bool) -> None:
        """A pass that failed: what it took is looked at again."""
        if named:
            with self._named_lock:
                self._named.update(named)
        self._full_pass = self._full_pass or full

    def _look_again(self, conversation: str) -> None:
        """A conversation this pass did not finish."""
        with self._named_lock:
            self._named.add(conversation)

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._closing:
            try:
                await asyncio.wait_for(self._wakeup.wait(), FULL_PASS_SECONDS)
            except TimeoutError:
                self._full_pass = True
            self._wakeup.clear()
            if self._paused or self._closing:
                continue
            try:
                # Several passes while the writer keeps naming conversations.
                while await self._pass(wait=False):
                    if self._paused or self._closing:
                        break
            except self.retried as exc:
                log.warning("indexing for search failed (%s); retrying from the watermarks", exc)
                self._full_pass = True
                await asyncio.sleep(1.0)
                # Retry after the rest below, not at the next commit or the
                # full pass 30 s on: an idle server would leave it behind.
                self._wakeup.set()
            # Rest (INDEX_INTERVAL says why); a close ends the rest at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), INDEX_INTERVAL)
