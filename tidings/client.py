"""A typed async client and SDK for the tidings wire contract (PROTOCOL.md).

The SDK in six lines: one user's client that sends, then keeps a
connection open and sees every event, reconnecting and catching up by
itself so that no message is missed or seen twice::

    async with Client("http://127.0.0.1:8080", token) as c:
        await c.send("p:1-2", "hello")
        async for event in c.events():        # {"type": "message", "message": {...}}, ...
            if event["type"] == "message":
                print(event["message"]["body"])

:class:`Client` speaks HTTP and opens :class:`Socket` connections by hand
when you want the frames themselves. Answers decode into the Structs of
:mod:`tidings.models`; every refusal raises :class:`ApiError` with the
contract's error code. Events (``message``, ``read``, ``conversation``,
``push``, ...) stay raw dicts::

    async with Client("http://127.0.0.1:8080") as alice:
        await alice.signup("alice", "correct horse")
        await alice.login("alice", "correct horse")
        async with await alice.connect() as sock:
            sent = await sock.send("p:1-2", "hello", client_msg_id="m1")
            event = await sock.next_event(timeout=5)   # e.g. {"type": "message", ...}
            history = await alice.messages(sent.conversation, after=0)

Keep reading events (``next_event``/``events``): the server cuts off a
connection whose unread backlog grows too large (close code 1013).

:class:`AdminClient` is the business backend's side: the integration API
under ``/api/v1/admin``, authenticated with the server's service token
(create users, mint their tokens, push events, presence, send in a user's
name, manage groups, stats)::

    async with AdminClient("http://127.0.0.1:8080", "s3cret") as admin:
        user = await admin.create_user("alice", "Alice")
        token = await admin.mint_token(user.id)      # hand it to the app's client
        await admin.push({"kind": "order_shipped"}, user_ids=[user.id])
"""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from tidings.models import Conversation, Group, Message, Session, User

Frame = dict[str, object]
Params = dict[str, str] | None
T = TypeVar("T")

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


