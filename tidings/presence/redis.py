"""Presence across nodes: each node keeps its own counts in Redis, with a lease.

Each node writes ``{prefix}presence:{node}`` (a hash user -> open sockets)
as its sockets come and go, and refreshes ``{prefix}nodes`` (node -> its
figures and a timestamp) every few seconds. A node that stops refreshing
is left out after ``node_ttl`` and its hash expires. A query sums the live
nodes' hashes, counting this node's own sockets, exactly.

Beside the hash, ``{prefix}routes:{node}`` holds the same users as a set:
the broker's routing table (``broker/route.py``). A new socket's user is
written into both, and the write awaited, before the socket gets
``auth_ok`` (``announce``). The hash carries a marker field (``~routed``,
"this node reads its own channel"); the lease puts it back if Redis lost
it (a restart, a FLUSHALL), and then writes everything again. One task
makes every write, in order, so an earlier write never lands after a later one.

A Redis failover (a Cluster's replica taking over, or Sentinel's) keeps the
hash but may lose its last writes: the lease also compares the primary's
replication id with the one it last wrote beside the marker, and writes
everything again when it changed (``redis_target.FAILED_OVER``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from redis.exceptions import RedisClusterException, RedisError

from tidings.errors import unavailable
from tidings.ids import UserId
from tidings.models import NodeStats
from tidings.nodes import (
    PRIMARY_FIELD,
    ROUTED_FIELD,
    NodeId,
    NodeReport,
    decode_report,
    encode_report,
    is_live,
    presence_key,
    registry_key,
    routes_key,
)
from tidings.presence import LocalSockets
from tidings.redis_target import FAILED_OVER, RedisTarget

log = logging.getLogger(__name__)

# A Redis that is down, hung or failing over (a Cluster client's own errors
# are not RedisErrors).
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


class RedisPresence:
    def __init__(
        self,
        target: RedisTarget,
        sockets: LocalSockets,
        stats: Callable[[], NodeStats],
        *,
        node: NodeId,
        node_ttl: float = 15.0,
    ) -> None:
        self._redis = target.connect(socket_connect_timeout=5)
        self._sockets = sockets
        self._stats = stats
        self._node = node
        prefix = self._prefix = target.shared
        self._key = presence_key(prefix, node)
        self._routes = routes_key(prefix, node)
        self._nodes_key = registry_key(prefix)
        self._ttl = node_ttl
        self._dirty: set[UserId] = set()
        # What Redis holds for this node (as last written): a count that did not
        # change is not written again.
        self._written: dict[UserId, int] = {}
        # Sockets announced but not yet in the hub: counted as open in what is written.
        self._announced: Counter[UserId] = Counter()
        # Announcements waiting for the next write that includes them.
        self._waiting: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._resync = True  # write the whole map on start and after an outage
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        sockets.on_change(self._changed)

    def _changed(self, user: UserId) -> None:
        self._dirty.add(user)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._report(), name="redis-presence")

    async def close(self) -> None:
        # As in the broker: redis-py may turn a cancellation into a connection
        # error, which the loop would retry; the flag ends it regardless.
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(self._key, self._routes)
            pipe.hdel(self._nodes_key, self._node)
            await asyncio.wait_for(pipe.execute(), 2)
        except _FAILURES:
            pass
        await self._redis.aclose()

    async def announce(self, user: UserId) -> None:
        """Count one more socket of ``user`` here and return once Redis has it, so
        every node routes the user's events here from now on; ``settle(user)``
        when the socket is in the hub or gave up."""
        self._announced[user] += 1
        self._changed(user)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        await waiter  # cancelled by the caller's timeout: the writer skips it

    def settle(self, user: UserId) -> None:
        """An announced socket is now counted by the hub, or never will be."""
        self._announced[user] -= 1
        if self._announced[user] <= 0:
            del self._announced[user]
        self._changed(user)

    async def connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        try:
            return await self._connections(users)
        except _FAILURES as exc:
            raise unavailable("presence needs Redis, which does not answer") from exc

    async def nodes(self) -> list[NodeStats]:
        try:
            mine = self._stats()
            return [mine, *(n for n in await self._live_nodes() if n.node != self._node)]
        except _FAILURES as exc:
            raise unavailable("node figures need Redis, which does not answer") from exc

    async def _connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        counts = {user: self._sockets.open_sockets(user) for user in users}
        if not users:
            return counts
        others = [n for n in await self._live_nodes() if n.node != self._node]
        if others:
            pipe = self._redis.pipeline(transaction=False)
            for node in others:
                pipe.hmget(presence_key(self._prefix, node.node), [str(u) for u in users])
            for values in await pipe.execute():
                for user, value in zip(users, values, strict=True):
                    if value is not None:
                        counts[user] += int(value)
        return counts

    async def _live_nodes(self) -> list[NodeStats]:
        raw = await self._redis.hgetall(self._nodes_key)
        now = time.time()
        live = []
        for value in raw.values():
            report = decode_report(value)
            if report is not None and is_live(report, now, self._ttl):
                live.append(report.stats)
        return live

    async def _report(self) -> None:
        backoff = 0.2
        next_beat = 0.0
        while not self._closed:
            # Taken before the counts are read: these announcements are in this write.
            waiting, self._waiting = self._waiting, []
            try:
                now = time.monotonic()
                # Figures go out with every change of sockets, and on a lease.
                beat = self._resync or bool(self._dirty) or now >= next_beat
                if await self._write(beat):
                    log.warning(
                        "presence: Redis lost this node's hash, or failed over; writing it again"
                    )
                    self._resync = True
                    self._waiting[:0] = waiting
                    continue
                if beat:
                    next_beat = now + self._ttl / 3
                for waiter in waiting:
                    if not waiter.done():
                        waiter.set_result(None)
                backoff = 0.2
                self._wake.clear()
                if not self._dirty:
                    try:
                        await asyncio.wait_for(self._wake.wait(), max(0.05, next_beat - now))
                    except TimeoutError:
                        pass
            except _FAILURES as exc:
                log.warning("presence could not reach Redis (%s); retrying", exc)
                self._waiting[:0] = waiting
                self._resync = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _write(self, beat: bool) -> bool:
        """One round trip, one transaction: the counts that changed (everything
        after a resync) and, with ``beat``, this node's report and lease. True
        if Redis had lost this node's hash (its marker was gone)."""
        pipe = self._redis.pipeline(transaction=True)
        users, self._dirty = self._dirty, set()
        written = self._written
        if self._resync:
            counts = Counter(self._sockets.counts())
            counts.update(self._announced)
            pipe.delete(self._key, self._routes)
            pipe.hset(
                self._key, mapping={ROUTED_FIELD: 1, **{str(u): n for u, n in counts.items()}}
            )
            if counts:
                pipe.sadd(self._routes, *counts)
            changed: dict[UserId, int] = dict(counts)
        else:
            changed = {}
            for user in users:
                count = self._sockets.open_sockets(user) + self._announced.get(user, 0)
                if count != written.get(user, 0):
                    changed[user] = count
            arrived = [user for user, count in changed.items() if count and user not in written]
            left = [user for user, count in changed.items() if not count]
            for user, count in changed.items():
                if count:
                    pipe.hset(self._key, str(user), count)
            if left:
                pipe.hdel(self._key, *map(str, left))
                pipe.srem(self._routes, *left)
            if arrived:
                pipe.sadd(self._routes, *arrived)
        lease = int(self._ttl * 3)
        if beat or changed or self._resync:
            pipe.expire(self._key, lease)
            pipe.expire(self._routes, lease)
        if beat:
            report = encode_report(NodeReport(time.time(), self._stats()))
            pipe.hset(self._nodes_key, self._node, report)
            pipe.hsetnx(self._key, ROUTED_FIELD, 1)
            # In the transaction: EVALSHA (NOSCRIPT) cannot fall back to EVAL there.
            pipe.eval(FAILED_OVER, 1, self._key, PRIMARY_FIELD)
        if not len(pipe):
            return False
        try:
            results = await pipe.execute()
        except BaseException:
            self._dirty |= users
            raise
        if self._resync:
            self._resync = False
            self._written = {user: n for user, n in changed.items() if n}
        else:
            for user, count in changed.items():
                if count:
                    written[user] = count
                else:
                    written.pop(user, None)
        # HSETNX answers 1 when it had to put the marker back: the hash was lost;
        # FAILED_OVER 1 when another primary holds it now, which may lack the last writes.
        return beat and (bool(results[-2]) or bool(results[-1]))
