"""The broker port: carries events to every node that holds a recipient.

Guarantees every adapter gives:

- ``publish`` never blocks and never waits on another node: it is called
  from the post-commit path, which must not stall on the network.
- Events reach this node's own subscribers synchronously and in publish
  order, so the sender's node delivers a conversation's messages in seq
  order.
- Delivery to other nodes is at most once; a node that misses events is
  caught up by clients fetching ``after`` their last seq (guarantee 4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tidings.events import Event

Subscriber = Callable[[Event], None]
Watcher = Callable[[bool], None]


class Broker(Protocol):
    def subscribe(self, subscriber: Subscriber) -> None: ...

    def publish(self, event: Event) -> None: ...

    def watch(self, watcher: Watcher) -> None:
        """``watcher(False)`` when events from other nodes stop arriving, ``True`` when
        they arrive again. A single-node broker never calls it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
