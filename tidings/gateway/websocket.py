"""``GET /ws``: authenticate, then read frames until the client leaves or idles.

Sends are not awaited in the read loop: each is validated and queued for
the group-commit writer, which queues the ack on this connection right
after the commit. A client can therefore pipeline sends, and one slow
commit never stalls its reads of other frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from tidings.errors import ErrorCode, TidingsError
from tidings.gateway import frames
from tidings.gateway.connection import Connection
from tidings.gateway.context import Edge
from tidings.ids import UserId
from tidings.service.accounts import hash_token
from tidings.store import StoredMessage, WriteOutcome

log = logging.getLogger(__name__)

CLOSE_AUTH = 4001
CLOSE_IDLE = 4002
CLOSE_POLICY = 1008

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)
_END = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


async def websocket(request: web.Request) -> web.StreamResponse:
    edge: Edge = request.app[Edge.KEY]
    settings = edge.settings
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, request.host, settings.allowed_origins):
        # A page on another site must not ride on a user's token (answered
        # before the upgrade, as plain HTTP 403).
        raise TidingsError(ErrorCode.FORBIDDEN, f"WebSocket origin {origin!r} is not allowed")
    ws = web.WebSocketResponse(
        autoping=False,  # a client's protocol ping must count as activity
        max_msg_size=settings.max_frame_bytes,
        compress=False,  # a zlib context per socket costs more memory than it saves
    )
    await ws.prepare(request)
    if not edge.hub.accepting:
        # This node cannot hear the other nodes right now: try another, or later.
        await ws.close(code=1013, message=b"node not ready, try again")
        return ws
    try:
        connection = await _authenticate(edge, ws, request)
    except (ConnectionError, RuntimeError):
        connection = None  # the peer left during the handshake
    if connection is None:
        return ws
    if not edge.hub.accepting:
        # The broker went down while this socket authenticated, after the
        # sweep that sent the others away: it would miss other nodes' events.
        await connection.close(1012, "reconnect: this node lost its broker")
        return ws
    edge.hub.add(connection)
    try:
        await _serve(edge, ws, connection)
    except (ConnectionError, RuntimeError):
        pass  # the peer vanished mid-write (a pong): nothing to answer any more
    finally:
        edge.hub.remove(connection)
        if not ws.closed and connection.state is not connection.state.CLOSED:
            await connection.close(1000, "")
    return ws


async def _authenticate(
    edge: Edge, ws: web.WebSocketResponse, request: web.Request
) -> Connection | None:
    settings = edge.settings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.auth_timeout_seconds
    while True:
        try:
            message = await ws.receive(timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            await ws.close(code=CLOSE_AUTH, message=b"no auth frame in time")
            return None
        if message.type is WSMsgType.PING:
            # A protocol-level keepalive is not a frame of the contract: answer it.
            await ws.pong(message.data)
            continue
        if message.type not in _DATA:
            return None
        break
    try:
        frame = frames.decode(message.data)
        token = frame.fields.get("token")
        if frame.type != "auth" or not isinstance(token, str):
            raise TidingsError(ErrorCode.UNAUTHORIZED, "the first frame must be an auth frame")
        user_id = await edge.accounts.authenticate(token)
        user = await edge.accounts.user(user_id)
    except TidingsError as exc:
        if exc.code is ErrorCode.UNAVAILABLE:
            # Nothing but `unauthorized` may precede auth_ok, and the token may
            # well be good: close with 1013 ("try again later") and no frame.
            await ws.close(code=1013, message=b"storage unavailable, try again")
            return None
        await _refuse(ws, exc.message if exc.code is ErrorCode.UNAUTHORIZED else "bad auth frame")
        return None
    limit = settings.max_connections_per_user
    if limit and await _open_sockets(edge, user_id) >= limit:
        await ws.close(code=CLOSE_POLICY, message=b"too many connections for this user")
        return None
    connection = Connection(
        edge.hub.next_id(),
        user_id,
        hash_token(token),
        ws,
        request.transport,
        queue_limit=settings.send_queue_frames,
        rate_limit=settings.rate_limit_connection,
        on_slow=edge.metrics.slow_readers.inc,
    )
    edge.metrics.connections_opened.inc()
    connection.push(frames.auth_ok(user))
    return connection


async def _open_sockets(edge: Edge, user: UserId) -> int:
    """The user's sockets on every node; this node's alone if Redis does not answer."""
    try:
        return sum((await edge.presence.connections([user])).values())
    except Exception:
        return len(edge.hub.connections_of(user))


async def _refuse(ws: web.WebSocketResponse, reason: str) -> None:
    await ws.send_frame(frames.error(ErrorCode.UNAUTHORIZED, reason), WSMsgType.TEXT)
    await ws.close(code=CLOSE_AUTH, message=b"authentication failed")


async def _serve(edge: Edge, ws: web.WebSocketResponse, connection: Connection) -> None:
    # No timeout here: Hub.close_idle closes the connections that went quiet.
    while connection.state is connection.state.OPEN:
        message = await ws.receive()
        connection.last_seen = time.monotonic()
        kind = message.type
        if kind in _DATA:
            await _handle(edge, connection, message.data)
        elif kind is WSMsgType.PING:
            await ws.pong(message.data)
        elif kind in _END:
            return


async def _handle(edge: Edge, connection: Connection, data: str | bytes) -> None:
    ref: Any = frames.NO_REF
    try:
        frame = frames.decode(data)
        ref = frame.ref
        if frame.type == "send":
            _send(edge, connection, frame)
        elif frame.type == "read":
            conversation = _string(frame.fields, "conversation")
            entry = await edge.conversations.mark_read(
                connection.user, conversation, frame.fields.get("seq"), origin=connection.id
            )
            connection.push(frames.ack_conversation(ref, entry))
        elif frame.type == "ping":
            connection.push(frames.pong(ref))
        elif frame.type == "auth":
            raise TidingsError(ErrorCode.BAD_REQUEST, "this connection is already authenticated")
        else:
            raise TidingsError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame.type!r}")
    except frames.FrameError as exc:
        _error(edge, connection, exc.code, exc.message, exc.ref)
    except TidingsError as exc:
        _error(edge, connection, exc.code, exc.message, ref)
    except Exception:
        log.exception("a frame of user %s failed", connection.user)
        _error(edge, connection, ErrorCode.INTERNAL, "internal error", ref)


def _error(edge: Edge, connection: Connection, code: ErrorCode, message: str, ref: Any) -> None:
    edge.metrics.errors.labels(code.value, "websocket").inc()
    connection.push(frames.error(code, message, ref))


def _send(edge: Edge, connection: Connection, frame: frames.ClientFrame) -> None:
    ref = frame.ref
    if not connection.bucket.take():
        raise TidingsError(ErrorCode.RATE_LIMITED, "this connection sends too fast")
    fields = frame.fields

    def acked(stored: StoredMessage) -> None:
        connection.push(frames.ack_message(ref, stored.message))

    def settled(future: asyncio.Future[WriteOutcome]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            return
        if isinstance(error, TidingsError):
            _error(edge, connection, error.code, error.message, ref)
        else:
            _error(edge, connection, ErrorCode.INTERNAL, "internal error", ref)

    future = edge.conversations.submit_send(
        connection.user,
        _string(fields, "conversation"),
        fields.get("body"),
        fields.get("client_msg_id"),
        on_committed=acked,
        origin=connection.id,
    )
    future.add_done_callback(settled)


def _string(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise TidingsError(ErrorCode.BAD_REQUEST, f"{name}: a string")
    return value


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
