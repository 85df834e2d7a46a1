"""The client side of RFC 6455 frames, and a lean WebSocket client on a bare ``asyncio.Protocol``.

:func:`client_frame` encodes any client frame (a test may want a fragment,
a reserved bit, an unmasked frame); :func:`server_frame` decodes one server
frame from a buffer. Both are shared by the tests and the bench; the
server's own parser (``tidings/gateway/wire.py``) is the product, not this.

The load generator must not be the bottleneck, and a full client (aiohttp's
reader, a task per socket, a queue per frame) costs more CPU per message
than the server under test. :class:`FrameProtocol` writes frames with a zero
mask key (RFC 6455 requires a key, not an unpredictable one; the server
cannot tell) and hands each received data payload to a callback, with no
task and no copy beyond slicing the payload out of the buffer.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import cast

CONNECT_TIMEOUT = 20.0

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: The mask key of the load's frames: masking with it leaves the payload as it is.
ZERO_MASK = b"\x00\x00\x00\x00"


class FrameError(ValueError):
    """A server frame no server may send (RFC 6455: masked)."""


def zero_mask_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final client frame with the zero mask key: the load's frames, at the least CPU."""
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def client_frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = ZERO_MASK,
) -> bytes:
    """Any client frame: not final with ``fin=False``, ``rsv`` the RSV1-3 bits (``0x40`` ...).

    ``mask`` is the 4-byte mask key (``os.urandom(4)`` for a random one), or
    None for an unmasked frame (a protocol error a test may want to send).
    With the defaults it is :func:`zero_mask_frame`'s frame.
    """
    frame = bytearray(zero_mask_frame(payload, opcode))
    frame[0] = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    start = len(frame) - size  # where the payload begins, after the mask key
    if mask is None:
        frame[1] &= 0x7F
        del frame[start - 4 : start]
    elif mask != ZERO_MASK:
        frame[start - 4 : start] = mask
        if size:
            key = (mask * (size // 4 + 1))[:size]
            masked = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
            frame[start:] = masked.to_bytes(size, "big")
    return bytes(frame)


def server_frame(buffer: bytes | bytearray, pos: int = 0) -> tuple[int, bool, bytes, int] | None:
    """The server frame at ``buffer[pos:]``: (opcode, fin, payload, bytes taken); None if cut short.

    Raises :class:`FrameError` on a masked frame (a server never masks).
    """
    available = len(buffer) - pos
    if available < 2:
        return None
    first = buffer[pos]
    second = buffer[pos + 1]
    if second & 0x80:
        raise FrameError("a server frame is never masked")
    length = second & 0x7F
    head = 2
    if length == 126:
        if available < 4:
            return None
        length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
        head = 4
    elif length == 127:
        if available < 10:
            return None
        length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
        head = 10
    if available < head + length:
        return None
    start = pos + head
    return first & 0x0F, bool(first & 0x80), bytes(buffer[start : start + length]), head + length


class FrameProtocol(asyncio.Protocol):
    """One WebSocket connection: handshake, then ``on_payload(bytes)`` per data frame."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n\r\n"
        ).encode()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Payloads that arrive before a reader attaches (a server may speak first,
        # in the same segment as its 101) wait here instead of being dropped.
        self._early: list[bytes] | None = []
        self._on_payload: Callable[[bytes], None] = self._early.append

    def attach(self, on_payload: Callable[[bytes], None]) -> None:
        """Hand every data payload, those already received first, to ``on_payload``."""
        early, self._early = self._early or [], None
        self._on_payload = on_payload
        for payload in early:
            on_payload(payload)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's: cast, do not check.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc!r}"))
            self.opened.exception()  # retrieved: the opener may have given up already
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        """Write already-framed bytes (one frame or many joined)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def send(self, payload: bytes) -> None:
        self.write(zero_mask_frame(payload))

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(zero_mask_frame(b"\x03\xe8", OP_CLOSE))
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded and not self._handshake(buffer):
            return
        # server_frame(), inlined: a call and a tuple per frame cost the load
        # a fifth more CPU per received frame (measured), and this is its hot path.
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            opcode = buffer[pos] & 0x0F
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            if opcode <= OP_BINARY:
                self._on_payload(bytes(buffer[pos + head : end]))
            elif opcode == OP_PING:
                self.write(zero_mask_frame(bytes(buffer[pos + head : end]), OP_PONG))
            elif opcode == OP_CLOSE and self._transport is not None:
                self._transport.close()
            pos = end
        if pos:
            del buffer[:pos]

    def _handshake(self, buffer: bytearray) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            self.opened.set_exception(ConnectionError(f"upgrade refused: {head[:200]!r}"))
            return False
        self._upgraded = True
        self.opened.set_result(None)
        return True


async def open_socket(
    host: str, port: int, path: str, *, local_host: str | None = None
) -> FrameProtocol:
    """Connect and upgrade; ``local_host`` spreads sockets over source addresses."""
    loop = asyncio.get_running_loop()
    protocol = FrameProtocol(host, port, path)
    local_addr = (local_host, 0) if local_host else None
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await loop.create_connection(lambda: protocol, host, port, local_addr=local_addr)
        await protocol.opened
    return protocol
