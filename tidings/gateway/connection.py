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
from collections import deque
from collections.abc import Callable
from enum import Enum

from aiohttp import WSMsgType, web

from tidings.ids import UserId
from tidings.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0


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
        self._ws = ws
        self._transport = transport
        self._queue: deque[bytes] = deque()
        self._limit = queue_limit
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._on_slow = on_slow

    def push(self, frame: bytes) -> None:
        """Queue one encoded text frame; never blocks, never buffers without end."""
        if self.state is not ConnectionState.OPEN:
            return
        if len(self._queue) >= self._limit:
            log.info("connection %s of user %s is too far behind; closing", self.id, self.user)
            if self._on_slow is not None:
                self._on_slow()
            self.close_soon(1013, "too far behind")
            return
        self._queue.append(frame)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def _drain(self) -> None:
        try:
            while self._queue and self.state is ConnectionState.OPEN:
                await self._ws.send_frame(self._queue.popleft(), WSMsgType.TEXT)
        except Exception:
            # The peer went away mid-write; the read loop notices and cleans up.
            self._queue.clear()
        finally:
            self._drainer = None

    async def flush(self) -> None:
        """Wait until what is queued now has been handed to the socket."""
        while self._drainer is not None:
            await asyncio.shield(self._drainer)

    def close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` in the background: drop what is queued, stop queueing."""
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        self._queue.clear()
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def close(self, code: int, reason: str, handshake: float = CLOSE_TIMEOUT) -> None:
        """Close with ``code`` after what is queued has been written.

        ``handshake`` bounds the wait for the peer's close frame; a peer that
        vanished never sends one.
        """
        if self.state is ConnectionState.OPEN:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT)
            self.state = ConnectionState.CLOSING
            await self._close(code, reason, handshake)
        elif self._closer is not None:
            await asyncio.shield(self._closer)

    async def _close(self, code: int, reason: str, handshake: float = CLOSE_TIMEOUT) -> None:
        try:
            await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()), handshake)
        except Exception:
            # A peer that reads nothing never answers the close handshake.
            if self._transport is not None:
                self._transport.abort()
        finally:
            self.state = ConnectionState.CLOSED
