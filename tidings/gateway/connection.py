"""One client's WebSocket: its identity, state, and bounded outbound queue.

A frame for a socket that keeps up is written at the end of the event
loop's turn, joined with the socket's other frames of that turn (one
``send()`` for a batch's acks and deliveries). Behind a busy socket, frames
are queued as ready bytes and written by a drain task that exists only
while there is something to write, so an idle connection holds no task and
no buffer. A client that stops reading fills its queue and is cut
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


class WriteCoalescer:
    """Frames pushed to one socket in one turn of the event loop leave in one write.

    A committed batch acks and delivers hundreds of messages in one go, often
    several to the same socket; one ``send()`` per frame was most of the
    server's system time. Each connection collects its frames of the turn
    and this writes each connection's frames joined, once, at the next turn
    (``call_soon``: before any I/O callback of that turn). One per hub, not
    per process: a flush scheduled on a loop that then stopped must not
    hold back another loop's writes (tests run one loop each).
    """

    __slots__ = ("_due", "_scheduled")

    def __init__(self) -> None:
        self._due: list[Connection] = []
        self._scheduled = False

    def add(self, connection: Connection) -> None:
        self._due.append(connection)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        due, self._due = self._due, []
        for connection in due:
            connection.write_pending()


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
        "_pending",
        "_coalescer",
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
        coalescer: WriteCoalescer,
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
        # Frames of this turn of the loop, written together by the coalescer.
        self._pending: list[bytes] | None = None
        self._coalescer = coalescer
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
        if not queue:
            # The common case: the socket keeps up. The whole frame is written
            # at the end of this turn of the loop, with the socket's other
            # frames of the turn; no task, no await. Going through the queue
            # only when the socket is busy keeps frames in order.
            pending = self._pending
            if pending is not None:
                pending.append(wire_frame if wire_frame is not None else frames.wire_text(frame))
                return
            if not wire.closing and wire.transport.get_write_buffer_size() < WRITE_BUFFER_HIGH:
                self._pending = [wire_frame if wire_frame is not None else frames.wire_text(frame)]
                self._coalescer.add(self)
                return
        self.write_pending()  # what came before this frame leaves before it
        if queue is None:
            queue = self._queue = deque()
        queue.append(frame)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def write_pending(self) -> None:
        """Write the frames pushed in this turn of the loop, as one write."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        wire = self._wire
        if self.state is ConnectionState.CLOSED or wire.closing:
            return
        wire.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def lost(self) -> None:
        """The socket is gone: drop what is queued, write nothing more."""
        self.state = ConnectionState.CLOSED
        self._queue = None
        self._pending = None

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
        self.write_pending()
        while self._drainer is not None:
            await asyncio.shield(self._drainer)

    def close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` in the background: drop what is queued, stop queueing."""
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        self._queue = None
        self.write_pending()  # this turn's frames, as if written at once
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
        self.write_pending()  # pushed while close() waited for the queue
        try:
            # A peer that reads nothing never answers the close handshake:
            # the wire drops it after the timeout.
            await self._wire.close(code, reason, abort_after=CLOSE_TIMEOUT)
        finally:
            self.state = ConnectionState.CLOSED
