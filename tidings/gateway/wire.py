"""The WebSocket after the upgrade: RFC 6455 frames on the bare transport.

aiohttp answers the HTTP part of ``GET /ws``; :func:`take_over` then moves
the socket out of aiohttp's request machinery (the handler task and its
coroutine frames, the parsed upgrade request, the HTTP parser, the
WebSocket reader's queue: ~11.6 KB per socket, measured with
``bench/connection_heap.py``) onto a :class:`WebSocketWire`, which parses
the client's frames itself and calls its :class:`Listener`. An idle socket
then holds this object, the transport and the ``Connection``.

What it does of RFC 6455, as a server: client frames must be masked;
fragmented messages are joined; a message over ``max_size`` closes with
1009, text that is not UTF-8 with 1007 (as soon as its bytes arrive,
even mid-frame), any other protocol error with
1002; pings are answered with pongs; a close frame is answered with a close
of the same code and the server then closes TCP (§7.1.1). Extensions and
subprotocols are never negotiated, so reserved bits are an error.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import hashlib
import os
import re
import struct
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

# take_over() relies on aiohttp internals (see its docstring), and the C
# unmasking below is aiohttp's too: both are checked only on the versions
# .ci/aiohttp-matrix runs the wire tests on. Keep in step with the aiohttp
# line of pyproject.toml (tests/test_websocket_wire.py checks that).
TESTED_AIOHTTP = ((3, 11, 0), (3, 14, 5))
ALLOW_UNTESTED = "TIDINGS_ALLOW_UNTESTED_AIOHTTP"


def _check_aiohttp(version: str) -> None:
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    oldest, newest = TESTED_AIOHTTP
    if not oldest <= numbers <= newest and os.environ.get(ALLOW_UNTESTED) != "1":
        raise ImportError(
            f"tidings' WebSocket layer was tested with aiohttp {'.'.join(map(str, oldest))}"
            f" to {'.'.join(map(str, newest))}, and aiohttp {version} is installed: install"
            f" a tested one (pip install 'aiohttp>={'.'.join(map(str, oldest))},"
            f"<={'.'.join(map(str, newest))}'), or set {ALLOW_UNTESTED}=1 to try this one"
            " (as .ci/aiohttp-matrix does before the range is widened)"
        )


_check_aiohttp(aiohttp.__version__)

from aiohttp._websocket.helpers import websocket_mask  # noqa: E402 - C (Cython), after the check

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_TEXT = 1007
CLOSE_TOO_BIG = 1009
CLOSE_NO_STATUS = 1005

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
# Close codes a peer may send (RFC 6455 §7.4): the defined ones, and the
# ranges for libraries and applications.
_SENDABLE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


class Listener(Protocol):
    def on_message(self, data: str | bytes) -> None:
        """A whole text (``str``) or binary (``bytes``) message arrived."""

    def on_activity(self) -> None:
        """A ping or pong arrived: the peer is alive."""

    def on_closed(self) -> None:
        """The socket is gone (closed by either side, or lost)."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (§4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def close_frame(code: int, reason: bytes = b"") -> bytes:
    payload = _U16.pack(code) + reason[:123]
    return bytes((0x80 | OP_CLOSE, len(payload))) + payload


# A fragmented message's bytes are joined as they come, so its memory is
# bounded by the message size limit; empty continuation frames would add
# nothing but parsing work, so a message may have one fragment for every 64
# bytes of that limit (1,024 at the default 64 KiB; a 4 MiB message in
# 64-byte fragments fits a 4 MiB limit), and never fewer than 1,024.
FRAGMENT_BYTES = 64
MIN_FRAGMENTS = 1024
_utf8 = codecs.getincrementaldecoder("utf-8")


