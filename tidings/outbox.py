"""What the webhook and Web Push senders share: a bounded queue worked by a
few tasks, and a retry loop with backoff that honours ``Retry-After``.

Neither is on the message path. ``offer`` only appends, dropping (and
counting) the oldest item when the queue is full, so a receiver that hangs
or fails costs deliveries, never chat latency. Each sender keeps its own
HTTP session (the push one refuses private addresses) and its own reading
of an answer (which statuses are final); this module only schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The longest backoff between two attempts (a ``Retry-After`` may ask for longer).
MAX_DELAY = 30.0


class WorkQueue(Generic[T]):
    """Items handled by ``workers`` tasks in offer order; at most ``max_queue`` wait.

    ``handle`` should not raise; if it does, the item is logged and dropped
    and the worker goes on.
    """

    def __init__(
        self,
        handle: Callable[[T], Awaitable[None]],
        *,
        name: str,
        workers: int,
        max_queue: int,
        on_drop: Callable[[], None],
    ) -> None:
        self._handle = handle
        self._name = name
        self._workers = workers
        self._max_queue = max_queue
        self._on_drop = on_drop
        self._queue: deque[T] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def offer(self, item: T) -> None:
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self._on_drop()
        self._queue.append(item)
        self._empty.clear()
        self._ready.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self._name}-{n}")
            for n in range(self._workers)
        ]

    async def close(self, *, drain_for: float = 0.0) -> None:
        """Give the backlog up to ``drain_for`` seconds, then stop the workers."""
        if drain_for > 0 and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), drain_for)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _work(self) -> None:
        while True:
            if not self._queue:
                self._empty.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._queue.popleft()
            try:
                await self._handle(item)
            except Exception:
                log.exception("%s: a delivery failed unexpectedly", self._name)


@dataclass(frozen=True, slots=True)
class Retry:
    """An attempt that may work later: why it failed, and the receiver's
    ``Retry-After`` in seconds if it gave one."""

    reason: str
    after: float | None = None


async def with_retries(
    attempt: Callable[[], Awaitable[Retry | None]],
    *,
    retry_for: float,
    first_delay: float = 0.5,
) -> Retry | None:
    """Run ``attempt`` until it returns None (done, or failed for good), or
    until the next try would start after ``retry_for`` seconds: then the
    last ``Retry``. Waits double from ``first_delay`` up to ``MAX_DELAY``,
    with jitter (so many senders do not retry in step); a ``Retry-After``
    replaces the wait, and one that points past the deadline ends the
    retries at once."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + retry_for
    delay = first_delay
    while True:
        retry = await attempt()
        if retry is None:
            return None
        # The receiver's Retry-After is obeyed as given (sooner would be refused
        # again); only our own backoff is capped.
        wait = delay * (0.5 + random.random()) if retry.after is None else retry.after
        if loop.time() + wait > give_up:
            return retry
        await asyncio.sleep(wait)
        delay = min(delay * 2, MAX_DELAY)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3), delay-seconds or an HTTP date, as
    seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; one without a zone is malformed
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


__all__ = ["MAX_DELAY", "Retry", "WorkQueue", "retry_after_seconds", "with_retries"]
