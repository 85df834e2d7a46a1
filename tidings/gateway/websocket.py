"""``GET /ws``: the upgrade, then one socket's life: authentication, then its frames.

aiohttp answers the HTTP request; after the upgrade the socket is moved to
a :class:`~tidings.gateway.wire.WebSocketWire` (see ``wire.py`` for why)
whose listener is a :class:`Session`. Frames are handled in the order they
arrive, by callbacks, without a task per socket: a send is validated and
queued for the group-commit writer, which queues the ack on this
connection right after the commit, so a client can pipeline sends and one
slow commit never stalls its other frames. Only a frame that must wait for
the database (auth, read) runs as a task, and the frames behind it wait.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from tidings.errors import ErrorCode, TidingsError
from tidings.gateway import frames
from tidings.gateway.connection import Connection
from tidings.gateway.context import Edge
from tidings.gateway.wire import WebSocketWire, take_over
from tidings.ids import UserId
from tidings.models import User
from tidings.service.accounts import hash_token
from tidings.service.conversations import Extras
from tidings.store import EntryRequest, StoredMessage

log = logging.getLogger(__name__)

CLOSE_AUTH = 4001
CLOSE_IDLE = 4002
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
# Frames that may wait behind a slow one before the socket stops being read.
WAITING_FRAMES_HIGH = 64
# Seconds a new socket waits for Redis to route its user's events here, before
# it is closed with 1013 (try again later) instead of getting auth_ok.
ANNOUNCE_TIMEOUT = 5.0


async def websocket(request: web.Request) -> web.StreamResponse:
    edge: Edge = request.app[Edge.KEY]
    settings = edge.settings
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, request.host, settings.allowed_origins):
        # A page on another site must not ride on a user's token (answered
        # before the upgrade, as plain HTTP 403).
        raise TidingsError(ErrorCode.FORBIDDEN, f"WebSocket origin {origin!r} is not allowed")
    key = upgrade_key(request)
    accepting = edge.hub.accepting
    wire = take_over(
        request,
        key,
        settings.max_frame_bytes,
        lambda wire: Session(edge, wire, authenticating=accepting),
    )
    if wire is not None and not accepting:
        # This node cannot hear the other nodes right now: try another, or later.
        wire.start_close(1013, "node not ready, try again")
    # Never written: the socket is no longer aiohttp's, or the client left.
    return web.Response(status=101)


def upgrade_key(request: web.Request) -> str:
    """The client's ``Sec-WebSocket-Key`` of a valid upgrade request (RFC 6455 §4.2.1)."""
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    headers = request.headers
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        raise TidingsError(ErrorCode.BAD_REQUEST, "GET /ws needs Upgrade: websocket", status=400)
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        raise TidingsError(ErrorCode.BAD_REQUEST, "GET /ws needs Connection: Upgrade", status=400)
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        # RFC 6455 §4.2.2: name the versions spoken here.
        raise web.HTTPUpgradeRequired(
            reason="Sec-WebSocket-Version 13 only", headers={"Sec-WebSocket-Version": "13"}
        )
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        raise TidingsError(ErrorCode.BAD_REQUEST, "a bad Sec-WebSocket-Key", status=400)
    return key


