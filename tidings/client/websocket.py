"""Socket: one WebSocket connection, matching answers to requests by ``ref`` and queueing
every other frame as an event, for :class:`~tidings.client.Client` and for tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

import aiohttp
import msgspec

from tidings.client.conversations import Frame, message_of, send_fields, with_client_msg_id
from tidings.client.errors import ApiError, error_of
from tidings.models import Conversation, Message, User


def _ref_key(ref: object) -> bytes:
    """A hashable key for any JSON ``ref`` (objects compare regardless of key order)."""
    return msgspec.json.encode(ref, order="sorted")


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
        raise error_of(None, answer)

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
            raise error_of(None, frame)
        self.user = msgspec.convert(frame.get("user"), type=User)
        return self.user

    async def send(
        self,
        conversation: str,
        body: str | None,
        client_msg_id: str | None = None,
        *,
        reply_to: int | None = None,
        forward: tuple[str, int] | None = None,
        mentions: Sequence[int] = (),
        mention_all: bool = False,
        kind: str | None = None,
        file_id: str | None = None,
    ) -> Message:
        """Send a message and wait for its ack, which means it is stored for good.

        Raises ApiError (``status`` None) on an error answer, e.g.
        ``rate_limited`` or ``unavailable``: retry those with the same
        ``client_msg_id`` and the message is stored at most once. The
        keywords are those of :meth:`Client.send <tidings.client.Client.send>`.
        """
        fields = send_fields(
            body,
            client_msg_id,
            reply_to=reply_to,
            forward=forward,
            mentions=mentions,
            mention_all=mention_all,
            kind=kind,
            file_id=file_id,
        )
        frame: Frame = {"type": "send", "conversation": conversation, **fields}
        return message_of(await self._ask(frame, "ack"))

    async def recall(
        self, conversation: str, seq: int, client_msg_id: str | None = None
    ) -> Message:
        """Recall message ``seq``; returns the recall notice from the ack."""
        frame: Frame = {"type": "recall", "conversation": conversation, "seq": seq}
        return message_of(await self._ask(with_client_msg_id(frame, client_msg_id), "ack"))

    async def edit(
        self, conversation: str, seq: int, body: str, client_msg_id: str | None = None
    ) -> Message:
        """Replace the text of message ``seq``; returns the edit notice from the ack."""
        frame: Frame = {"type": "edit", "conversation": conversation, "seq": seq, "body": body}
        return message_of(await self._ask(with_client_msg_id(frame, client_msg_id), "ack"))

    async def mark_read(self, conversation: str, seq: int) -> Conversation:
        """Mark messages up to ``seq`` read; returns the updated chat-list entry."""
        frame: Frame = {"type": "read", "conversation": conversation, "seq": seq}
        answer = await self._ask(frame, "ack")
        return msgspec.convert(answer.get("conversation"), type=Conversation)

    async def typing(self, conversation: str) -> None:
        """Tell the other members that this user is typing (PROTOCOL-v2 §5).

        No answer comes: the server relays at most one every 2 seconds per
        user and conversation, and a refusal (``not_member``) arrives as an
        ``error`` event.
        """
        await self.send_raw(
            msgspec.json.encode({"type": "typing", "conversation": conversation}).decode()
        )

    async def ping(self) -> None:
        """Ping at the application level and wait for the pong."""
        await self._ask({"type": "ping"}, "pong")
