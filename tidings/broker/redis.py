"""The Redis broker: events go only to the nodes that hold their recipients.

``publish`` hands an event to this node's subscribers at once, then queues
it for the other nodes; one task sends the queue in order. Everything
queued meanwhile is one batch: one script call finds the nodes that hold
its recipients (``route.py``), then one PUBLISH per such node carries
that node's events, in order, on its own channel; nodes that hold none get
nothing. What could not be sent is kept for the next try, so a short Redis
hiccup delays events instead of losing them. Each message starts with the
sending node's id, so a node skips its own (on the shared channel) without
decoding them. Another task listens on this node's channel and the shared
one, and tells its watchers when it stops hearing the other nodes (the hub
then closes its sockets so that clients reconnect and catch up, rather
than silently miss events) and when it hears them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import msgspec
from redis.exceptions import RedisClusterException, RedisError

from tidings.broker import Subscriber, Watcher
from tidings.broker.route import (
    PUBLISH_EACH,
    ROUTE,
    batch_users,
    channel,
    route_arguments,
    route_keys,
    shared_channel,
    split,
)
from tidings.events import Event
from tidings.nodes import NODE_ID_LENGTH, NodeId
from tidings.redis_target import RedisTarget

log = logging.getLogger(__name__)

# A Redis that is down, hung or failing over (a Cluster client's own errors
# are not RedisErrors).
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)

_PUBLISH_BATCH = 512
_MAX_BACKOFF = 5.0
# Seconds a quiet subscription waits before pinging Redis; three without an
# answer count as a lost connection.
_LISTEN_WAIT = 3.0


class RedisBroker:
    def __init__(
        self,
        target: RedisTarget,
        *,
        node: NodeId,
        max_backlog: int = 100_000,
        connect_timeout: float = 5.0,
        warm_up: float = 10.0,
    ) -> None:
        """``warm_up``: seconds every event goes on the shared channel after Redis
        lost the routing table; longer than presence's lease (``node_ttl / 3``)."""
        self._target = target
        prefix = self._prefix = target.shared
        self._node = node
        self._shared = shared_channel(prefix)
        self._own = channel(prefix, node)
        self._route_keys = route_keys(prefix)
        self._warm_up = warm_up
        self._redis = target.connect(
            socket_connect_timeout=connect_timeout, health_check_interval=10
        )
        self._route = self._redis.register_script(ROUTE)
        self._publish_each = self._redis.register_script(PUBLISH_EACH)
        self._subscribers: list[Subscriber] = []
        self._watchers: list[Watcher] = []
        # Every message starts with the sending node's id.
        self._node_prefix = node.encode()
        if len(self._node_prefix) != NODE_ID_LENGTH:
            raise ValueError(f"a node id is {NODE_ID_LENGTH} characters: {node!r}")
        self._outbox: deque[Event] = deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._max_backlog = max_backlog
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[Event])
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._connect_timeout = connect_timeout
        self._closed = False
        self.up = False
        self.dropped = 0
        # Figures for the metrics: events this node took from others' messages,
        # PUBLISHes it made, events in them, and batches it sent to every node.
        self.events_received = 0
        self.publishes = 0
        self.events_sent = 0
        self.shared_batches = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def watch(self, watcher: Watcher) -> None:
        """``watcher(False)`` when the other nodes fall silent, ``True`` when heard again."""
        self._watchers.append(watcher)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)
        if len(self._outbox) >= self._max_backlog:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append(event)
        self._outbox_empty.clear()
        self._outbox_ready.set()

    async def start(self) -> None:
        """Start listening; fails if Redis cannot be reached within the connect timeout."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-broker-listen"),
            asyncio.create_task(self._send(), name="redis-broker-send"),
        ]
        try:
            await asyncio.wait_for(self._listening.wait(), self._connect_timeout * 2)
        except TimeoutError:
            await self.close()
            raise ConnectionError(
                f"cannot subscribe to Redis at {self._target.safe_url()}"
            ) from None

    async def close(self) -> None:
        # Hand the other nodes what this one published last (a shutdown must
        # not swallow the events of the final commits), for a bounded time.
        if self._outbox and self._tasks:
            try:
                await asyncio.wait_for(self._outbox_empty.wait(), 2.0)
            except TimeoutError:
                log.warning("%d events for other nodes were not sent", len(self._outbox))
        # redis-py may turn a cancellation into a connection error, which the
        # loops would retry; the flag makes them stop whatever they were doing.
        self._closed = True
        self._outbox_ready.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []
        await self._redis.aclose()

    async def _listen(self) -> None:
        backoff = 0.1
        loop = asyncio.get_running_loop()
        while not self._closed:
            pubsub = None
            try:
                # A command on the channels' slot first: on a Cluster it makes the
                # client learn which server owns it now (after a failover), which
                # the subscription alone does not.
                await self._redis.exists(self._shared)
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._shared, self._own)
                self._set_up(True)
                backoff = 0.1
                heard = loop.time()
                while not self._closed:
                    # The outer bound: a read that never returns on a dead
                    # socket must not keep this node "up" (its sockets would
                    # silently miss other nodes' events).
                    message = await asyncio.wait_for(
                        pubsub.get_message(timeout=_LISTEN_WAIT), 2 * _LISTEN_WAIT
                    )
                    now = loop.time()
                    if message is not None:
                        heard = now
                        if message["type"] == "message":
                            self._deliver(message["data"])
                    elif now - heard >= 3 * _LISTEN_WAIT:
                        raise ConnectionError(f"no answer from Redis for {now - heard:.0f} s")
                    elif now - heard >= _LISTEN_WAIT:
                        await pubsub.ping()  # quiet: make Redis answer (a "pong" message)
            except _FAILURES as exc:
                if self.up:
                    log.warning("lost the Redis subscription (%s); retrying", exc)
                self._set_up(False)
            except Exception:
                log.exception("the Redis subscription failed; retrying")
                self._set_up(False)
            finally:
                try:
                    if pubsub is not None:
                        # Typed from redis-py 8.2 on, untyped before: either way mypy is quiet.
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                except _FAILURES:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _deliver(self, data: bytes) -> None:
        if data[:NODE_ID_LENGTH] == self._node_prefix:
            return  # our own: this node's subscribers had it at publish time
        try:
            events = self._decoder.decode(data[NODE_ID_LENGTH:])
        except msgspec.DecodeError:
            log.warning("ignored a message that does not decode (%d bytes)", len(data))
            return
        self.events_received += len(events)
        for event in events:
            for subscriber in self._subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("a subscriber failed on an event from another node")

    async def _send(self) -> None:
        backoff = 0.1
        while not self._closed:
            if not self._outbox:
                self._outbox_empty.set()
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            self._outbox_empty.clear()
            count = min(_PUBLISH_BATCH, len(self._outbox))
            batch = [self._outbox.popleft() for _ in range(count)]
            try:
                await self._send_batch(batch)
                backoff = 0.1
            except _FAILURES as exc:
                # Keep them, in order, for the next try.
                self._outbox.extendleft(reversed(batch))
                log.warning("publishing to Redis failed (%s); %d events wait", exc, len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _send_batch(self, batch: list[Event]) -> None:
        users = batch_users(batch)
        answer = await self._route(
            keys=self._route_keys,
            args=route_arguments(self._prefix, self._node, self._warm_up, users),
        )
        plan = split(batch, users, answer)
        if plan is None:
            await self._redis.publish(self._shared, self._node_prefix + self._encoder.encode(batch))
            self.publishes += 1
            self.events_sent += len(batch)
            self.shared_batches += 1
            return
        if not plan:
            return  # no other node holds a recipient
        encode = self._encoder.encode
        blobs = [msgspec.Raw(encode(event)) for event in batch]
        # One script, so all or nothing: a retry after a failure never sends a
        # node its events twice (a Cluster client refuses a MULTI of PUBLISHes).
        await self._publish_each(
            keys=[channel(self._prefix, node) for node in plan],
            args=[
                self._node_prefix + encode([blobs[i] for i in indexes]) for indexes in plan.values()
            ],
        )
        self.publishes += len(plan)
        self.events_sent += sum(map(len, plan.values()))

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            if up:
                self._listening.set()
            return
        self.up = up
        if up:
            self._listening.set()
            log.info("listening to the other nodes through Redis")
        for watcher in self._watchers:
            watcher(up)
