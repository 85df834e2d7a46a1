"""Per-conversation seq order for message events that come from several nodes.

Two nodes may commit seq 5 and 6 of one group a moment apart, and Redis
may hand this node 6 first. The orderer holds a later seq until the gap
fills; if it does not fill within ``gap_wait`` (an event lost between
nodes), it fetches the missing messages from the store and delivers them
first. So every connection on this node gets a conversation's messages in
seq order, with none missing, whichever node committed them.

The first event of a conversation this node has not seen lately is held
for ``first_hold`` to let an earlier seq that is still in flight overtake
it. A seq below the first one this node delivered (it was in flight longer
than the hold) is still delivered, late, rather than lost.

Each event keeps the moment it reached this node, so a held event goes
only to connections that were open then: a client that connects during the
hold already finds the message in history and must not get it twice. That
moment never goes back along a conversation's seqs: a seq that reached this
node *before* an earlier seq counts as arriving with it, so a connection
that got seq 5 live also gets seq 6 live, even when 6 came first (else its
live stream skipped 6, caught up from history but a gap on the line; the
two-node soak found it as ``live_gaps``).

Events reach this node only while it holds one of their recipients (the
broker routes them), so a gap is not always a loss. It is one only when a
recipient's connection here has been open since the last seq delivered
(``steady``): this node was sent every seq since, and the missing ones are
fetched. Otherwise this node was sent none of them (nobody here to tell),
or sent them to connections opened since, whose clients catch up from
history after ``auth_ok``; the orderer starts afresh, as for a
conversation it has not seen lately (the first hold, not the gap's wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tidings.events import MessageCreated
from tidings.ids import UserId

log = logging.getLogger(__name__)

# deliver(event, arrived): ``arrived`` is the monotonic time the event reached this node.
Deliver = Callable[[MessageCreated, float], None]
# fetch(conversation, after, before, recipients): the missing messages as events, each
# addressed to those of ``recipients`` who were members when it was sent.
Fetch = Callable[[str, int, int, tuple[UserId, ...]], Awaitable[list[MessageCreated]]]
# steady(recipients, since): whether one of these users has a connection here that
# has been open since the monotonic time ``since``.
Steady = Callable[[tuple[UserId, ...], float], bool]


class _Track:
    __slots__ = ("base", "next", "pending", "timer", "touched", "delivered_arrival", "after")

    def __init__(self) -> None:
        self.base: int | None = None  # the first seq delivered here
        self.next: int | None = None  # the seq expected next
        self.pending: dict[int, tuple[MessageCreated, float]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.touched = time.monotonic()
        # The latest arrival among the events delivered so far (see the module text).
        self.delivered_arrival = 0.0
        # Other events of the conversation, each waiting for the held seqs up to its own.
        self.after: list[tuple[int, Callable[[], None]]] = []


class SeqOrderer:
    def __init__(
        self,
        deliver: Deliver,
        fetch: Fetch,
        steady: Steady,
        *,
        first_hold: float = 0.03,
        gap_wait: float = 0.25,
        idle_forget: float = 300.0,
    ) -> None:
        self._deliver = deliver
        self._fetch = fetch
        self._steady = steady
        self._first_hold = first_hold
        self._gap_wait = gap_wait
        self._idle_forget = idle_forget
        self._tracks: dict[str, _Track] = {}
        self._last_sweep = time.monotonic()

    def offer(self, event: MessageCreated) -> None:
        conversation, seq = event.message.conversation, event.message.seq
        track = self._tracks.get(conversation)
        now = time.monotonic()
        if track is None:
            track = self._tracks[conversation] = _Track()
            track.pending[seq] = (event, now)
            self._arm(conversation, track, self._first_hold)
            self._sweep(now)
            return
        track.touched = now
        if track.next is None:  # still in the first hold
            track.pending[seq] = (event, now)
            return
        if seq < track.next:
            if track.base is not None and seq < track.base:
                self._deliver(event, now)  # never delivered here: late beats lost
            return  # a repeat
        if (
            seq > track.next
            and not track.pending
            and not self._steady(event.recipients, track.delivered_arrival)
        ):
            # A gap with nobody here since the last delivery: most likely the
            # seqs between went to no node of ours. Start afresh, as for a
            # conversation not seen lately (a short hold, not the gap's wait).
            track.next = track.base = None
            track.pending[seq] = (event, now)
            self._arm(conversation, track, self._first_hold)
            return
        track.pending[seq] = (event, now)
        self._flush(conversation, track)

    def after(self, conversation: str, run: Callable[[], None]) -> None:
        """``run()`` once every message of ``conversation`` held here now has gone
        out (at once when none is held): another event about the conversation
        (a member removed, a read moved) never overtakes a message that came
        before it, say the notice of a change its user is still there to see."""
        track = self._tracks.get(conversation)
        if track is None or not track.pending:
            run()
            return
        track.after.append((max(track.pending), run))

    def _flush(self, conversation: str, track: _Track) -> None:
        """Deliver the run of consecutive seqs from ``next``; wait for the rest."""
        assert track.next is not None
        while track.next in track.pending:
            event, arrived = track.pending.pop(track.next)
            track.delivered_arrival = max(track.delivered_arrival, arrived)
            self._deliver(event, track.delivered_arrival)
            track.next += 1
        while track.after and track.after[0][0] < track.next:
            track.after.pop(0)[1]()
        if track.pending and track.timer is None:
            self._arm(conversation, track, self._gap_wait)
        elif not track.pending and track.timer is not None:
            track.timer.cancel()
            track.timer = None

    def _arm(self, conversation: str, track: _Track, delay: float) -> None:
        loop = asyncio.get_running_loop()
        track.timer = loop.call_later(delay, self._expire, conversation)

    def _expire(self, conversation: str) -> None:
        track = self._tracks.get(conversation)
        if track is None:
            return
        track.timer = None
        if track.next is None:
            # End of the first hold: start from the lowest seq seen.
            track.next = track.base = min(track.pending)
            self._flush(conversation, track)
            return
        if not track.pending:
            return
        first_waiting = min(track.pending)
        recipients = track.pending[first_waiting][0].recipients
        if self._steady(recipients, track.delivered_arrival):
            asyncio.get_running_loop().create_task(self._fill_gap(conversation, track))
        else:
            # Not a loss (see the module text): start again from what is here;
            # a straggler below it is delivered late, as after the first hold.
            track.next = track.base = first_waiting
            self._flush(conversation, track)

    async def _fill_gap(self, conversation: str, track: _Track) -> None:
        assert track.next is not None
        first_waiting = min(track.pending)
        template, arrived = track.pending[first_waiting]
        try:
            missing = await self._fetch(
                conversation, track.next - 1, first_waiting, template.recipients
            )
        except Exception:
            log.exception(
                "could not fetch seqs %s..%s of %s", track.next, first_waiting, conversation
            )
            missing = []
        for found in missing:
            seq = found.message.seq
            if track.next is not None and seq >= track.next and seq not in track.pending:
                track.pending[seq] = (found, arrived)
        if track.next is not None and track.next not in track.pending and track.pending:
            # Still a hole the store cannot fill (it should not happen): skip it.
            log.warning(
                "skipping missing seqs %s..%s of %s",
                track.next,
                min(track.pending) - 1,
                conversation,
            )
            track.next = min(track.pending)
        self._flush(conversation, track)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self._idle_forget / 10:
            return
        self._last_sweep = now
        stale = [
            c
            for c, t in self._tracks.items()
            if not t.pending and t.timer is None and now - t.touched > self._idle_forget
        ]
        for conversation in stale:
            del self._tracks[conversation]