class WebSocketWire(asyncio.Protocol):
    """One upgraded socket: parses client frames, writes server frames, closes."""

    __slots__ = (
        "transport",
        "listener",
        "max_size",
        "_unparsed",
        "_message",
        "_message_opcode",
        "_fragments",
        "_text",
        "_checked",
        "_write_paused",
        "_drain_waiter",
        "_close_sent",
        "_input_closed",
        "_lost",
        "_lost_waiter",
        "_abort_timer",
    )

    def __init__(self, transport: asyncio.Transport, max_size: int) -> None:
        self.transport = transport
        self.listener: Listener | None = None
        self.max_size = max_size
        # Bytes of an incomplete frame, kept between reads (None when idle).
        self._unparsed: bytearray | None = None
        # The unmasked payload so far of a fragmented message, and its opcode.
        self._message: bytearray | None = None
        self._message_opcode = 0
        self._fragments = 0
        # The UTF-8 check of a text message that is not yet whole, and how
        # many bytes of the incomplete frame it has seen (§8.1: fail fast).
        self._text: codecs.IncrementalDecoder | None = None
        self._checked = 0
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._close_sent = False
        self._input_closed = False
        self._lost = False
        self._lost_waiter: asyncio.Future[None] | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- state --------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """A close frame was sent or the socket is gone: write nothing more."""
        return self._close_sent or self._lost or self.transport.is_closing()

    # -- reading ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._input_closed:
            return
        pending = self._unparsed
        if pending is None:
            # The usual case: whole frames in one read, parsed in place.
            at = self._parse(data)
            if at < len(data) and not self._input_closed:
                self._unparsed = bytearray(memoryview(data)[at:])
            return
        # The rest of a frame: appending is amortised O(1) a byte, so a big
        # frame over many reads costs its size once, not its size squared.
        pending += data
        at = self._parse(pending)
        if self._input_closed or at == len(pending):
            self._unparsed = None
        elif at:
            del pending[:at]  # bytes before a frame's start, moved at most once

    def _parse(self, buffer: bytes | bytearray) -> int:
        """Handle the whole frames in ``buffer``; the offset of the first incomplete one."""
        size = len(buffer)
        at = 0
        while not self._input_closed:
            if size - at < 2:
                break
            first = buffer[at]
            second = buffer[at + 1]
            opcode = first & 0x0F
            length = second & 0x7F
            head = at + 2
            if length == 126:
                if size - head < 2:
                    break
                length = _U16.unpack_from(buffer, head)[0]
                head += 2
            elif length == 127:
                if size - head < 8:
                    break
                length = _U64.unpack_from(buffer, head)[0]
                head += 8
            problem = self._header_problem(first, second, opcode, length)
            if problem is not None:
                self.fail(*problem)
                break
            end = head + 4 + length
            if end > size:
                if size > head + 4 and self._is_text(opcode):
                    self._check_partial_text(buffer, head, size)
                break
            mask = bytes(buffer[head : head + 4])
            with memoryview(buffer) as view:  # one copy, of the payload only
                payload = bytearray(view[head + 4 : end])
            websocket_mask(mask, payload)
            at = end
            self._frame(first & 0x80, opcode, payload)
        return at

    def _is_text(self, opcode: int) -> bool:
        if opcode == OP_TEXT:
            return self._message is None  # else a protocol error once the frame is whole
        return opcode == OP_CONTINUATION and self._text is not None

    def _check_partial_text(self, buffer: bytes | bytearray, head: int, size: int) -> None:
        """Fail fast on text that cannot become UTF-8, before its frame is whole (§8.1)."""
        start = head + 4 + self._checked
        if start >= size:
            return
        if self._text is None:  # a text frame's first bytes; no message was open
            self._text = _utf8()
        turn = self._checked % 4
        mask = bytes(buffer[head : head + 4])
        with memoryview(buffer) as view:
            chunk = bytearray(view[start:size])
        websocket_mask(mask[turn:] + mask[:turn], chunk)
        try:
            self._text.decode(chunk)
        except UnicodeDecodeError:
            self.fail(CLOSE_INVALID_TEXT, "text that is not UTF-8")
            return
        self._checked = size - head - 4

    def _header_problem(
        self, first: int, second: int, opcode: int, length: int
    ) -> tuple[int, str] | None:
        if first & 0x70:
            return CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)"
        if not second & 0x80:
            return CLOSE_PROTOCOL_ERROR, "client frames must be masked"
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                return CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}"
            if not first & 0x80 or length > 125:
                return CLOSE_PROTOCOL_ERROR, "control frames are short and not fragmented"
            return None
        if opcode > OP_BINARY:
            return CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}"
        message = self._message
        if length + (len(message) if message is not None and not opcode else 0) > self.max_size:
            return CLOSE_TOO_BIG, f"message over {self.max_size} bytes"
        return None

    def _frame(self, fin: int, opcode: int, payload: bytearray) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if self._message is not None:
                self.fail(CLOSE_PROTOCOL_ERROR, "a new message began before the last one ended")
                return
            text_in_parts = opcode == OP_TEXT and (not fin or self._text is not None)
            if text_in_parts and not self._check_text(payload, fin):
                return
            if fin:
                self._deliver(opcode, payload)
            else:
                self._message = payload
                self._message_opcode = opcode
                self._fragments = 1
        elif opcode == OP_CONTINUATION:
            message = self._message
            if message is None:
                self.fail(CLOSE_PROTOCOL_ERROR, "a continuation frame without a message")
                return
            self._fragments += 1
            if self._fragments > max(MIN_FRAGMENTS, self.max_size // FRAGMENT_BYTES):
                self.fail(CLOSE_TOO_BIG, "a message in too many fragments")
                return
            if self._text is not None and not self._check_text(payload, fin):
                return
            message += payload
            if fin:
                self._message = None
                self._deliver(self._message_opcode, message)
        elif opcode == OP_PING:
            if not self.closing:
                self.transport.write(bytes((0x80 | OP_PONG, len(payload))) + payload)
            if self.listener is not None:
                self.listener.on_activity()
        elif opcode == OP_PONG:
            if self.listener is not None:
                self.listener.on_activity()
        else:
            self._peer_closed(payload)

    def _check_text(self, payload: bytearray, fin: int) -> bool:
        """Feed a whole frame of a text message to its UTF-8 check; False if it failed."""
        decoder = self._text
        if decoder is None:
            decoder = self._text = _utf8()
        checked, self._checked = self._checked, 0
        try:
            decoder.decode(memoryview(payload)[checked:], final=bool(fin))
        except UnicodeDecodeError:
            self.fail(CLOSE_INVALID_TEXT, "text that is not UTF-8")
            return False
        if fin:
            self._text = None
        return True

    def _deliver(self, opcode: int, payload: bytearray) -> None:
        data: str | bytes
        if opcode == OP_TEXT:
            try:
                data = payload.decode()
            except UnicodeDecodeError:
                self.fail(CLOSE_INVALID_TEXT, "text that is not UTF-8")
                return
        else:
            data = bytes(payload)
        if self.listener is not None:
            self.listener.on_message(data)

    def _peer_closed(self, payload: bytearray) -> None:
        self._input_closed = True
        code = CLOSE_NO_STATUS
        if len(payload) == 1:
            code = CLOSE_PROTOCOL_ERROR
        elif len(payload) >= 2:
            code = _U16.unpack_from(payload)[0]
            if not (code in _SENDABLE or 3000 <= code <= 4999):
                code = CLOSE_PROTOCOL_ERROR
            else:
                try:
                    payload[2:].decode()
                except UnicodeDecodeError:
                    code = CLOSE_INVALID_TEXT
        if not self._close_sent:
            # Echo the peer's code (§5.5.1); a close without one gets 1000.
            self._close_sent = True
            self.transport.write(close_frame(1000 if code == CLOSE_NO_STATUS else code))
        # The handshake is complete: the server closes TCP first (§7.1.1).
        self.transport.close()

    # -- writing ------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """Write a whole server frame (see ``frames.wire_text``); dropped once closing."""
        if not self.closing:
            self.transport.write(frame)

    async def drain(self) -> None:
        """Wait while the kernel-facing buffer is over its high-water mark."""
        if self._write_paused and not self._lost:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainer()

    def _wake_drainer(self) -> None:
        waiter = self._drain_waiter
        self._drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- closing ------------------------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: stop reading and close with ``code``."""
        self._input_closed = True
        self._forget_input()
        self.start_close(code, reason)

    def _forget_input(self) -> None:
        self._unparsed = None
        self._message = None
        self._text = None
        self._checked = 0

    def start_close(self, code: int, reason: str, abort_after: float = 5.0) -> None:
        """Send a close frame; the socket ends on the peer's close, or after ``abort_after``."""
        if self._lost:
            return
        if not self._close_sent:
            self._close_sent = True
            self.transport.write(close_frame(code, reason.encode()))
        if self._input_closed and self.transport.can_write_eof():
            # A protocol error: what follows cannot be parsed, so the peer's
            # close frame cannot be found. Half-close instead and discard what
            # still arrives until the peer closes too: closing now, with its
            # bytes unread, would reset the connection and could destroy the
            # close frame before the peer reads its code.
            self.transport.write_eof()
        if self._abort_timer is None:
            self._abort_timer = asyncio.get_running_loop().call_later(abort_after, self.abort)

    async def close(self, code: int, reason: str, *, abort_after: float = 5.0) -> None:
        """Close with ``code`` and wait until the socket is gone (``abort_after`` at most)."""
        self.start_close(code, reason, abort_after)
        await self.wait_lost()

    async def wait_lost(self) -> None:
        if self._lost:
            return
        if self._lost_waiter is None:
            self._lost_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._lost_waiter)

    def abort(self) -> None:
        """Drop the connection now (a peer that never answers the close)."""
        if not self._lost:
            self.transport.abort()

    def eof_received(self) -> bool:
        # The peer half-closed without a close frame: nothing more will come.
        self._input_closed = True
        return False  # let the transport close itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        self._input_closed = True
        self._forget_input()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._wake_drainer()
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.on_closed()


