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

from aiohttp import WSMsgType, web

from tidings.gateway import frames
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
        "_ws",
        "_transport",
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
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
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
        self._ws = ws
        self._transport = transport
        # Made when a frame must wait, dropped when drained: most sockets keep
        # up, and an empty deque still costs ~0.7 KiB per connection.
        self._queue: deque[bytes] | None = None
        self._limit = queue_limit
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._on_slow = on_slow

    def push(self, frame: bytes, wire: bytes | None = None) -> None:
        """Send one encoded text frame; never blocks, never buffers without end.

        ``wire`` is the same frame with its WebSocket header
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
        transport = self._transport
        if (
            not queue
            and transport is not None
            and transport.get_write_buffer_size() < WRITE_BUFFER_HIGH
            and not transport.is_closing()
            and not self._ws.closed
        ):
            # The common case: the socket keeps up. Write the whole frame now,
            # no task, no await. Frames are uncompressed (compress=False), so
            # these bytes are exactly what aiohttp's writer would send, and
            # going through the queue only when it is busy keeps frames in order.
            transport.write(wire if wire is not None else frames.wire_text(frame))
            return
        if queue is None:
            queue = self._queue = deque()
        queue.append(frame)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    @property
    def backlog(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue and self.state is ConnectionState.OPEN:
                await self._ws.send_frame(queue.popleft(), WSMsgType.TEXT)
        except Exception:
            # The peer went away mid-write; the read loop notices and cleans up.
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
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT
            )
        except Exception:
            # A peer that reads nothing never answers the close handshake.
            if self._transport is not None:
                self._transport.abort()
        finally:
            self.state = ConnectionState.CLOSED
