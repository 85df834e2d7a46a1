"""An event loop of its own, in a thread: PostgreSQL's write batches run there.

On the server's loop a batch's statements wait, between one answer and the
next statement, behind everything else that loop has ready: the acks and
deliveries of the batch before, hundreds of sockets' frames. Measured at an
open 10,000 msgs/s (docs/benchmarks.md, stop 38), a batch of ~600 sends took
50-65 ms there and ~15 ms alone. On a loop of its own the batch's connection
is answered as soon as its bytes arrive (and the thread holds the GIL); the
server's loop only waits for the batch's outcome, as it does for SQLite's
batch thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """``await loop_thread.run(coro)`` runs ``coro`` on the thread's loop."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result; cancelling the caller cancels the coroutine."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def stop(self) -> None:
        """Stop the loop once what runs on it returned (call ``run`` no more)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
