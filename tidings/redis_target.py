"""Where a deployment keeps its shared state: one Redis server or a Redis Cluster.

Everything tidings does in Redis must keep working on a Cluster, where a
script, a transaction or an MGET may only touch keys of one hash slot. So
every key family is named to land where its users need it:

- ``shared``: the deployment-wide keys and channels (node registry, each
  node's presence hash and routing set, the routing warm-up, the deployment
  claim, the event channels). The route script reads all of them in one
  call and presence writes a node's share in one transaction, so on a
  Cluster they carry one hash tag, ``{prefix}``: one slot.
- ``own_slot(name)``: a family with a slot of its own (the chat-list copy
  of one database, whose scripts read its ``epoch`` and everything under it).
- the rest (push windows) are single-key commands and keep the plain prefix,
  so a Cluster spreads them.

On one server the names stay what they always were (no braces): a node of
this version and one of the previous share a standalone Redis unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis import asyncio as aioredis

    AnyRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster


# Lua: the replication id of the primary running the script. A replica that
# takes over starts a new one (and so does a restart without the data), so
# a change means: the writes of the last moments may be gone.
PRIMARY_ID = "string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')"

# KEYS[1]: a hash, ARGV[1]: its field for the primary's id. Answers 1 when
# another primary wrote the hash last: it may lack what was written just before.
FAILED_OVER = f"""
local id = {PRIMARY_ID}
local seen = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], id)
if seen and seen ~= id then return 1 end
return 0
"""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str
    prefix: str = "tidings:"
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.prefix or "}" in self.prefix):
            # Redis hashes only the first {...} of a name: ours must be that one.
            raise ValueError(f"a Redis prefix has no braces on a Cluster: {self.prefix!r}")

    def connect(self, **options: Any) -> AnyRedis:
        """A new client (a pool per server it talks to); ``options`` are redis-py's.

        A Cluster's URL may name several of its nodes, comma-separated (the
        first one's credentials and options apply to all): the client starts
        from whichever answers, so one node down does not stop a start."""
        from redis import asyncio as aioredis  # the `redis` extra

        if not self.cluster:
            return aioredis.Redis.from_url(self.url, **options)
        first, *others = self.url.split(",")
        if others:
            from redis.asyncio.cluster import ClusterNode

            seeds = [urlsplit(other.strip()) for other in others]
            options["startup_nodes"] = [
                ClusterNode(seed.hostname or "localhost", seed.port or 6379) for seed in seeds
            ]
        return aioredis.RedisCluster.from_url(first, **options)

    @property
    def shared(self) -> str:
        """The prefix of the deployment-wide keys and channels: one slot on a Cluster."""
        return self.own_slot(self.prefix)

    def own_slot(self, name: str) -> str:
        """A prefix whose keys share one slot on a Cluster (``name`` is the prefix elsewhere)."""
        return f"{{{name}}}" if self.cluster else name

    def safe_url(self) -> str:
        """The URL (or URLs) without passwords, for messages."""
        shown = []
        for url in self.url.split(","):
            head, _, tail = url.strip().rpartition("@")
            shown.append(f"redis://…@{tail}" if head else url.strip())
        return ",".join(shown)