class Session:
    """One upgraded socket: its auth deadline, then its :class:`Connection` and frames."""

    __slots__ = (
        "edge",
        "wire",
        "connection",
        "_auth_timer",
        "_task",
        "_waiting",
        "_reading_paused",
        "_ended",
    )

    def __init__(self, edge: Edge, wire: WebSocketWire, *, authenticating: bool) -> None:
        self.edge = edge
        self.wire = wire
        self.connection: Connection | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        edge.hub.add_unauthenticated(wire)
        if authenticating:
            self._auth_timer = asyncio.get_running_loop().call_later(
                edge.settings.auth_timeout_seconds, self._auth_timed_out
            )
        # A frame's coroutine while it runs (auth, read); later frames wait in order.
        self._task: asyncio.Task[None] | None = None
        self._waiting: deque[str | bytes] | None = None
        self._reading_paused = False
        self._ended = False

    # -- the wire's listener ------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        connection = self.connection
        if connection is not None:
            connection.last_seen = time.monotonic()
        if self._task is not None:
            waiting = self._waiting
            if waiting is None:
                waiting = self._waiting = deque()
            waiting.append(data)
            if len(waiting) >= WAITING_FRAMES_HIGH and not self._reading_paused:
                self._reading_paused = True
                self.wire.transport.pause_reading()
            return
        self._dispatch(data)

    def on_activity(self) -> None:
        # A protocol-level ping or pong counts as activity, like a frame.
        if self.connection is not None:
            self.connection.last_seen = time.monotonic()

    def on_closed(self) -> None:
        self._ended = True
        self._waiting = None
        self.edge.hub.discard_unauthenticated(self.wire)
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        connection = self.connection
        if connection is not None:
            connection.lost()
            self.edge.hub.remove(connection)

    # -- frames -------------------------------------------------------------

    def _dispatch(self, data: str | bytes) -> None:
        connection = self.connection
        if connection is not None:
            pending = _handle(self.edge, connection, data)
        elif self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
            pending = self._authenticate(data)
        else:
            return  # refused or closing: nothing more is read
        if pending is not None:
            self._task = asyncio.get_running_loop().create_task(pending)
            self._task.add_done_callback(self._resume)

    def _resume(self, task: asyncio.Task[None]) -> None:
        self._task = None
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("a socket's frame failed", exc_info=error)
            if self.connection is None:
                # Authentication broke (a bug, not a refusal): a socket left
                # neither authenticated nor timed would wait forever.
                self.wire.start_close(CLOSE_INTERNAL, "internal error")
        waiting = self._waiting
        while waiting and self._task is None and not self._ended:
            self._dispatch(waiting.popleft())
        if not waiting:
            self._waiting = None
        if self._reading_paused and (not waiting or len(waiting) < WAITING_FRAMES_HIGH):
            self._reading_paused = False
            if not self._ended:
                self.wire.transport.resume_reading()

    # -- authentication -----------------------------------------------------

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        self.wire.start_close(CLOSE_AUTH, "no auth frame in time")

    async def _authenticate(self, data: str | bytes) -> None:
        edge = self.edge
        wire = self.wire
        try:
            frame = frames.decode(data)
            if not isinstance(frame, frames.AuthFrame):
                raise TidingsError(ErrorCode.UNAUTHORIZED, "the first frame must be an auth frame")
            token = frame.token
            user_id = await edge.accounts.authenticate(token)
            user = await edge.accounts.user(user_id)
        except TidingsError as exc:
            if exc.code is ErrorCode.UNAVAILABLE:
                # Nothing but `unauthorized` may precede auth_ok, and the token
                # may well be good: close with 1013 ("try again later"), no frame.
                wire.start_close(1013, "storage unavailable, try again")
                return
            reason = exc.message if exc.code is ErrorCode.UNAUTHORIZED else "bad auth frame"
            wire.write(frames.wire_text(frames.error(ErrorCode.UNAUTHORIZED, reason)))
            wire.start_close(CLOSE_AUTH, "authentication failed")
            return
        settings = edge.settings
        limit = settings.max_connections_per_user
        if limit and await _open_sockets(edge, user_id) >= limit:
            wire.start_close(CLOSE_POLICY, "too many connections for this user")
            return
        if self._ended or wire.closing:
            return  # the peer left while its token was checked
        # Before auth_ok: from here on every node routes this user's events to
        # this node, so the client's catch-up after auth_ok leaves no gap.
        try:
            async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                await edge.presence.announce(user_id)
            if not (self._ended or wire.closing):
                self._open(user_id, user, token)
        except TimeoutError:
            wire.start_close(1013, "presence unavailable, try again")
        finally:
            edge.presence.settle(user_id)

    def _open(self, user_id: UserId, user: User, token: str) -> None:
        """Send auth_ok and hand the connection to the hub, in one step of the loop."""
        edge = self.edge
        wire = self.wire
        settings = edge.settings
        connection = Connection(
            edge.hub.next_id(),
            user_id,
            hash_token(token),
            wire,
            queue_limit=settings.send_queue_frames,
            rate_limit=settings.rate_limit_connection,
            coalescer=edge.hub.writes,
            on_slow=edge.metrics.slow_readers.inc,
        )
        edge.metrics.connections_opened.inc()
        connection.push(frames.auth_ok(user))
        if not edge.hub.accepting:
            # The broker went down while this socket authenticated, after the
            # sweep that sent the others away: it would miss other nodes' events.
            connection.close_soon(1012, "reconnect: this node lost its broker")
            return
        self.connection = connection
        edge.hub.discard_unauthenticated(wire)
        edge.hub.add(connection)


async def _open_sockets(edge: Edge, user: UserId) -> int:
    """The user's sockets on every node; this node's alone if Redis does not answer."""
    try:
        return sum((await edge.presence.connections([user])).values())
    except Exception:
        return len(edge.hub.connections_of(user))


