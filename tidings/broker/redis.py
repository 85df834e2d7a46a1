"""The Redis broker: events go only to the nodes that hold their recipients.

``publish`` hands an event to this node's subscribers at once, then queues
it for the other nodes; one task sends the queue in order. Everything
queued meanwhile is one batch: one script call finds the nodes that hold
its recipients (``route.py``), then one PUBLISH per such node carries that
node's events, in order, on its own channel; nodes that hold none get
nothing. What could not be sent is kept for the next try, so a short Redis
hiccup delays events instead of losing them: a batch Redis could not route
goes back to the queue, and messages routed but not published are tried
again, as they are, before anything newer (a node's channel keeps its
order). Each message starts with the sending node's id, so a node skips
its own (on the shared channel) without decoding them. Another task
listens on this node's channel and the shared one, and tells its watchers
when it stops hearing the other nodes (the hub then closes its sockets so
that clients reconnect and catch up, rather than silently miss events) and
when it hears them again.

On a Redis Cluster the channels are sharded: a node's channel carries the
node's id as its hash tag, events go there by SPUBLISH, and each channel is
read on a connection of its own to the shard that owns it (``shards.py``).
A classic PUBLISH would cross the cluster bus to every Redis node.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from tidings.broker import Subscriber, Watcher
from tidings.broker.route import (
    PUBLISH_EACH,
    ROUTE,
    batch_users,
    channel,
    route_arguments,
    route_keys,
    sharded_channel,
    shared_channel,
    split,
)
from tidings.broker.shards import subscribe_on_owner
from tidings.events import Event
from tidings.nodes import NODE_ID_LENGTH, NodeId
from tidings.redis_target import RedisTarget

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

# A Redis that is down, hung or failing over (a Cluster client's own errors
# are not RedisErrors).
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)

_PUBLISH_BATCH = 512
_MAX_BACKOFF = 5.0
# Seconds a quiet subscription waits before pinging Redis; three without an
# answer count as a lost connection.
_LISTEN_WAIT = 3.0


class _Message(NamedTuple):
    """One PUBLISH of a routed batch: its channel, its bytes, the events in it."""

    channel: str
    data: bytes
    events: int


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
        self._sharded = target.cluster
        self._channel_of = partial(sharded_channel if self._sharded else channel, target.prefix)
        self._own = self._channel_of(node)
        # What each listener hears: one subscription to both channels on one
        # server, one per channel on a Cluster (they may sit on two shards).
        self._listeners = (
            [(self._shared,), (self._own,)] if self._sharded else [(self._shared, self._own)]
        )
        self._hearing = dict.fromkeys(self._listeners, False)
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
        # Routed, not yet published: retried before the next batch.
        self._unsent: list[_Message] = []
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
            *(
                asyncio.create_task(self._listen(channels), name="redis-broker-listen")
                for channels in self._listeners
            ),
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
        if (self._outbox or self._unsent) and self._tasks:
            try:
                await asyncio.wait_for(self._outbox_empty.wait(), 2.0)
            except TimeoutError:
                log.warning("%d events for other nodes were not sent", self._waiting())
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

    async def _listen(self, channels: tuple[str, ...]) -> None:
        backoff = 0.1
        loop = asyncio.get_running_loop()
        while not self._closed:
            pubsub: PubSub | None = None
            shard: aioredis.Redis | None = None
            try:
                if self._sharded:
                    assert isinstance(self._redis, aioredis.RedisCluster)
                    shard, pubsub = await subscribe_on_owner(self._redis, *channels)
                else:
                    pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(*channels)
                self._set_up(channels, True)
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
                        kind = message["type"]
                        if kind in ("message", "smessage"):
                            self._deliver(message["data"])
                        elif kind == "sunsubscribe":
                            raise ConnectionError("the channel's slot moved to another shard")
                    elif now - heard >= 3 * _LISTEN_WAIT:
                        raise ConnectionError(f"no answer from Redis for {now - heard:.0f} s")
                    elif now - heard >= _LISTEN_WAIT:
                        await pubsub.ping()  # quiet: make Redis answer (a "pong" message)
            except _FAILURES as exc:
                if self.up:
                    log.warning("lost the Redis subscription (%s); retrying", exc)
                self._set_up(channels, False)
            except Exception:
                log.exception("the Redis subscription failed; retrying")
                self._set_up(channels, False)
            finally:
                try:
                    if pubsub is not None:
                        # Typed from redis-py 8.2 on, untyped before: either way mypy is quiet.
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                    if shard is not None:
                        await shard.aclose()
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
            try:
                if not self._unsent:
                    if not self._outbox:
                        self._outbox_empty.set()
                        self._outbox_ready.clear()
                        await self._outbox_ready.wait()
                        continue
                    self._outbox_empty.clear()
                    count = min(_PUBLISH_BATCH, len(self._outbox))
                    batch = [self._outbox.popleft() for _ in range(count)]
                    try:
                        self._unsent = await self._route_batch(batch)
                    except _FAILURES:
                        self._outbox.extendleft(reversed(batch))  # in order, for the next try
                        raise
                await self._publish_unsent()
                backoff = 0.1
            except _FAILURES as exc:
                log.warning("publishing to Redis failed (%s); %d events wait", exc, self._waiting())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _waiting(self) -> int:
        return len(self._outbox) + sum(message.events for message in self._unsent)

    async def _route_batch(self, batch: list[Event]) -> list[_Message]:
        """The messages that carry ``batch`` to the nodes holding its recipients."""
        users = batch_users(batch)
        answer = await self._route(
            keys=self._route_keys,
            args=route_arguments(self._prefix, self._node, self._warm_up, users),
        )
        plan = split(batch, users, answer)
        encode = self._encoder.encode
        if plan is None:
            return [_Message(self._shared, self._node_prefix + encode(batch), len(batch))]
        blobs = [msgspec.Raw(encode(event)) for event in batch] if plan else []
        return [
            _Message(
                self._channel_of(node),
                self._node_prefix + encode([blobs[i] for i in indexes]),
                len(indexes),
            )
            for node, indexes in plan.items()
        ]

    async def _publish_unsent(self) -> None:
        """Publish ``_unsent``; what fails stays there and the first failure is raised."""
        unsent = self._unsent
        if not unsent:
            return
        failures: list[BaseException] = []
        if self._sharded:
            # Each to its own shard; only those that failed are tried again.
            results = await asyncio.gather(
                *(self._redis.spublish(message.channel, message.data) for message in unsent),
                return_exceptions=True,
            )
            sent, self._unsent = [], []
            for message, result in zip(unsent, results, strict=True):
                if isinstance(result, BaseException):
                    failures.append(result)
                    self._unsent.append(message)
                else:
                    sent.append(message)
        else:
            if unsent[0].channel == self._shared:
                await self._redis.publish(unsent[0].channel, unsent[0].data)
            else:
                # One script, so all or nothing: a retry after a failure never sends
                # a node its events twice (a Cluster client refuses a MULTI of PUBLISHes).
                await self._publish_each(
                    keys=[message.channel for message in unsent],
                    args=[message.data for message in unsent],
                )
            self._unsent = []
            sent = unsent
        self.publishes += len(sent)
        self.events_sent += sum(message.events for message in sent)
        self.shared_batches += sum(message.channel == self._shared for message in sent)
        if failures:
            raise failures[0]

    def _set_up(self, listener: tuple[str, ...], hearing: bool) -> None:
        self._hearing[listener] = hearing
        up = all(self._hearing.values())
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
