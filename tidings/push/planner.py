"""After a commit: who gets a push, collapsed per user and conversation.

``offer`` runs in the writer's publish, so it only appends to a bounded
queue (full: the oldest offer is dropped and counted; the writer never
waits). One task takes what has gathered, as the writer does: one
subscriptions query and one presence query for the whole batch, so the
cost per commit stays flat under load and is paid only for recipients
without a connection. A burst in one conversation goes through the
``Collapser``, and with many nodes a push also claims its window for the
whole cluster (push/windows.py); when a push is due, the user's entry and ``total_unread``
are read then, so the count is the chat list's at or after that commit
(the latest, which is what a badge should show).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from tidings.events import Event, MessageCreated
from tidings.ids import ConversationId, UserId
from tidings.metrics import Metrics
from tidings.models import Conversation
from tidings.push.decide import Collapser, Due, mentions, payload
from tidings.push.delivery import Delivery, Push, topic_of
from tidings.store import PushRecord, PushSubscription

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode

# Open sockets per user on every node (the cluster-wide presence).
Connections = Callable[[Sequence[UserId]], Awaitable[dict[UserId, int]]]
# The user's entry for a conversation (None: no longer a member) and their total_unread.
EntryAndTotal = Callable[[UserId, ConversationId], Awaitable[tuple[Conversation | None, int]]]
# Where the same decision goes as a signed ``push`` webhook.
PushHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class WindowHolder:
    """Another node's push in this window: the seq it carried, and when the window ends."""

    seq: int
    seconds_left: float


class SharedWindows(Protocol):
    """The cluster's collapse windows (push/windows.py)."""

    async def claim(
        self, keys: Sequence[tuple[UserId, str, int]], window: float
    ) -> list[WindowHolder | None]:
        """Per (user, conversation, seq of the push): None if this node won the
        window and may push now, else who holds it."""
        ...

    async def close(self) -> None: ...


_BATCH = 1000


class PushPlanner:
    def __init__(
        self,
        records: PushRecord,
        delivery: Delivery,
        connections: Connections,
        entry_and_total: EntryAndTotal,
        metrics: Metrics,
        *,
        collapse_seconds: float,
        hook: PushHook | None = None,
        windows: SharedWindows | None = None,
        max_queue: int = 10_000,
    ) -> None:
        self._records = records
        self._delivery = delivery
        self._connections = connections
        self._entry_and_total = entry_and_total
        self._metrics = metrics
        self._hook = hook
        self._windows = windows
        self._collapser = Collapser(collapse_seconds)
        self._offers: deque[MessageCreated] = deque()
        self._max_queue = max_queue
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def offer(self, event: Event) -> None:
        """Called after each commit, in the writer's publish: O(1), never waits."""
        if not isinstance(event, MessageCreated) or not event.message.countable:
            return
        if len(event.recipients) < 2:  # only the sender: nobody to tell
            return
        if len(self._offers) >= self._max_queue:
            self._offers.popleft()
            self._metrics.push_dropped.labels("planner").inc()
        self._offers.append(event)
        self._ready.set()

    @property
    def backlog(self) -> int:
        return len(self._offers)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="push-planner")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            closes = self._collapser.next_close()
            if not self._offers:
                self._ready.clear()
                wait = None if closes is None else max(0.0, closes - loop.time())
                try:
                    await asyncio.wait_for(self._ready.wait(), wait)
                except TimeoutError:
                    pass
            try:
                await self._round(loop.time())
            except Exception:
                # Storage or Redis down: these pushes are lost, the next ones are tried.
                log.exception("planning pushes failed")

    async def _round(self, now: float) -> None:
        batch = [self._offers.popleft() for _ in range(min(_BATCH, len(self._offers)))]
        due = await self._notes(batch, now) if batch else []
        trailing = self._collapser.expire(now)
        if trailing:
            # The window's last state: still only for users without a connection now.
            online = await self._connections(sorted({d.user for d in trailing}))
            due += [d for d in trailing if not online.get(d.user)]
        if not due:
            return
        ready = [(item, found) for item in due if (found := await self._payload(item)) is not None]
        if ready and self._windows is not None:
            ready = await self._claimed(ready, now)
        if not ready:
            return
        subscribed = await self._records.subscriptions(sorted({item.user for item, _ in ready}))
        for item, found in ready:
            self._send(item, found, subscribed.get(item.user, []))

    async def _claimed(
        self, ready: list[tuple[Due, dict[str, Any]]], now: float
    ) -> list[tuple[Due, dict[str, Any]]]:
        """The pushes whose window this node won in the cluster. Of the others,
        one older than the push that won its window is dropped (that push
        said more); a newer one waits for the window to end."""
        assert self._windows is not None
        keys = [(item.user, item.message.conversation, item.message.seq) for item, _ in ready]
        holders = await self._windows.claim(keys, self._collapser.window)
        claimed = []
        for (item, found), holder in zip(ready, holders, strict=True):
            if holder is None:
                claimed.append((item, found))
            elif holder.seq < item.message.seq:
                self._collapser.defer(item, now + holder.seconds_left)
            else:
                self._metrics.push_collapsed.inc()
        return claimed

    async def _notes(self, batch: list[MessageCreated], now: float) -> list[Due]:
        """The pushes due now for a batch of commits: one query of each kind for all."""
        wanted = {u for e in batch for u in e.recipients if u != e.message.sender}
        if self._hook is None:
            # Without a webhook only subscribed users can be told: ask SQL
            # first, so a large group with few subscribers costs little.
            wanted = set(await self._records.subscriptions(sorted(wanted)))
        if not wanted:
            return []
        online = await self._connections(sorted(wanted))
        due: list[Due] = []
        for event in batch:
            message = event.message
            for user in event.recipients:
                if user not in wanted or user == message.sender or online.get(user):
                    continue
                ready = self._collapser.note(Due(user, message, mentions(message, user)), now)
                if ready is not None:
                    due.append(ready)
        return due

    async def _payload(self, due: Due) -> dict[str, Any] | None:
        """What the push says, read now; None when it says nothing (muted, or gone)."""
        entry, total = await self._entry_and_total(
            due.user, ConversationId(due.message.conversation)
        )
        if entry is None:
            return None
        return payload(due.user, entry, due.message, total, mentioned=due.mentioned)

    def _send(self, due: Due, found: dict[str, Any], subscriptions: list[PushSubscription]) -> None:
        if self._hook is not None:
            # "type" as PROTOCOL-v2 §8 names it; "event" as every other webhook body has it.
            self._hook({"event": "push", "type": "push", "user_id": due.user, **found})
        if not subscriptions:
            return
        data = _encode(found)
        topic = topic_of(due.message.conversation)
        for subscription in subscriptions:
            self._delivery.offer(Push(subscription, topic, data))
