"""Sharded pub/sub on a Redis Cluster: one subscription on the primary that owns a channel.

A classic PUBLISH on a Cluster crosses the cluster bus to every Redis node,
whatever the channel, so the cost grows with the cluster. An SPUBLISH stays
inside the shard that owns the channel's slot; each tidings node's channel
carries the node's id as its hash tag, so the nodes' channels spread over
the shards and each event crosses only its target's shard.

redis-py's ``ClusterPubSub`` reads every shard in one call and hides a shard
that fails while another answers, and its ``ping`` goes to a random node:
neither tells the broker that *this* channel went quiet, which is what lets
the hub close its sockets so that clients catch up. So each sharded channel
gets a plain connection of its own to its slot's primary, watched like the
one subscription on a standalone Redis: a read that fails, or pings that go
unanswered, mean the link is lost. The primary also ends the subscription
itself (a ``sunsubscribe`` message) when the slot moves away (a failover, a
resharding), which counts as lost too: the next attempt asks the cluster
again who owns the slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import asyncio as aioredis
    from redis.asyncio.client import PubSub


async def subscribe_on_owner(
    cluster: aioredis.RedisCluster, channel: str
) -> tuple[aioredis.Redis, PubSub]:
    """A client on the primary owning ``channel``'s slot, and its SSUBSCRIBEd PubSub.

    The caller closes both. Subscription messages are not ignored: the
    ``sunsubscribe`` of a moved slot must reach the caller."""
    from redis import asyncio as aioredis  # the `redis` extra

    # A command on the channel's slot first: after a failover it makes the
    # client learn who owns the slot now (MOVED, or the dead primary's error).
    await cluster.exists(channel)
    node = cluster.get_node_from_key(channel)
    if node is None:
        raise ConnectionError(f"no primary serves the slot of {channel!r}")
    pool = aioredis.ConnectionPool(
        connection_class=node.connection_class, **dict(node.connection_kwargs)
    )
    client = aioredis.Redis.from_pool(pool)  # closing the client closes its pool
    pubsub = client.pubsub()
    try:
        await pubsub.ssubscribe(channel)
    except BaseException:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()
        raise
    return client, pubsub