class ApiError(Exception):
    """An error answer of the server: HTTP (``status`` set) or a WebSocket error frame.

    Branch on ``code`` (``"not_member"``, ``"rate_limited"``, ...), not on the
    message. Two codes come from this client, not the server: ``"closed"``
    (the socket closed before the answer came) and ``"unexpected"`` (an
    answer of the wrong type). ``body`` holds the decoded answer, if any.
    :meth:`Client.events` raises ``"unauthorized"`` with ``body``
    ``{"close_code": 4001 or 4003}`` when the server closes its socket for a
    refused or revoked token.
    """

    def __init__(self, status: int | None, code: str, message: str, *, body: object = None):
        where = "ws" if status is None else f"HTTP {status}"
        super().__init__(f"{where} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (with the same ``client_msg_id``):
        a closed socket, storage down, a rate limit, or a 5xx."""
        if self.code in ("closed", "unavailable", "rate_limited"):
            return True
        return self.status is not None and (self.status == 429 or self.status >= 500)


def private_conversation(a: int, b: int) -> str:
    """The id of the private conversation of users ``a`` and ``b``: ``p:{low}-{high}``."""
    return f"p:{min(a, b)}-{max(a, b)}"


def group_conversation(group_id: int) -> str:
    """The id of the conversation of group ``group_id``: ``g:{group_id}``."""
    return f"g:{group_id}"


def message_of(event: Frame) -> Message:
    """The Message of a ``message`` event (or of an ack of a send), as a Struct."""
    return msgspec.convert(event.get("message"), type=Message)


class GroupOnline(msgspec.Struct, frozen=True):
    """``GET /api/v1/admin/groups/{id}/online``: members, those online, their connections."""

    members: int
    online: int
    connections: int


class NodeStats(msgspec.Struct, frozen=True):
    """One server process of :class:`Stats`."""

    node: str
    connections: int
    users_online: int
    messages_per_second: float


class Stats(msgspec.Struct, frozen=True):
    """``GET /api/v1/admin/stats``: open connections in all, and per node."""

    connections: int
    nodes: list[NodeStats]


class _Conversations(msgspec.Struct):
    conversations: list[Conversation]


class _Messages(msgspec.Struct):
    messages: list[Message]


class _RawMessages(msgspec.Struct):
    messages: list[dict[str, Any]]


class _Users(msgspec.Struct):
    users: list[User]


class _Token(msgspec.Struct):
    token: str


class _Pushed(msgspec.Struct):
    connections: int


class _Presence(msgspec.Struct):
    online: dict[str, bool]


def _decode_or_text(data: bytes) -> object:
    """JSON of ``data``; None when empty; the text itself when it is not JSON."""
    if not data:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", "replace")


def _error_of(status: int | None, body: object) -> ApiError:
    """The ApiError for an HTTP error body or a WebSocket error frame."""
    detail: object = body
    if status is not None:
        detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        message = detail.get("message")
        return ApiError(status, detail["code"], str(message or ""), body=body)
    fallback = "unexpected" if status is None else f"http_{status}"
    text = body if isinstance(body, str) else repr(body)
    return ApiError(status, fallback, text[:300], body=body)


def _ref_key(ref: object) -> bytes:
    """A hashable key for any JSON ``ref`` (objects compare regardless of key order)."""
    return msgspec.json.encode(ref, order="sorted")


def _conversation_path(conversation: str, base: str = "/api/v1/conversations/") -> str:
    return base + quote(conversation, safe=":")


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


class _Http:
    """The HTTP plumbing shared by :class:`Client` and :class:`AdminClient`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session = session
        self._owns_session = session is None

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def _exchange(
        self, method: str, path: str, json: object, params: Params = None, headers: Params = None
    ) -> tuple[int, bytes]:
        sent = {"Accept": "application/json"}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        data: bytes | None = None
        if json is not None:
            data = json if isinstance(json, bytes) else msgspec.json.encode(json)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        http = self._http()
        async with http.request(
            method, self.base_url + path, data=data, params=params, headers=sent
        ) as r:
            return r.status, await r.read()

    async def _call(
        self, method: str, path: str, json: object = None, params: Params = None
    ) -> bytes:
        status, data = await self._exchange(method, path, json, params)
        if not 200 <= status < 300:
            raise _error_of(status, _decode_or_text(data))
        return data

    async def _fetch(
        self, into: type[T], method: str, path: str, json: object = None, params: Params = None
    ) -> T:
        return msgspec.json.decode(await self._call(method, path, json, params), type=into)

    async def request(
        self, method: str, path: str, json: object = None, *, headers: Params = None
    ) -> tuple[int, object]:
        """Send any request and return ``(status, body)``, whatever the status.

        ``path`` starts with ``/`` and may carry a query string. ``json`` is
        encoded as JSON, except ``bytes``, which go as the body verbatim (use
        them for malformed JSON); None sends no body. The body comes back
        decoded from JSON, None when empty, or as text when it is not JSON.
        Network failures still raise aiohttp's exceptions.
        """
        status, data = await self._exchange(method, path, json, headers=headers)
        return status, _decode_or_text(data)


class Client(_Http):
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

    async def signup(self, username: str, password: str, display_name: str | None = None) -> User:
        """Create an account (it does not log in: call :meth:`login` next)."""
        body: dict[str, str] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        return await self._fetch(User, "POST", "/api/v1/users", body)

    async def login(self, username: str, password: str) -> Session:
        """Log in and use the new token for every later call and :meth:`connect`."""
        body = {"username": username, "password": password}
        session = await self._fetch(Session, "POST", "/api/v1/sessions", body)
        self.token = session.token
        return session

    async def logout(self) -> None:
        """Revoke the current token. ``self.token`` is kept (now useless); reset it if you like."""
        await self._call("DELETE", "/api/v1/sessions/current")

    async def me(self) -> User:
        return await self._fetch(User, "GET", "/api/v1/me")

    async def user(self, user_id: int) -> User:
        return await self._fetch(User, "GET", f"/api/v1/users/{user_id}")

    async def create_group(self, name: str, member_ids: list[int]) -> Group:
        """Create a group owned by the caller, who is a member whether listed or not."""
        body = {"name": name, "member_ids": member_ids}
        return await self._fetch(Group, "POST", "/api/v1/groups", body)

    async def group(self, group_id: int) -> Group:
        return await self._fetch(Group, "GET", f"/api/v1/groups/{group_id}")

    async def add_members(self, group_id: int, user_ids: list[int]) -> Group:
        """Add users to a group (owner only) and return the group as it is now."""
        path = f"/api/v1/groups/{group_id}/members"
        return await self._fetch(Group, "POST", path, {"user_ids": user_ids})

    async def remove_member(self, group_id: int, user_id: int) -> None:
        """Remove a member (the owner removes anyone; pass your own id to leave)."""
        await self._call("DELETE", f"/api/v1/groups/{group_id}/members/{user_id}")

    async def conversations(self, limit: int | None = None) -> list[Conversation]:
        """The caller's chat list, newest first (server default: 100 entries)."""
        params = None if limit is None else {"limit": str(limit)}
        found = await self._fetch(_Conversations, "GET", "/api/v1/conversations", None, params)
        return found.conversations

    async def messages(
        self,
        conversation: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """A page of history, ascending by seq: the latest by default, else just
        ``before`` or ``after`` a seq. To catch up after a reconnect, pass
        ``after=<last seen seq>`` and repeat until a page comes back short."""
        given = {"before": before, "after": after, "limit": limit}
        params = {key: str(value) for key, value in given.items() if value is not None}
        path = _conversation_path(conversation) + "/messages"
        return (await self._fetch(_Messages, "GET", path, None, params)).messages

    async def send(self, conversation: str, body: str, client_msg_id: str | None = None) -> Message:
        """Send a message. Give a ``client_msg_id`` to retry safely: a repeat
        returns the original message instead of storing a second one."""
        payload: dict[str, str] = {"body": body}
        if client_msg_id is not None:
            payload["client_msg_id"] = client_msg_id
        path = _conversation_path(conversation) + "/messages"
        return await self._fetch(Message, "POST", path, payload)

    async def mark_read(self, conversation: str, seq: int) -> Conversation:
        """Mark messages up to ``seq`` read; returns the updated chat-list entry."""
        path = _conversation_path(conversation) + "/read"
        return await self._fetch(Conversation, "POST", path, {"seq": seq})

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
        """The messages that came while disconnected (PROTOCOL.md, guarantee 4)."""
        for entry in await self.conversations(limit=CHAT_LIST_LIMIT):
            if entry.last_seq > self.last_seen.get(entry.id, 0):
                async for frame in self._fetch_after(entry.id):
                    yield frame

    async def _fetch_after(self, conversation: str) -> AsyncIterator[Frame]:
        """History after the last seen seq, page by page, as ``message`` events."""
        path = _conversation_path(conversation) + "/messages"
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


class AdminClient(_Http):
    """The integration API of a business backend: ``/api/v1/admin/...``.

    ``async with AdminClient(base_url, service_token) as admin: ...``; every
    call sends ``Authorization: Bearer <service_token>`` and raises ApiError on
    a refusal like :class:`Client` does: ``forbidden`` (403) when the server
    has no ``TIDINGS_SERVICE_TOKEN``, ``unauthorized`` (401) for a wrong one,
    ``not_found``, ``username_taken``, ``bad_request``, ...
    ``session`` is shared as in :class:`Client`.
    """

    _BASE = "/api/v1/admin"

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url, service_token, session=session)

    async def create_user(self, username: str, display_name: str | None = None) -> User:
        """Create a user without a password (the backend logs its users in itself).

        Raises ApiError ``username_taken`` (409) if the name exists, in any case.
        """
        body: dict[str, str] = {"username": username}
        if display_name is not None:
            body["display_name"] = display_name
        return await self._fetch(User, "POST", f"{self._BASE}/users", body)

    async def users(self, after_id: int = 0, limit: int = 100) -> list[User]:
        """One page of users, ascending by id, with ids above ``after_id`` (limit ≤ 1000)."""
        params = {"after_id": str(after_id), "limit": str(limit)}
        return (await self._fetch(_Users, "GET", f"{self._BASE}/users", None, params)).users

    async def iter_users(self, *, page: int = 1000) -> AsyncIterator[User]:
        """Every user, ascending by id, fetched ``page`` at a time."""
        after = 0
        while True:
            found = await self.users(after, page)
            for user in found:
                yield user
            if len(found) < page:
                return
            after = found[-1].id

    async def user(self, user_id: int) -> User:
        return await self._fetch(User, "GET", f"{self._BASE}/users/{user_id}")

    async def set_display_name(self, user_id: int, display_name: str) -> User:
        body = {"display_name": display_name}
        return await self._fetch(User, "PATCH", f"{self._BASE}/users/{user_id}", body)

    async def mint_token(self, user_id: int) -> str:
        """A new token for that user: give it to the user's client (``Client(url, token)``)."""
        path = f"{self._BASE}/users/{user_id}/tokens"
        return (await self._fetch(_Token, "POST", path)).token

    async def revoke_tokens(self, user_id: int) -> None:
        """Revoke every token of the user; its open sockets close with 4003."""
        await self._call("DELETE", f"{self._BASE}/users/{user_id}/tokens")

    async def push(
        self,
        event: object,
        *,
        user_ids: Iterable[int] | None = None,
        group_id: int | None = None,
        all: bool = False,  # the wire's name
    ) -> int:
        """Send ``{"type": "push", "event": event}`` to every open connection of
        ``user_ids``, of the members of ``group_id``, or of everyone (``all=True``).

        Give exactly one of the three. Returns how many connections it reached.
        """
        body: dict[str, object] = {"event": event}
        if user_ids is not None:
            body["user_ids"] = list(user_ids)
        if group_id is not None:
            body["group_id"] = group_id
        if all:
            body["all"] = True
        if len(body) != 2:
            raise ValueError("push() needs exactly one of user_ids, group_id or all=True")
        return (await self._fetch(_Pushed, "POST", f"{self._BASE}/push", body)).connections

    async def presence(self, user_ids: Iterable[int]) -> dict[int, bool]:
        """Whether each user has an open connection on any node: ``{id: online}``."""
        ids = ",".join(str(user_id) for user_id in user_ids)
        path = f"{self._BASE}/presence"
        found = await self._fetch(_Presence, "GET", path, None, {"user_ids": ids})
        return {int(user_id): online for user_id, online in found.online.items()}

    async def send_as(
        self, sender_id: int, conversation: str, body: str, client_msg_id: str | None = None
    ) -> Message:
        """Send a message in the name of ``sender_id`` (who must be a member).

        A repeat of the same (sender, ``client_msg_id``) returns the original.
        """
        payload: dict[str, object] = {"sender_id": sender_id, "body": body}
        if client_msg_id is not None:
            payload["client_msg_id"] = client_msg_id
        path = _conversation_path(conversation, f"{self._BASE}/conversations/") + "/messages"
        return await self._fetch(Message, "POST", path, payload)

    async def create_group(self, name: str, owner_id: int, member_ids: Iterable[int] = ()) -> Group:
        """Create a group owned by ``owner_id``, who is a member whether listed or not."""
        body = {"name": name, "owner_id": owner_id, "member_ids": list(member_ids)}
        return await self._fetch(Group, "POST", f"{self._BASE}/groups", body)

    async def group(self, group_id: int) -> Group:
        return await self._fetch(Group, "GET", f"{self._BASE}/groups/{group_id}")

    async def set_members(self, group_id: int, member_ids: Iterable[int]) -> Group | None:
        """Make the membership exactly ``member_ids``; returns the group as it is now.

        Added users get a ``conversation`` event, removed ones stop receiving
        it. None when the server answers 204: an empty list deletes the group.
        """
        path = f"{self._BASE}/groups/{group_id}/members"
        data = await self._call("PUT", path, {"member_ids": list(member_ids)})
        return msgspec.json.decode(data, type=Group) if data else None

    async def delete_group(self, group_id: int) -> None:
        await self._call("DELETE", f"{self._BASE}/groups/{group_id}")

    async def group_online(self, group_id: int) -> GroupOnline:
        """How many members the group has, how many are online, on how many connections."""
        path = f"{self._BASE}/groups/{group_id}/online"
        return await self._fetch(GroupOnline, "GET", path)

    async def stats(self) -> Stats:
        """Open connections in all and per node, users online, messages per second."""
        return await self._fetch(Stats, "GET", f"{self._BASE}/stats")


class Socket:
    """One WebSocket connection, made by :meth:`Client.connect`.

    Requests (``send``, ``mark_read``, ``ping``, ``request``) wait for the
    answer carrying their ``ref``. Every other frame is an event, queued in
    arrival order for :meth:`next_event` / :meth:`events` until you read it.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
        self._ws = ws
        self.user: User | None = None
        self._counter = 0
        self._pending: dict[bytes, asyncio.Future[Frame]] = {}
        self._events: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._done = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def close_code(self) -> int | None:
        """The close code (4001 auth, 4002 idle, 4003 logout, 1009, 1013, 1001, ...)."""
        return self._ws.close_code

    @property
    def closed(self) -> bool:
        """True once the connection no longer receives frames."""
        return self._done or self._ws.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (code 1000) and wait for the reader to stop. Idempotent."""
        if not self._ws.closed:
            await self._ws.close()
        await self._reader

    def drop(self) -> None:
        """Cut the TCP connection without a close frame, as a dead network or a killed app.

        For tests and drills: the server sees the peer vanish and must cope.
        """
        raw = self._ws.get_extra_info("socket")  # asyncio's TransportSocket
        if raw is None:
            return  # the transport is gone already: the server closed it first
        shutdown = getattr(raw, "shutdown", None)
        if shutdown is None:
            raise RuntimeError(f"cannot drop the connection: no shutdown() on {raw!r}")
        try:
            shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone

    async def wait_closed(self, timeout: float = 15) -> int | None:  # noqa: ASYNC109
        """Wait for the server to close the connection; return the close code.

        Raises TimeoutError if it is still open after ``timeout`` seconds.
        """
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def _read(self) -> None:
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._dispatch(msg.data)
                elif msg.type not in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                    break  # CLOSE, CLOSING, CLOSED or ERROR
        except Exception:  # a broken connection ends the socket like a close does
            pass
        finally:
            self._done = True
            reason = ApiError(None, "closed", f"connection closed (code {self.close_code})")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(reason)
            self._pending.clear()
            self._events.put_nowait(None)

    def _dispatch(self, data: str | bytes) -> None:
        try:
            frame: object = msgspec.json.decode(data)
        except msgspec.DecodeError:
            frame = None
        if not isinstance(frame, dict):
            self._events.put_nowait({"type": "invalid_frame", "data": data})
            return
        if "ref" in frame:
            future = self._pending.pop(_ref_key(frame["ref"]), None)
            if future is not None:
                if not future.done():
                    future.set_result(frame)
                return
        self._events.put_nowait(frame)

    async def next_event(self, timeout: float | None = 5) -> Frame:  # noqa: ASYNC109
        """The next event frame. Raises TimeoutError if none comes within
        ``timeout`` seconds (None waits forever), and ConnectionError once
        the socket has closed and every queued event has been read."""
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is None:
            self._events.put_nowait(None)
            raise ConnectionError(f"socket closed (code {self.close_code})")
        return item

    async def events(self) -> AsyncIterator[Frame]:
        """Iterate over event frames until the socket closes: ``async for ev in sock.events()``."""
        while True:
            try:
                yield await self.next_event(timeout=None)
            except ConnectionError:
                return

    def drain(self) -> list[Frame]:
        """Take every event queued right now, without waiting (``[]`` if none)."""
        taken: list[Frame] = []
        while not self._events.empty():
            item = self._events.get_nowait()
            if item is None:
                self._events.put_nowait(None)
                break
            taken.append(item)
        return taken

    async def send_raw(self, data: str | bytes) -> None:
        """Send ``data`` as one frame as is: a text frame for str, binary for bytes."""
        try:
            if isinstance(data, str):
                await self._ws.send_str(data)
            else:
                await self._ws.send_bytes(data)
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise ApiError(None, "closed", f"cannot send: {exc}") from exc

    async def request(self, frame: dict[str, object], timeout: float = 10) -> Frame:  # noqa: ASYNC109
        """Send ``frame`` with a fresh ``ref`` (unless it has a ``ref`` key) and
        return the answer with that ref (``ack``, ``pong`` or ``error``) as is.

        Error answers do not raise; TimeoutError does if no answer comes, and
        ApiError ``"closed"`` if the socket closes first.
        """
        out = dict(frame)
        if "ref" not in out:
            self._counter += 1
            out["ref"] = f"r{self._counter}"
        key = _ref_key(out["ref"])
        if key in self._pending:
            raise ValueError(f"ref {out['ref']!r} is already waiting for an answer")
        if self._done:
            raise ApiError(None, "closed", f"connection closed (code {self.close_code})")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await self.send_raw(msgspec.json.encode(out).decode())
            return await asyncio.wait_for(future, timeout)
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]

    async def _ask(self, frame: Frame, answer_type: str) -> Frame:
        answer = await self.request(frame)
        if answer.get("type") == answer_type:
            return answer
        raise _error_of(None, answer)

    async def authenticate(self, token: str) -> User:
        """Send the auth frame and wait for ``auth_ok`` (connect() does this for you).

        Raises ApiError ``"unauthorized"`` when the server refuses the token.
        """
        await self.send_raw(msgspec.json.encode({"type": "auth", "token": token}).decode())
        try:
            frame = await self.next_event(timeout=10)
        except ConnectionError:
            code = "unauthorized" if self.close_code == 4001 else "closed"
            raise ApiError(None, code, f"closed with {self.close_code} before auth_ok") from None
        if frame.get("type") != "auth_ok":
            raise _error_of(None, frame)
        self.user = msgspec.convert(frame.get("user"), type=User)
        return self.user

    async def send(self, conversation: str, body: str, client_msg_id: str | None = None) -> Message:
        """Send a message and wait for its ack, which means it is stored for good.

        Raises ApiError (``status`` None) on an error answer, e.g.
        ``rate_limited`` or ``unavailable``: retry those with the same
        ``client_msg_id`` and the message is stored at most once.
        """
        frame: Frame = {"type": "send", "conversation": conversation, "body": body}
        if client_msg_id is not None:
            frame["client_msg_id"] = client_msg_id
        return message_of(await self._ask(frame, "ack"))

    async def mark_read(self, conversation: str, seq: int) -> Conversation:
        """Mark messages up to ``seq`` read; returns the updated chat-list entry."""
        frame: Frame = {"type": "read", "conversation": conversation, "seq": seq}
        answer = await self._ask(frame, "ack")
        return msgspec.convert(answer.get("conversation"), type=Conversation)

    async def ping(self) -> None:
        """Ping at the application level and wait for the pong."""
        await self._ask({"type": "ping"}, "pong")
