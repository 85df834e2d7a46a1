"""Presence on one node: the node's own sockets are all there is."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tidings.ids import UserId
from tidings.models import NodeStats
from tidings.presence import LocalSockets


class LocalPresence:
    def __init__(self, sockets: LocalSockets, stats: Callable[[], NodeStats]) -> None:
        self._sockets = sockets
        self._stats = stats

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def announce(self, user: UserId) -> None:
        return None  # one node: every event is handed to this node's hub

    def settle(self, user: UserId) -> None:
        return None

    async def connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        return {user: self._sockets.open_sockets(user) for user in users}

    async def nodes(self) -> list[NodeStats]:
        return [self._stats()]