def _handle(
    edge: Edge, connection: Connection, data: str | bytes
) -> Coroutine[Any, Any, None] | None:
    """Handle one frame; a coroutine to run when it must wait for the database."""
    ref: Any = frames.NO_REF
    try:
        frame = frames.decode(data)
        ref = frame.ref
        if isinstance(frame, frames.SendFrame):
            _send(edge, connection, frame)
        elif isinstance(frame, frames.RecallFrame | frames.EditFrame):
            _notice(edge, connection, frame)
        elif isinstance(frame, frames.ReadFrame):
            return _read(edge, connection, frame)
        elif isinstance(frame, frames.TypingFrame):
            return _typing(edge, connection, frame)
        elif isinstance(frame, frames.PingFrame):
            connection.push(frames.pong(ref))
        else:
            raise TidingsError(ErrorCode.BAD_REQUEST, "this connection is already authenticated")
    except frames.FrameError as exc:
        _error(edge, connection, exc.code, exc.message, exc.ref)
    except TidingsError as exc:
        _error(edge, connection, exc.code, exc.message, ref)
    except Exception:
        log.exception("a frame of user %s failed", connection.user)
        _error(edge, connection, ErrorCode.INTERNAL, "internal error", ref)
    return None


async def _read(edge: Edge, connection: Connection, frame: frames.ReadFrame) -> None:
    ref = frame.ref
    try:
        entry = await edge.conversations.mark_read(
            connection.user, frame.conversation, frame.seq, origin=connection.id
        )
        connection.push(frames.ack_conversation(ref, edge.links.entry(entry)))
    except TidingsError as exc:
        _error(edge, connection, exc.code, exc.message, ref)
    except Exception:
        log.exception("a read of user %s failed", connection.user)
        _error(edge, connection, ErrorCode.INTERNAL, "internal error", ref)


async def _typing(edge: Edge, connection: Connection, frame: frames.TypingFrame) -> None:
    try:
        await edge.typing.typing(connection.user, frame.conversation)
    except TidingsError as exc:
        _error(edge, connection, exc.code, exc.message, frame.ref)
    except Exception:
        log.exception("a typing frame of user %s failed", connection.user)
        _error(edge, connection, ErrorCode.INTERNAL, "internal error", frame.ref)


def _error(edge: Edge, connection: Connection, code: ErrorCode, message: str, ref: Any) -> None:
    edge.metrics.errors.labels(code.value, "websocket").inc()
    connection.push(frames.error(code, message, ref))


def _send(edge: Edge, connection: Connection, frame: frames.SendFrame) -> None:
    ref = frame.ref
    if not connection.bucket.take():
        raise TidingsError(ErrorCode.RATE_LIMITED, "this connection sends too fast")
    acked, failed = _answers(edge, connection, ref)
    request = edge.conversations.send_request(
        connection.user, frame.conversation, frame.body, frame.client_msg_id, _extras(frame)
    )
    # Callbacks, not a future: a future would cost one more turn of the
    # loop per message just to learn that nothing went wrong.
    edge.conversations.queue(request, on_stored=acked, on_failed=failed, origin=connection.id)


def _notice(
    edge: Edge, connection: Connection, frame: frames.RecallFrame | frames.EditFrame
) -> None:
    """A recall or an edit: a notice at its own seq, acked in commit order like a send."""
    if not connection.bucket.take():
        raise TidingsError(ErrorCode.RATE_LIMITED, "this connection sends too fast")
    conversations = edge.conversations
    request: EntryRequest
    if isinstance(frame, frames.EditFrame):
        request = conversations.edit_request(
            connection.user, frame.conversation, frame.seq, frame.body, frame.client_msg_id
        )
    else:
        request = conversations.recall_request(
            connection.user, frame.conversation, frame.seq, frame.client_msg_id
        )
    acked, failed = _answers(edge, connection, frame.ref)
    conversations.queue(request, on_stored=acked, on_failed=failed, origin=connection.id)


def _answers(
    edge: Edge, connection: Connection, ref: Any
) -> tuple[Callable[[StoredMessage], None], Callable[[TidingsError], None]]:
    def acked(stored: StoredMessage) -> None:
        connection.push(frames.ack_message(ref, edge.links.message(stored.message)))

    def failed(error: TidingsError) -> None:
        _error(edge, connection, error.code, error.message, ref)

    return acked, failed


def _extras(frame: frames.SendFrame) -> Extras:
    forward = None if frame.forward is None else (frame.forward.conversation, frame.forward.seq)
    return Extras.of(
        frame.kind, frame.reply_to, forward, frame.mentions, frame.mention_all, frame.file_id
    )


def origin_allowed(origin: str, host: str, allowed: str) -> bool:
    """The page's origin is this server's own, or one of ``allowed`` ("*": any)."""
    listed = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
    if "*" in listed or origin.rstrip("/") in listed:
        return True
    parsed = urlsplit(origin)
    if not parsed.hostname:
        return False
    own = urlsplit(f"//{host}")
    return parsed.hostname == own.hostname
