"""The presence port: who is connected, on any node, and how each node is doing.

Guarantees every adapter gives:

- ``connections`` counts a user's open sockets on every live node; this
  node's own sockets are counted exactly, other nodes' as they last
  reported (a round trip to Redis behind).
- A node that stops reporting (killed) drops out within ``node_ttl``.
- ``announce`` returns only once every node would route the user's events
  to this node: a socket authenticated after it misses nothing live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tidings.ids import UserId
from tidings.models import NodeStats


class LocalSockets(Protocol):
    """This node's open sockets, as presence needs them (the gateway's hub gives them)."""

    def open_sockets(self, user: UserId) -> int:
        """How many sockets ``user`` has open on this node."""

    def counts(self) -> dict[UserId, int]:
        """Open sockets per connected user on this node."""

    def on_change(self, listener: Callable[[UserId], None]) -> None:
        """Call ``listener(user)`` after a user's sockets on this node change."""


class Presence(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def announce(self, user: UserId) -> None:
        """Count one more socket of ``user`` on this node, and return once the
        other nodes route ``user``'s events here; call ``settle(user)`` after,
        whatever happened. It waits as long as Redis does: bound it."""

    def settle(self, user: UserId) -> None:
        """The announced socket is now counted by the hub (or gave up)."""

    async def connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        """Open sockets per user, summed over the live nodes."""

    async def nodes(self) -> list[NodeStats]:
        """Every live node's figures, this one first."""
