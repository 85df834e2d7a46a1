"""One client's WebSocket: its identity, state, and bounded outbound queue.

Frames are queued as ready bytes and written by a drain task that exists
only while there is something to write, so an idle connection holds no
task and no buffer. A client that stops reading fills its queue and is cut
off with 1013 instead of growing the server's memory or slowing anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from tidings.gateway import frames
from tidings.gateway.wire import WebSocketWire
from tidings.ids import UserId
from tidings.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
# Past this many bytes unsent in the kernel-facing buffer, frames wait in the
# bounded queue instead (where a reader that stopped is detected).
WRITE_BUFFER_HIGH = 64 * 1024


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Connection:
    __slots__ = (
        "id",
        "user",
        "token_hash",
        "state",
        "bucket",
        "opened_at",
        "last_seen",
        "_wire",
        "_queue",
        "_limit",
        "_drainer",
        "_closer",
        "_on_slow",
    )

    def __init__(
        self,
        connection_id: int,
        user: UserId,
        token_hash: str,
        wire: WebSocketWire,
        *,
        queue_limit: int,
        rate_limit: float,
        on_slow: Callable[[], None] | None = None,
    ) -> None:
        self.id = connection_id
        self.user = user
        self.token_hash = token_hash
        self.state = ConnectionState.OPEN
        self.bucket = TokenBucket(rate_limit)
        self.opened_at = 0.0  # monotonic; set when the hub takes the connection
        self.last_seen = time.monotonic()  # the last frame from the client: idle check
        self._wire = wire
        # Made when a frame must wait, dropped when drained: most sockets keep
        # up, and an empty deque still costs ~0.7 KiB per connection.
        self._queue: deque[bytes] | None = None
        self._limit = queue_limit
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._on_slow = on_slow

    def push(self, frame: bytes, wire_frame: bytes | None = None) -> None:
        """Send one encoded text frame; never blocks, never buffers without end.

        ``wire_frame`` is the same frame with its WebSocket header
        (:func:`frames.wire_text`), built once when a fan-out sends it to many.
        """
        if self.state is not ConnectionState.OPEN:
            return
        queue = self._queue
        if queue is not None and len(queue) >= self._limit:
            log.info("connection %s of user %s is too far behind; closing", self.id, self.user)
            if self._on_slow is not None:
                self._on_slow()
            self.close_soon(1013, "too far behind")
            return
        wire = self._wire
        if (
            not queue
            and not wire.closing
            and wire.transport.get_write_buffer_size() < WRITE_BUFFER_HIGH
        ):
            # The common case: the socket keeps up. Write the whole frame now,
            # no task, no await; going through the queue only when it is busy
            # keeps frames in order.
            wire.transport.write(wire_frame if wire_frame is not None else frames.wire_text(frame))
            return
        if queue is None:
            queue = self._queue = deque()
        queue.append(frame)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def lost(self) -> None:
        """The socket is gone: drop what is queued, write nothing more."""
        self.state = ConnectionState.CLOSED
        self._queue = None

    @property
    def backlog(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue and self.state is ConnectionState.OPEN:
                await self._wire.drain()
                self._wire.write(frames.wire_text(queue.popleft()))
        except Exception:
            # The peer went away mid-write; the wire's connection_lost cleans up.
            pass
        finally:
            self._drainer = None
            self._queue = None  # drained, or dropped with a peer that is gone

    async def flush(self) -> None:
        """Wait until what is queued now has been handed to the socket."""
        while self._drainer is not None:
            await asyncio.shield(self._drainer)

    def close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` in the background: drop what is queued, stop queueing."""
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        self._queue = None
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` after what is queued has been written."""
        if self.state is ConnectionState.OPEN:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT)
            self.state = ConnectionState.CLOSING
            await self._close(code, reason)
        elif self._closer is not None:
            await asyncio.shield(self._closer)

    async def _close(self, code: int, reason: str) -> None:
        try:
            # A peer that reads nothing never answers the close handshake:
            # the wire drops it after the timeout.
            await self._wire.close(code, reason, abort_after=CLOSE_TIMEOUT)
        finally:
            self.state = ConnectionState.CLOSED
