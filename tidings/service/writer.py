"""Group commit: the sends and reads that arrive together share one transaction.

One task drains the queue: it takes everything waiting (up to a cap), has
the store commit it in one transaction, and only then, in commit order and
without awaiting anything in between, acks each send to its connection and
publishes its events. So durability costs one fsync per batch instead of
one per message, an ack always follows its commit, and every connection on
this node sees a conversation's messages in seq order. The batch size
adapts to load by itself: while one commit is in flight, the next batch
gathers. Two batches overlap: while one is acked and published, the next
is already with the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

from tidings.errors import TidingsError, unavailable
from tidings.metrics import Metrics
from tidings.store import (
    GroupChange,
    GroupRequest,
    QueuedOutcome,
    QueuedRequest,
    ReadRequest,
    ReadResult,
    SendRequest,
    Store,
    StoredMessage,
    WriteRequest,
)

log = logging.getLogger(__name__)

# The three hooks around a commit, in the order they run:
# 1. Awaited once per batch after its commit, before any ack: the chat-list copy
#    (Redis) that must show the batch to anyone who got an ack. It must not raise.
MirrorBatch = Callable[[Sequence[QueuedRequest], Sequence[QueuedOutcome]], Awaitable[None]]
# 2. Called for each write, synchronously and in commit order: publish its events.
PublishOutcome = Callable[["PendingWrite", QueuedOutcome], None]
# 3. A send's own callback with its stored message (the sender's ack), right
#    after 2; or, when the write fails (refused, or storage down), its OnFailed.
OnStored = Callable[[StoredMessage], None]
OnFailed = Callable[[TidingsError], None]


@dataclass(slots=True)
class PendingWrite:
    request: QueuedRequest
    # None when the submitter takes its outcome through the callbacks only.
    future: asyncio.Future[QueuedOutcome] | None
    on_stored: OnStored | None = None
    origin: int | None = None
    queued_at: float = 0.0
    on_failed: OnFailed | None = None


# A batch handed to the store (its writes, their requests), and its commit running there.
_InFlight = tuple[list[PendingWrite], list[QueuedRequest], "asyncio.Task[list[QueuedOutcome]]"]


class GroupCommitWriter:
    """The one writer of chat state on this node. Start it, then ``submit``."""

    def __init__(
        self,
        store: Store,
        publish: PublishOutcome,
        *,
        separator_gap_ms: int,
        max_batch: int = 1000,
        max_pending: int = 100_000,
        metrics: Metrics | None = None,
        mirror: MirrorBatch | None = None,
    ) -> None:
        self._metrics = metrics
        self._mirror = mirror
        self._store = store
        self._publish = publish
        self._gap_ms = separator_gap_ms
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: deque[PendingWrite] = deque()
        self._groups_queued = 0  # group changes in the queue (each commits alone)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._per_second: deque[list[int]] = deque(maxlen=16)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def close(self) -> None:
        """Commit what is queued, then stop; later submits answer ``unavailable``."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    def submit(
        self, request: QueuedRequest, *, origin: int | None = None
    ) -> asyncio.Future[QueuedOutcome]:
        """Queue a write; the future resolves with its outcome after the commit."""
        self._check_room()
        future: asyncio.Future[QueuedOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(PendingWrite(request, future, None, origin, time.monotonic()))
        if isinstance(request, GroupRequest):
            self._groups_queued += 1
        self._wakeup.set()
        return future

    async def change_group(self, request: GroupRequest) -> GroupChange:
        """Commit a group change in queue order; its notice's events keep their place."""
        outcome = await self.submit(request)
        assert isinstance(outcome, GroupChange)
        return outcome

    def enqueue(
        self,
        request: WriteRequest,
        *,
        on_stored: OnStored,
        on_failed: OnFailed,
        origin: int | None = None,
    ) -> None:
        """Queue a write whose outcome only the callbacks need: no future, no extra callback."""
        self._check_room()
        self._queue.append(
            PendingWrite(request, None, on_stored, origin, time.monotonic(), on_failed)
        )
        self._wakeup.set()

    def _check_room(self) -> None:
        if self._closing:
            raise unavailable("the server is shutting down; retry on another connection")
        if len(self._queue) >= self._max_pending:
            raise unavailable("the server is overloaded; retry with the same client_msg_id")

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _count_sends(self, batch: list[PendingWrite]) -> None:
        now = time.monotonic()
        second = int(now)
        sends = sum(1 for p in batch if isinstance(p.request, SendRequest))
        if self._metrics is not None:
            self._metrics.batches.inc()
            self._metrics.messages.inc(sends)
            observe = self._metrics.ack_latency.observe
            for pending in batch:
                if isinstance(pending.request, SendRequest):
                    observe(now - pending.queued_at)
        if self._per_second and self._per_second[-1][0] == second:
            self._per_second[-1][1] += sends
        else:
            self._per_second.append([second, sends])

    def messages_per_second(self, window: int = 5) -> float:
        """Messages committed per second over the last ``window`` whole seconds."""
        now = int(time.monotonic())
        total = sum(n for second, n in self._per_second if now - window <= second < now)
        return total / window

    async def _run(self) -> None:
        # While one batch is acked and published, the next one is already
        # with the database: its statements, its commit and fsync overlap
        # this node's work on the last batch (the results are still taken
        # in commit order, so acks and events keep that order).
        in_flight: _InFlight | None = None
        while True:
            if in_flight is None:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                in_flight = self._start()
            batch, requests, commit = in_flight
            try:
                outcomes: list[QueuedOutcome] | TidingsError = await commit
            except TidingsError as error:
                outcomes = error
            except Exception:
                log.exception("a write batch failed; its %d writes answer unavailable", len(batch))
                outcomes = unavailable()
            in_flight = self._start() if self._queue else None
            await self._finish(batch, requests, outcomes)

    def _start(self) -> _InFlight:
        """Take the next batch off the queue and hand it to the store.

        A group change is a batch of its own (its own transaction, under the
        group's lock), cut from the queue where it stands: what was queued
        before it commits before it, what came after, after.
        """
        queue, loop = self._queue, asyncio.get_running_loop()
        commit: asyncio.Task[list[QueuedOutcome]]
        if self._groups_queued and isinstance(queue[0].request, GroupRequest):
            self._groups_queued -= 1
            batch = [queue.popleft()]
            commit = loop.create_task(self._commit_group(batch[0].request), name="group-change")
            return batch, [batch[0].request], commit
        if self._groups_queued:
            batch = []
            while queue and len(batch) < self._max_batch:
                if isinstance(queue[0].request, GroupRequest):
                    break
                batch.append(queue.popleft())
        else:
            batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
        requests = [p.request for p in batch]
        # No group change in here (cut above): the store's batch as it is, no wrapper.
        stored = self._store.commit_batch(cast("list[WriteRequest]", requests), self._gap_ms)
        commit = loop.create_task(
            cast("Coroutine[Any, Any, list[QueuedOutcome]]", stored), name="group-commit-batch"
        )
        return batch, requests, commit

    async def _commit_group(self, request: QueuedRequest) -> list[QueuedOutcome]:
        assert isinstance(request, GroupRequest)
        return [await self._store.change_group(request, self._gap_ms)]

    async def _finish(
        self,
        batch: list[PendingWrite],
        requests: list[QueuedRequest],
        outcomes: list[QueuedOutcome] | TidingsError,
    ) -> None:
        if isinstance(outcomes, TidingsError):
            for pending in batch:
                _settle_error(pending, outcomes)
            return
        self._count_sends(batch)
        if self._mirror is not None:
            try:
                await self._mirror(requests, outcomes)
            except Exception:
                log.exception("a chat-list update after a commit failed")
        # Committed: from here on, nothing awaits until every ack and event of
        # this batch is queued, so they leave in commit order.
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, TidingsError):
                _settle_error(pending, outcome)
                continue
            try:
                if pending.on_stored is not None and isinstance(outcome, StoredMessage):
                    pending.on_stored(outcome)
                self._publish(pending, outcome)
            except Exception:
                log.exception("publishing a committed write failed")
            future = pending.future
            if future is not None and not future.done():
                future.set_result(outcome)


def _settle_error(pending: PendingWrite, error: TidingsError) -> None:
    if pending.on_failed is not None:
        try:
            pending.on_failed(error)
        except Exception:
            log.exception("answering a failed write failed")
    future = pending.future
    if future is not None and not future.done():
        future.set_exception(error)
        # Nobody may be waiting any more (the client left): retrieve it so
        # asyncio does not log "exception was never retrieved".
        future.exception()


__all__ = ["GroupCommitWriter", "PendingWrite", "ReadRequest", "ReadResult"]
