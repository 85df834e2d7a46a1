"""One node among many: its id, and the registry where every node reports itself.

A node id is made once per process (``new_node_id``) and handed to whatever
needs it: the broker (to skip its own events), the hub (connection ids
unique across nodes), presence and the Redis chat list. The registry is a
Redis hash ``{prefix}nodes`` (node -> msgpack ``NodeReport``): presence
writes it on a lease; the chat list reads it to notice a node that died
between a commit and its update. Presence writes, per node, a hash of
its users' open sockets and a set of the same users, which the broker
reads as its routing table. They all name these keys through here, so
none knows another's.
"""

from __future__ import annotations

import secrets
from typing import NewType

import msgspec

from tidings.models import NodeStats

NodeId = NewType("NodeId", str)
NODE_ID_LENGTH = 8  # characters; the broker's messages start with the sender's id


def new_node_id() -> NodeId:
    """Eight hex digits, random: unique among a deployment's nodes for all practical use."""
    return NodeId(secrets.token_hex(NODE_ID_LENGTH // 2))


class NodeReport(msgspec.Struct):
    """What a node last said of itself, and when (seconds since the epoch)."""

    at: float
    stats: NodeStats


def registry_key(prefix: str) -> str:
    """The hash of every node's last report."""
    return f"{prefix}nodes"


# The field of a node's presence hash that says "this node reads its own channel".
ROUTED_FIELD = "~routed"
# The field of a node's presence hash with the replication id of the Redis
# primary that took its last lease (``redis_target.FAILED_OVER``).
PRIMARY_FIELD = "~primary"


def presence_key(prefix: str, node: str) -> str:
    """A node's hash of its users' open sockets (presence), with ``ROUTED_FIELD``."""
    return f"{prefix}presence:{node}"


def routes_key(prefix: str, node: str) -> str:
    """The set of users with a socket on a node: the broker's routing table.

    The same users as the node's presence hash, kept as a set of integers
    because Redis answers SMISMEMBER on a small one (an intset, up to 512)
    by binary search, where HMGET on a small hash (a listpack) scans it.
    """
    return f"{prefix}routes:{node}"


def routing_since_key(prefix: str) -> str:
    """When the routing table was last found lost (the broker's warm-up)."""
    return f"{prefix}routing:since"


def encode_report(report: NodeReport) -> bytes:
    return msgspec.msgpack.encode(report)


def decode_report(raw: bytes | str) -> NodeReport | None:
    """A node's last report, or None if the value is not one."""
    try:
        data = raw if isinstance(raw, bytes) else raw.encode()
        return msgspec.msgpack.decode(data, type=NodeReport)
    except msgspec.DecodeError:
        return None


def is_live(report: NodeReport, now: float, ttl: float) -> bool:
    """A node that has not reported for ``ttl`` seconds is taken for dead."""
    return now - report.at <= ttl
