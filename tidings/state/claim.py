"""One Redis prefix, one deployment: a node of another database is refused while ours run.

Everything under a prefix is shared by the nodes that use it: the event
channel (``{prefix}events``: every message of every conversation), the
presence hashes, the node registry (rate limits are per node). Two deployments on one
Redis with one prefix (staging pointed at production's Redis with the
default prefix) would deliver each other's messages to users who happen to
have the same ids. So the prefix records the identity of the database
whose nodes use it (``{prefix}deployment``), and a node of another database
does not start while a node of the recorded one reports itself live. When
none does (the database was replaced, every node stopped), the prefix goes
to the new database. The chat-list copy needs no such care: it is keyed
by identity and generation (``state.binding``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tidings.errors import unavailable
from tidings.nodes import NodeId, decode_report, is_live, registry_key
from tidings.redis_target import RedisTarget

if TYPE_CHECKING:
    from tidings.redis_target import AnyRedis

# KEYS: the claim. ARGV: the identity seen there ('' for none), ours.
_TAKE = """
local seen = redis.call('GET', KEYS[1]) or ''
if seen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def claim_key(prefix: str) -> str:
    return f"{prefix}deployment"


async def claim_prefix(
    redis: AnyRedis, prefix: str, identity: str, *, node: NodeId, node_ttl: float
) -> None:
    """Record ``identity`` as the prefix's deployment, or refuse: another one is running.
    ``prefix`` is the deployment-wide one (``RedisTarget.shared``)."""
    take = redis.register_script(_TAKE)
    key = claim_key(prefix)
    while True:
        raw = await redis.get(key)
        seen = "" if raw is None else raw.decode() if isinstance(raw, bytes) else raw
        if seen == identity:
            return
        if seen:
            live = await _live_nodes(redis, prefix, node, node_ttl)
            if live:
                raise unavailable(
                    f"the Redis prefix {prefix!r} is in use by another database (deployment "
                    f"{seen}, {len(live)} node(s) live, e.g. {live[0]}); this database is "
                    f"deployment {identity}: give it a TIDINGS_REDIS_PREFIX of its own (a node "
                    f"that was killed stops counting {node_ttl:g} s after its last report)"
                )
        if await take(keys=[key], args=[seen, identity]):
            return


async def claim_prefix_at(
    target: RedisTarget, identity: str, *, node: NodeId, node_ttl: float = 15.0
) -> None:
    """``claim_prefix`` on a connection of its own: for a node without the Redis chat list,
    whose broker and presence share the prefix all the same."""
    redis = target.connect(socket_connect_timeout=5)
    try:
        await claim_prefix(redis, target.shared, identity, node=node, node_ttl=node_ttl)
    finally:
        await redis.aclose()


async def _live_nodes(redis: AnyRedis, prefix: str, node: NodeId, node_ttl: float) -> list[str]:
    now = time.time()
    live = []
    for name, raw in (await redis.hgetall(registry_key(prefix))).items():
        other = name.decode() if isinstance(name, bytes) else name
        report = decode_report(raw)
        if other != node and report is not None and is_live(report, now, node_ttl):
            live.append(other)
    return live
