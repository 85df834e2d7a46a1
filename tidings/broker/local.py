"""The in-process broker: one node, events handed straight to its subscribers."""

from __future__ import annotations

from tidings.broker import Subscriber, Watcher
from tidings.events import Event


class LocalBroker:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    def watch(self, watcher: Watcher) -> None:
        return None  # there are no other nodes to lose

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
