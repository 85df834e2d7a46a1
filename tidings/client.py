"""A typed async client for the tidings wire contract (PROTOCOL.md).

:class:`Client` speaks HTTP and opens :class:`Socket` connections. Answers
decode into the Structs of :mod:`tidings.models`; every refusal raises
:class:`ApiError` with the contract's error code. Events (``message``,
``read``, ``conversation``, ``push``, ...) stay raw dicts::

    async with Client("http://127.0.0.1:8080") as alice:
        await alice.signup("alice", "correct horse")
        await alice.login("alice", "correct horse")
        async with await alice.connect() as sock:
            sent = await sock.send("p:1-2", "hello", client_msg_id="m1")
            event = await sock.next_event(timeout=5)   # e.g. {"type": "message", ...}
            history = await alice.messages(sent.conversation, after=0)

Keep reading events (``next_event``/``events``): the server cuts off a
connection whose unread backlog grows too large (close code 1013).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from tidings.models import Conversation, Group, Message, Session, User

Frame = dict[str, object]
Params = dict[str, str] | None
T = TypeVar("T")


class ApiError(Exception):
    """An error answer of the server: HTTP (``status`` set) or a WebSocket error frame.

    Branch on ``code`` (``"not_member"``, ``"rate_limited"``, ...), not on the
    message. Two codes come from this client, not the server: ``"closed"``
    (the socket closed before the answer came) and ``"unexpected"`` (an
    answer of the wrong type). ``body`` holds the decoded answer, if any.
    """

    def __init__(self, status: int | None, code: str, message: str, *, body: object = None):
        where = "ws" if status is None else f"HTTP {status}"
        super().__init__(f"{where} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def private_conversation(a: int, b: int) -> str:
    """The id of the private conversation of users ``a`` and ``b``: ``p:{low}-{high}``."""
    return f"p:{min(a, b)}-{max(a, b)}"


def group_conversation(group_id: int) -> str:
    """The id of the conversation of group ``group_id``: ``g:{group_id}``."""
    return f"g:{group_id}"


def message_of(event: Frame) -> Message:
    """The Message of a ``message`` event (or of an ack of a send), as a Struct."""
    return msgspec.convert(event.get("message"), type=Message)


class _Conversations(msgspec.Struct):
    conversations: list[Conversation]


class _Messages(msgspec.Struct):
    messages: list[Message]


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


class Client:
    """HTTP client of one user: ``async with Client(base_url, token=None) as c: ...``.

    Pass ``session`` to share one aiohttp session between many clients (the
    client then never closes it; mind its connector's ``limit``, which also
    caps open sockets). Without it the client makes its own, unlimited one on
    first use. ``token`` is sent as ``Authorization: Bearer``; :meth:`login`
    sets it, and you may set it yourself (a service token, a bad token, ...).
    """

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
        self._sockets: set[Socket] = set()

    async def close(self) -> None:
        """Close the sockets this client opened, and the session if the client created it."""
        await asyncio.gather(*(sock.close() for sock in list(self._sockets)))
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

    @staticmethod
    def _conv(conversation: str) -> str:
        return "/api/v1/conversations/" + quote(conversation, safe=":")

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
        path = self._conv(conversation) + "/messages"
        return (await self._fetch(_Messages, "GET", path, None, params)).messages

    async def send(self, conversation: str, body: str, client_msg_id: str | None = None) -> Message:
        """Send a message. Give a ``client_msg_id`` to retry safely: a repeat
        returns the original message instead of storing a second one."""
        payload: dict[str, str] = {"body": body}
        if client_msg_id is not None:
            payload["client_msg_id"] = client_msg_id
        return await self._fetch(Message, "POST", self._conv(conversation) + "/messages", payload)

    async def mark_read(self, conversation: str, seq: int) -> Conversation:
        """Mark messages up to ``seq`` read; returns the updated chat-list entry."""
        path = self._conv(conversation) + "/read"
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
