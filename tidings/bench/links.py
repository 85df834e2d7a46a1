"""One authenticated load connection, in the dialect of the server under test.

A :class:`Link` hides the wire format so that one workload drives both
tidings (its contract, docs/protocol.md) and the python-socketio peer (Engine.IO
4 / Socket.IO 5 text packets): ``send(target, body, ref, cmid)`` writes a
frame, and the callbacks ``on_ack(ref, ok)`` and ``on_message(cmid)`` report
what came back. Decoding reads only the fields the bench needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from tidings.harness.wsframes import FrameProtocol, open_socket

AUTH_TIMEOUT = 30.0


def _ignore_ack(ref: int, ok: bool) -> None:
    pass


def _ignore_typing() -> None:
    pass


def _ignore_message(cmid: str) -> None:
    pass


class Link:
    """Base: a socket plus the two callbacks the workload sets."""

    path = "/"

    def __init__(self, sock: FrameProtocol) -> None:
        self.sock = sock
        self.on_ack: Callable[[int, bool], None] = _ignore_ack
        self.on_message: Callable[[str], None] = _ignore_message
        # The seq of this link's last acked text message not yet recalled (0: none).
        self.recallable = 0
        self.on_typing: Callable[[], None] = _ignore_typing
        # Frames of the handshake, queued until ``_exchange`` asks for them.
        self._handshake: asyncio.Queue[bytes] | None = asyncio.Queue()
        sock.attach(self._payload)

    async def authenticate(self, user_id: int, token: str, rooms: list[str]) -> None:
        raise NotImplementedError

    def send(self, target: str, body: str, ref: int, cmid: str) -> None:
        raise NotImplementedError

    def send_mentioning(
        self, target: str, body: str, ref: int, cmid: str, mentions: tuple[int, ...]
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no mentions")

    def recall(self, target: str, seq: int, ref: int, cmid: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no recall")

    def typing(self, target: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no typing")

    def close(self) -> None:
        self.sock.close()

    def _payload(self, payload: bytes) -> None:
        raise NotImplementedError

    async def _exchange(self, payload: bytes) -> bytes:
        """Send a handshake frame (if any) and wait for the next handshake frame."""
        assert self._handshake is not None, "the handshake is over"
        if payload:
            self.sock.send(payload)
        get = asyncio.ensure_future(self._handshake.get())
        done, _ = await asyncio.wait(
            (get, self.sock.closed), timeout=AUTH_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if get not in done:
            get.cancel()
            raise ConnectionError("no answer to the handshake (closed or timed out)")
        return get.result()

    def _handshake_done(self) -> None:
        self._handshake = None

    def _handshake_answer(self, payload: bytes) -> bool:
        if self._handshake is not None:
            self._handshake.put_nowait(payload)
            return True
        return False


# --- tidings -----------------------------------------------------------------


class _Message(msgspec.Struct):
    client_msg_id: str | None = None
    seq: int = 0
    kind: str = "text"


class _Frame(msgspec.Struct):
    type: str
    ref: int | None = None
    message: _Message | None = None


class _SendFrame(msgspec.Struct, tag="send", tag_field="type"):
    ref: int
    conversation: str
    body: str
    client_msg_id: str


class _MentionFrame(msgspec.Struct, tag="send", tag_field="type"):
    ref: int
    conversation: str
    body: str
    client_msg_id: str
    mentions: tuple[int, ...]


class _RecallFrame(msgspec.Struct, tag="recall", tag_field="type"):
    ref: int
    conversation: str
    seq: int
    client_msg_id: str


class _TypingFrame(msgspec.Struct, tag="typing", tag_field="type"):
    conversation: str


_decode_frame = msgspec.json.Decoder(_Frame).decode
_encode = msgspec.json.Encoder().encode


class TidingsLink(Link):
    """The tidings contract: ``auth`` with a token, ``send`` to a conversation id."""

    path = "/ws"

    async def authenticate(self, user_id: int, token: str, rooms: list[str]) -> None:
        answer = await self._exchange(_encode({"type": "auth", "token": token}))
        if not answer.startswith(b'{"type":"auth_ok"'):
            raise ConnectionError(f"auth refused: {answer[:200]!r}")
        self._handshake_done()

    def send(self, target: str, body: str, ref: int, cmid: str) -> None:
        self.sock.send(_encode(_SendFrame(ref, target, body, cmid)))

    def send_mentioning(
        self, target: str, body: str, ref: int, cmid: str, mentions: tuple[int, ...]
    ) -> None:
        self.sock.send(_encode(_MentionFrame(ref, target, body, cmid, mentions)))

    def recall(self, target: str, seq: int, ref: int, cmid: str) -> None:
        self.sock.send(_encode(_RecallFrame(ref, target, seq, cmid)))

    def typing(self, target: str) -> None:
        self.sock.send(_encode(_TypingFrame(target)))

    def _payload(self, payload: bytes) -> None:
        if self._handshake_answer(payload):
            return
        frame = _decode_frame(payload)
        kind = frame.type
        if kind == "message":
            if frame.message is not None and frame.message.client_msg_id is not None:
                self.on_message(frame.message.client_msg_id)
        elif kind == "ack":
            if frame.message is not None and frame.message.kind == "text":
                self.recallable = frame.message.seq
            if frame.ref is not None:
                self.on_ack(frame.ref, True)
        elif kind == "error" and frame.ref is not None:
            self.on_ack(frame.ref, False)
        elif kind == "typing":
            self.on_typing()


# --- python-socketio peer (bench/peers/socketio_relay.py) ----------------------


class _Delivery(msgspec.Struct):
    cmid: str


_decode_event = msgspec.json.Decoder(tuple[str, _Delivery]).decode


class SocketIOLink(Link):
    """Socket.IO over a bare WebSocket: ``42`` events, ``42<id>`` with ack, ``43<id>`` acks.

    The peer relay knows no tokens: ``auth`` names the user and the rooms to
    join (``u:<id>`` for private messages, ``g:<name>`` for a group).
    """

    path = "/socket.io/?EIO=4&transport=websocket"

    async def authenticate(self, user_id: int, token: str, rooms: list[str]) -> None:
        opened = await self._exchange(b"")
        if not opened.startswith(b"0"):
            raise ConnectionError(f"not an Engine.IO open packet: {opened[:200]!r}")
        joined = await self._exchange(b"40")
        if not joined.startswith(b"40"):
            raise ConnectionError(f"namespace refused: {joined[:200]!r}")
        auth = _encode(["auth", {"user": user_id, "rooms": rooms}])
        answer = await self._exchange(b"420" + auth)
        if not answer.startswith(b"430"):
            raise ConnectionError(f"auth refused: {answer[:200]!r}")
        self._handshake_done()

    def send(self, target: str, body: str, ref: int, cmid: str) -> None:
        event = _encode(["send", {"to": target, "body": body, "cmid": cmid}])
        self.sock.send(b"42%d" % ref + event)

    def _payload(self, payload: bytes) -> None:
        if payload == b"2":  # Engine.IO ping: answer, or the server drops us
            self.sock.send(b"3")
            return
        if self._handshake_answer(payload):
            return
        if payload.startswith(b"42"):
            name, delivery = _decode_event(payload[2:])
            if name == "message":
                self.on_message(delivery.cmid)
        elif payload.startswith(b"43"):
            end = payload.index(b"[")
            self.on_ack(int(payload[2:end]), b'"ok":true' in payload[end:])


DIALECTS: dict[str, type[Link]] = {"tidings": TidingsLink, "socketio": SocketIOLink}


async def open_link(
    dialect: str,
    host: str,
    port: int,
    user_id: int,
    token: str,
    rooms: list[str],
    *,
    local_host: str | None = None,
) -> Link:
    """Connect, upgrade and authenticate one load connection."""
    kind = DIALECTS[dialect]
    sock = await open_socket(host, port, kind.path, local_host=local_host)
    link = kind(sock)
    try:
        await link.authenticate(user_id, token, rooms)
    except BaseException:
        link.close()
        raise
    return link