def take_over(
    request: web.Request, key: str, max_size: int, listen: Callable[[WebSocketWire], Listener]
) -> WebSocketWire | None:
    """Answer 101 and move the socket from aiohttp to a new :class:`WebSocketWire`.

    None if the client has already gone.

    aiohttp's request handler is told its connection is lost, after its
    ``transport`` is cleared so that it does not close the socket: it then
    lets go of the request, its task and its parser, and the response the
    route handler returns is never written. Bytes the client sent right
    after the upgrade request, which aiohttp buffered, reach the listener
    (``listen(wire)``) before anything read later. aiohttp has no hijack
    API; this relies on its protocol's ``transport``/``connection_lost``
    and reads its ``_message_tail`` (with a default), on the aiohttp
    versions of ``TESTED_AIOHTTP`` only (``.ci/aiohttp-matrix``).
    """
    transport: Any = request.transport
    handler: Any = request.protocol
    if transport is None or transport.is_closing():
        return None  # the client left during the upgrade
    buffered: bytes = getattr(handler, "_message_tail", b"") or b""
    wire = WebSocketWire(transport, max_size)
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
    wire.listener = listen(wire)
    transport.set_protocol(wire)
    handler.transport = None
    handler.connection_lost(None)
    # aiohttp may have paused reading while the upgrade was handled.
    transport.resume_reading()
    if buffered:
        wire.data_received(buffered)
    return wire
