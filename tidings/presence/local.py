"""Presence on one node: the hub already knows every socket."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tidings.gateway.hub import Hub
from tidings.ids import UserId
from tidings.presence import NodeStats


class LocalPresence:
    def __init__(self, hub: Hub, stats: Callable[[], NodeStats]) -> None:
        self._hub = hub
        self._stats = stats

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def connections(self, users: Sequence[UserId]) -> dict[UserId, int]:
        return {user: len(self._hub.connections_of(user)) for user in users}

    async def nodes(self) -> list[NodeStats]:
        return [self._stats()]
