"""The presence port: who is connected, on any node, and how each node is doing.

Guarantees every adapter gives:

- ``connections`` counts a user's open sockets on every live node; this
  node's own sockets are counted exactly, other nodes' as they last
  reported (a round trip to Redis behind).
- A node that stops reporting (killed) drops out within ``node_ttl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from tidings.ids import UserId


class NodeStats(msgspec.Struct, frozen=True):
    node: str
    connections: int
    users_online: int
    messages_per_second: float
    pending_writes: int


class Presence(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        """Open sockets per user, summed over the live nodes."""

    async def nodes(self) -> list[NodeStats]:
        """Every live node's figures, this one first."""
