"""Client: one user's HTTP calls plus the WebSocket side, above all :meth:`Client.events`,
the self-healing stream (reconnect, catch up, dedupe) and :meth:`Client.send_ws`."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import msgspec

from tidings.client.calls import UserCalls
from tidings.client.conversations import Frame, conversation_path, message_of
from tidings.client.errors import ApiError
from tidings.client.websocket import Socket
from tidings.models import Message

#: Reconnect delays of :meth:`Client.events` and retries of :meth:`Client.send_ws`:
#: the first wait, doubled after each failure up to the cap, with jitter.
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 10.0
#: Catch-up reads history in pages of the contract's largest size...
CATCH_UP_PAGE = 200
#: ...and the chat list at its largest (this server's cap).
CHAT_LIST_LIMIT = 1000
#: Close codes after which reconnecting cannot help: the token is refused or revoked.
FATAL_CLOSE_CODES = {4001: "authentication failed", 4003: "token revoked"}


class _RawMessages(msgspec.Struct):
    messages: list[dict[str, Any]]


def _position(frame: Frame) -> tuple[str, int] | None:
    """``(conversation, seq)`` of a ``message`` event, None if it has no usable one."""
    message = frame.get("message")
    if not isinstance(message, dict):
        return None
    conversation, seq = message.get("conversation"), message.get("seq")
    if isinstance(conversation, str) and isinstance(seq, int) and not isinstance(seq, bool):
        return conversation, seq
    return None


def _jitter(delay: float) -> float:
    """A random wait between half of ``delay`` and ``delay``, so clients do not
    all come back at the same instant after a restart."""
    return random.uniform(delay / 2, delay)


# Failures of the network rather than answers of the server: worth a retry.
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class Client(UserCalls):
    """HTTP client of one user: ``async with Client(base_url, token=None) as c: ...``.

    Pass ``session`` to share one aiohttp session between many clients (the
    client then never closes it; mind its connector's ``limit``, which also
    caps open sockets). Without it the client makes its own, unlimited one on
    first use. ``token`` is sent as ``Authorization: Bearer``; :meth:`login`
    sets it, and you may set it yourself (a service token, a bad token, ...).

    :meth:`events` is the SDK's way to listen: one self-healing connection
    that yields every event once, and :meth:`send_ws` sends on it.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url, token, session=session)
        self._sockets: set[Socket] = set()
        #: The highest seq :meth:`events` has yielded (or skipped as old), per
        #: conversation. Fill it before the first :meth:`events` (from your own
        #: storage, say) to resume from there; read it to persist the position.
        self.last_seen: dict[str, int] = {}
        self._baselined = False
        self._streaming = False
        self._live: Socket | None = None
        self._went_live = asyncio.Event()
        self._closes = 0  # close() calls so far: a running events() ends on the next one

    async def close(self) -> None:
        """Close the sockets this client opened, and the session if the client created it.

        A running :meth:`events` then ends (its ``async for`` finishes).
        """
        self._closes += 1
        await asyncio.gather(*(sock.close() for sock in list(self._sockets)))
        await super().close()

    def ws_url(self) -> str:
        """The URL of ``GET /ws`` (``http`` -> ``ws``, ``https`` -> ``wss``)."""
        for plain, secure in (("https://", "wss://"), ("http://", "ws://")):
            if self.base_url.startswith(plain):
                return secure + self.base_url[len(plain) :] + "/ws"
        return self.base_url + "/ws"

    async def connect(self, *, auth: bool = True, heartbeat: float | None = None) -> Socket:
        """Open a WebSocket; with ``auth`` (the default), authenticate with ``self.token``.

        Raises ApiError when the server refuses the token (code
        ``"unauthorized"``) or the upgrade (``status`` set). With
        ``auth=False`` you get the bare socket: send the auth frame yourself,
        or call :meth:`Socket.authenticate`. ``heartbeat`` makes aiohttp ping
        every that many seconds (the contract asks real clients for 25 s).
        """
        token = self.token
        if auth and token is None:
            raise ValueError("connect(auth=True) needs a token: log in first or pass auth=False")
        try:
            ws = await self._http().ws_connect(
                self.ws_url(), autoping=True, heartbeat=heartbeat, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(exc.status, f"http_{exc.status}", exc.message) from exc
        sock = Socket(ws)
        self._sockets.add(sock)
        sock._reader.add_done_callback(lambda _: self._sockets.discard(sock))
        if token is not None and auth:
            try:
                await sock.authenticate(token)
            except BaseException:
                await sock.close()
                raise
        return sock

    # -- the SDK: one self-healing event stream ---------------------------------------

    @property
    def connected(self) -> bool:
        """True while :meth:`events` has its socket open and caught up."""
        return self._live is not None and not self._live.closed

    async def events(
        self,
        *,
        unread: bool = False,
        ping_interval: float = 25,
        max_delay: float = MAX_RETRY_DELAY,
    ) -> AsyncGenerator[Frame, None]:
        """Every event of this user, for as long as you iterate, surviving disconnects.

        ``async for event in client.events(): ...`` keeps one WebSocket open
        (authenticated with ``self.token``, pinged every ``ping_interval``
        seconds) and yields each event frame as a dict. When the connection
        drops (server restart, network, close 1001/1012/1013/4002) it
        reconnects after 0.2 s, doubling up to ``max_delay`` seconds, with
        jitter; then it catches up before yielding live events again: it reads
        the chat list and fetches every conversation ``after`` its last seen
        seq, yielding the missed messages as ordinary ``message`` events.

        ``message`` events come exactly once per (conversation, seq) and in seq
        order within a conversation, whatever mix of catch-up and live
        delivery brought them; a gap in the live stream is filled from
        history first. They include the user's own messages: those sent from
        other devices or over HTTP, and those sent with :meth:`send_ws`
        (whose ack stands in for the event the server does not send back).
        Other events (``read``, ``conversation``, ``push``, ...) pass through
        as they come; those sent while disconnected are lost (the chat list
        holds their outcome).

        The first connection starts from each conversation's current
        ``last_seq`` (only new messages), or with ``unread=True`` from its
        ``read_seq`` (unread messages first), except where :attr:`last_seen`
        already has a position. Conversations that appear later are read
        from their start. Raises ApiError ``"unauthorized"`` when the token is
        refused or revoked (close code 4001/4003 or HTTP 401), and on HTTP
        refusals other than 429/5xx; network failures are retried forever.
        One ``events()`` per client at a time; leave the loop (``break``, or
        :func:`contextlib.aclosing`) to close the socket.
        """
        if self.token is None:
            raise ValueError("events() needs a token: log in first")
        if self._streaming:
            raise RuntimeError("events() is already running on this client")
        self._streaming = True
        closes = self._closes
        delay = FIRST_RETRY_DELAY
        try:
            while True:
                sock: Socket | None = None
                try:
                    if not self._baselined:
                        await self._baseline(unread)
                    # Socket first, then history: nothing falls between the two.
                    sock = await self.connect(heartbeat=ping_interval)
                    async for frame in self._catch_up():
                        yield frame
                    self._live = sock
                    self._went_live.set()
                    delay = FIRST_RETRY_DELAY
                    async for frame in self._live_events(sock):
                        yield frame
                except ApiError as exc:
                    if self._closes != closes:
                        return
                    if exc.code == "unauthorized" or (exc.status is not None and not exc.retryable):
                        raise
                except _NETWORK_ERRORS:
                    if self._closes != closes:
                        return
                except RuntimeError:  # aiohttp's "Session is closed", from close()
                    if self._closes != closes:
                        return
                    raise
                finally:
                    if sock is not None:
                        if self._live is sock:
                            self._live = None
                            self._went_live.clear()
                        await sock.close()
                if self._closes != closes:
                    return  # the client was closed
                code = None if sock is None else sock.close_code
                if code in FATAL_CLOSE_CODES:
                    why = f"{FATAL_CLOSE_CODES[code]} (close code {code})"
                    raise ApiError(None, "unauthorized", why, body={"close_code": code})
                await asyncio.sleep(_jitter(delay))
                delay = min(delay * 2, max_delay)
        finally:
            self._streaming = False

    async def _baseline(self, unread: bool) -> None:
        """Where the first connection starts: now, or the first unread message."""
        for entry in await self.conversations(limit=CHAT_LIST_LIMIT):
            self.last_seen.setdefault(entry.id, entry.read_seq if unread else entry.last_seq)
        self._baselined = True

    async def _catch_up(self) -> AsyncIterator[Frame]:
        """The messages that came while disconnected (docs/protocol.md, guarantee 4)."""
        for entry in await self.conversations(limit=CHAT_LIST_LIMIT):
            if entry.last_seq > self.last_seen.get(entry.id, 0):
                async for frame in self._fetch_after(entry.id):
                    yield frame

    async def _fetch_after(self, conversation: str) -> AsyncIterator[Frame]:
        """History after the last seen seq, page by page, as ``message`` events."""
        path = conversation_path(conversation) + "/messages"
        while True:
            after = self.last_seen.get(conversation, 0)
            params = {"after": str(after), "limit": str(CATCH_UP_PAGE)}
            try:
                data = await self._call("GET", path, None, params)
            except ApiError as exc:
                if exc.code in ("not_member", "not_found"):
                    return  # left (or removed from) the conversation meanwhile
                raise
            page = msgspec.json.decode(data, type=_RawMessages).messages
            for message in page:
                frame: Frame = {"type": "message", "message": message}
                where = _position(frame)
                if where is not None and self._take(*where):
                    yield frame
            if len(page) < CATCH_UP_PAGE or self.last_seen.get(conversation, 0) <= after:
                return

    async def _live_events(self, sock: Socket) -> AsyncIterator[Frame]:
        """The socket's events, deduplicated, with gaps filled from history."""
        async for frame in sock.events():
            kind = frame.get("type")
            where = _position(frame) if kind == "message" else None
            if where is None:
                if kind == "conversation":
                    self._note_entry(frame.get("conversation"))
                yield frame
                continue
            conversation, seq = where
            if seq > self.last_seen.get(conversation, 0) + 1:
                async for missed in self._fetch_after(conversation):
                    yield missed
            if self._take(conversation, seq):
                yield frame

    def _note_entry(self, entry: object) -> None:
        """A conversation joined live starts where the join put it (its ``last_seq``)."""
        if isinstance(entry, dict):
            ident, last_seq = entry.get("id"), entry.get("last_seq")
            if isinstance(ident, str) and isinstance(last_seq, int):
                self.last_seen.setdefault(ident, last_seq)

    def _take(self, conversation: str, seq: int) -> bool:
        """Record (conversation, seq) as seen; True if it had not been before."""
        if seq <= self.last_seen.get(conversation, 0):
            return False
        self.last_seen[conversation] = seq
        return True

    async def send_ws(
        self,
        conversation: str,
        body: str,
        client_msg_id: str | None = None,
        *,
        retry_for: float = 30,
    ) -> Message:
        """Send on the :meth:`events` socket when it is open, else over HTTP; never twice.

        The message carries ``client_msg_id`` (a fresh ``uuid4().hex`` when
        None), and every retry reuses it, so however often the connection
        drops between the send and its ack, the server stores it once and
        the result is the original message. Retries follow a closed socket,
        a timeout, a network failure, ``unavailable``, ``rate_limited`` or a
        5xx, after the next reconnect of :meth:`events` or a backoff (0.2 s
        doubling, with jitter), for up to ``retry_for`` seconds; then the last
        failure is raised. Other refusals (``not_member``, ``too_large``, ...)
        raise ApiError at once. A message sent on the socket is also yielded by
        :meth:`events`, as the server sends no event to the sending connection.
        """
        msg_id = client_msg_id or uuid.uuid4().hex
        frame: Frame = {
            "type": "send",
            "conversation": conversation,
            "body": body,
            "client_msg_id": msg_id,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for
        delay = FIRST_RETRY_DELAY
        while True:
            sock = self._live
            failure: Exception
            try:
                if sock is None or sock.closed:
                    return await self.send(conversation, body, msg_id)
                answer = await sock._ask(frame, "ack")
                # Let events() yield it in its place (it dedupes, and fills any gap first).
                sock._events.put_nowait({"type": "message", "message": answer.get("message")})
                return message_of(answer)
            except ApiError as exc:
                if not exc.retryable:
                    raise
                failure = exc
            except _NETWORK_ERRORS as exc:
                failure = exc
            wait = _jitter(delay)
            if loop.time() + wait > deadline:
                raise failure
            await self._wait_live(wait)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _wait_live(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait ``timeout`` seconds, or less if :meth:`events` reconnects meanwhile."""
        if not self._streaming or self.connected:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.wait_for(self._went_live.wait(), timeout)
        except TimeoutError:
            pass
