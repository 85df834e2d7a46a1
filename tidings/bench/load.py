"""The work of one load process: open its connections, send, count, report.

Runs in a child process on its own uvloop. Every message carries its send
time (CLOCK_MONOTONIC, shared by all processes of the machine) in its
``client_msg_id``, so any receiver, in any process, measures the latency
from send to delivery without a shared table. Each ``client_msg_id`` is
unique to the run, so receivers detect duplicates by it, and the parent
detects losses by comparing acked sends with unique deliveries.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable

from tidings.bench.links import Link, open_link
from tidings.bench.spec import Member, WorkerResult, WorkerSpec

OPEN_LOOP_TICK = 0.001
CONNECT_ATTEMPTS = 4
QUIET_SECONDS = 1.0
# Open loop: at most this many sends in flight per sender before we skip (and count) ticks.
OPEN_LOOP_CAP = 10_000


class Load:
    """The counters and callbacks of one process's connections during one run."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.result = WorkerResult()
        self.latencies = array("I")
        self.running = False
        self.window_start = 0
        self.window_end = 0
        self.links: list[Link] = []
        self.last_delivery_ns = 0
        self._senders: list[_Sender] = []
        self._prefix = f"{spec.nonce}."

    async def connect(self) -> None:
        spec = self.spec
        gate = asyncio.Semaphore(spec.connect_concurrency)

        async def one(member: Member) -> Link:
            async with gate:
                for attempt in range(CONNECT_ATTEMPTS):  # bounded: a reset under a burst is retried
                    try:
                        return await open_link(
                            spec.dialect,
                            spec.host,
                            spec.port,
                            member.user_id,
                            member.token,
                            list(member.rooms),
                            local_host=spec.local_host,
                        )
                    except (ConnectionError, OSError):
                        if attempt == CONNECT_ATTEMPTS - 1:
                            raise
                        self.result.reconnects += 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                raise AssertionError("unreachable")

        started = time.monotonic()
        self.links = list(await asyncio.gather(*(one(m) for m in spec.members)))
        self.result.connect_seconds = time.monotonic() - started
        self.result.connections = len(self.links)
        for member, link in zip(spec.members, self.links, strict=True):
            self._wire(member, link)
            link.on_typing = self._typing_heard

    def _wire(self, member: Member, link: Link) -> None:
        if member.sends_to is not None:
            sender = _Sender(self, link, member.sends_to, member.sends_to in member.listens)
            self._senders.append(sender)
            link.on_ack = sender.acked
        if member.listens:
            heard: set[str] = set()
            for target in member.listens:
                self.result.listeners_by_target[target] = (
                    self.result.listeners_by_target.get(target, 0) + 1
                )
            link.on_message = self._receiver(heard, member.listens[0])

    def _typing_heard(self) -> None:
        if self.window_start <= time.monotonic_ns() <= self.window_end:
            self.result.typing_heard += 1

    async def _typing_loop(self, start_at: float, stop_at: float) -> None:
        """Typing frames at ``typing_rate``/s, round robin over the listening members."""
        typists = [
            (link, member.listens[0])
            for member, link in zip(self.spec.members, self.links, strict=True)
            if member.listens
        ]
        if not typists:
            return
        began = time.monotonic()
        done = 0
        measured_from = start_at + self.spec.warmup
        while (now := time.monotonic()) < stop_at:
            due = int((now - began) * self.spec.typing_rate) - done
            for _ in range(max(due, 0)):
                link, target = typists[done % len(typists)]
                link.typing(target)
                done += 1
                if now >= measured_from:
                    self.result.typing_sent += 1
            await asyncio.sleep(OPEN_LOOP_TICK)

    def _receiver(self, heard: set[str], target: str) -> Callable[[str], None]:
        result = self.result
        latencies = self.latencies
        prefix = self._prefix
        unique = result.unique_by_target

        def on_message(cmid: str) -> None:
            if not cmid.startswith(prefix):
                return  # a straggler of an earlier run
            now = time.monotonic_ns()
            self.last_delivery_ns = now
            result.received += 1
            if cmid in heard:
                result.duplicated += 1
                return
            heard.add(cmid)
            unique[target] = unique.get(target, 0) + 1
            sent_at = int(cmid.split(".", 2)[1])
            if self.window_start <= now <= self.window_end:
                result.received_in_window += 1
            if self.window_start <= sent_at <= self.window_end:
                latencies.append(min((now - sent_at) // 1000, 0xFFFFFFFF))

        return on_message

    async def run(self, start_at: float) -> WorkerResult:
        """Send from ``start_at`` (a time.monotonic() value) for warmup + duration, then drain."""
        spec = self.spec
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        self.window_start = int((start_at + spec.warmup) * 1e9)
        self.window_end = int((start_at + spec.warmup + spec.duration) * 1e9)
        self.result.window_seconds = spec.duration
        # This process's CPU over the measured window: is the load the bottleneck?
        loop = asyncio.get_running_loop()
        cpu: list[float] = []
        for at in (start_at + spec.warmup, start_at + spec.warmup + spec.duration):
            loop.call_later(
                max(0.0, at - time.monotonic()), lambda: cpu.append(time.process_time())
            )
        self.running = True
        stop_at = start_at + spec.warmup + spec.duration
        typing = None
        if spec.typing_rate > 0:
            typing = asyncio.ensure_future(self._typing_loop(start_at, stop_at))
        if self._senders and spec.rate > 0:
            await self._open_loop(stop_at)
        else:
            for sender in self._senders:
                sender.fill(spec.window)
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        if typing is not None:
            await typing
        self.running = False
        await self._drain()
        if len(cpu) == 2:
            self.result.cpu_seconds = cpu[1] - cpu[0]
        return self._report()

    async def _open_loop(self, stop_at: float) -> None:
        senders = self._senders
        began = time.monotonic()
        done = 0
        turn = 0
        while (now := time.monotonic()) < stop_at:
            due = int((now - began) * self.spec.rate) - done
            for _ in range(due):
                sender = senders[turn % len(senders)]
                turn += 1
                if sender.in_flight < OPEN_LOOP_CAP:
                    sender.send_one()
                else:
                    self.result.behind += 1
            done += max(due, 0)
            await asyncio.sleep(OPEN_LOOP_TICK)

    async def _drain(self) -> None:
        """Wait until every send is answered and deliveries have stopped coming.

        A fan-out can still be writing its last frames well after the acks
        (20,000 frames for 40 group messages in flight): a receiver is done
        when nothing has arrived for ``QUIET_SECONDS``, or at the deadline.
        """
        deadline = time.monotonic() + self.spec.drain
        while time.monotonic() < deadline:  # bounded by time; polls cheap counters
            answered = not any(s.in_flight for s in self._senders)
            quiet = time.monotonic_ns() - self.last_delivery_ns > QUIET_SECONDS * 1e9
            if answered and quiet:
                break
            await asyncio.sleep(0.05)

    def _report(self) -> WorkerResult:
        result = self.result
        for sender in self._senders:
            result.sent += sender.sent
            result.acked += sender.acked_count
            result.errors += sender.errors
            result.acked_by_target[sender.target] = (
                result.acked_by_target.get(sender.target, 0) + sender.acked_count
            )
            if sender.hears_own_target:
                # A member sending to a group it listens to never hears itself.
                result.own_acked_heard += sender.acked_count
        result.latencies_us = self.latencies.tobytes()
        return result

    def close(self) -> None:
        for link in self.links:
            link.close()


class _Sender:
    """One sending connection: numbered sends, refilled on each ack in a closed loop."""

    __slots__ = (
        "load",
        "link",
        "target",
        "hears_own_target",
        "sent",
        "acked_count",
        "errors",
        "in_flight",
        "_body",
    )

    def __init__(self, load: Load, link: Link, target: str, hears_own_target: bool) -> None:
        self.load = load
        self.hears_own_target = hears_own_target
        self.link = link
        self.target = target
        self.sent = 0
        self.acked_count = 0
        self.errors = 0
        self.in_flight = 0
        self._body = load.spec.body

    def send_one(self) -> None:
        self.sent += 1
        self.in_flight += 1
        cmid = f"{self.load._prefix}{time.monotonic_ns()}.{self.sent}"
        spec = self.load.spec
        link = self.link
        # A recall notice is an entry like a message: acked, then delivered to
        # every member with this cmid, so the loss and latency counts hold.
        if spec.recall_every and self.sent % spec.recall_every == 0:
            seq = link.recallable
            if seq:
                link.recallable = 0  # never recalled twice: a repeat would not be delivered
                link.recall(self.target, seq, self.sent, cmid)
                return
        if spec.mention_every and self.sent % spec.mention_every == 0:
            link.send_mentioning(self.target, self._body, self.sent, cmid, spec.mention_ids)
            return
        link.send(self.target, self._body, self.sent, cmid)

    def fill(self, count: int) -> None:
        for _ in range(count):
            self.send_one()

    def acked(self, ref: int, ok: bool) -> None:
        self.in_flight -= 1
        if ok:
            self.acked_count += 1
        else:
            self.errors += 1
        if self.load.running and self.load.spec.rate <= 0:
            self.send_one()
