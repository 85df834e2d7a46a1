"""WebSocket frames: decoding what clients send, encoding what the server sends.

Pure functions over bytes and values, no socket in sight. Every server
frame is encoded once, so a fan-out writes the same bytes to every socket.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import msgspec

from tidings.errors import ErrorCode, TidingsError
from tidings.models import Conversation, Message, User

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

encode = _encoder.encode


class _NoRef:
    """The frame carried no ``ref``, so its answer carries none either."""

    def __repr__(self) -> str:
        return "NO_REF"


NO_REF: Any = _NoRef()


class FrameError(TidingsError):
    """A frame that cannot be handled, answered with ``ref`` when it had one."""

    def __init__(self, code: ErrorCode, message: str, ref: Any = NO_REF) -> None:
        super().__init__(code, message)
        self.ref = ref


# -- what clients send: one tagged union, decoded once -------------------------
# ``ref`` is any JSON value, echoed back in the answer; absent, the answer has none.


class AuthFrame(msgspec.Struct, frozen=True, tag="auth", tag_field="type"):
    token: str
    ref: Any = NO_REF


class ForwardSource(msgspec.Struct, frozen=True):
    conversation: str
    seq: int


class SendFrame(msgspec.Struct, frozen=True, tag="send", tag_field="type"):
    conversation: str
    # Required unless the send forwards a message (then it must be absent).
    body: str | None = None
    client_msg_id: str | None = None
    ref: Any = NO_REF
    # PROTOCOL-v2 §2; absent, the send is a v1 text message.
    kind: str | None = None
    reply_to: int | None = None
    forward: ForwardSource | None = None
    mentions: list[int] = []
    mention_all: bool = False
    file_id: str | None = None


class RecallFrame(msgspec.Struct, frozen=True, tag="recall", tag_field="type"):
    conversation: str
    seq: int
    client_msg_id: str | None = None
    ref: Any = NO_REF


class EditFrame(msgspec.Struct, frozen=True, tag="edit", tag_field="type"):
    conversation: str
    seq: int
    body: str
    client_msg_id: str | None = None
    ref: Any = NO_REF


class ReadFrame(msgspec.Struct, frozen=True, tag="read", tag_field="type"):
    conversation: str
    seq: int
    ref: Any = NO_REF


class TypingFrame(msgspec.Struct, frozen=True, tag="typing", tag_field="type"):
    """PROTOCOL-v2 §5: no ack; an error frame only when it is refused."""

    conversation: str
    ref: Any = NO_REF


class PingFrame(msgspec.Struct, frozen=True, tag="ping", tag_field="type"):
    ref: Any = NO_REF


ClientFrame = AuthFrame | SendFrame | RecallFrame | EditFrame | ReadFrame | TypingFrame | PingFrame
CLIENT_FRAME_TYPES = frozenset(
    str(kind.__struct_config__.tag)
    for kind in (AuthFrame, SendFrame, RecallFrame, EditFrame, ReadFrame, TypingFrame, PingFrame)
)
_frame_decoder = msgspec.json.Decoder(ClientFrame)


def frame_type(frame: ClientFrame) -> str:
    """The ``type`` a decoded frame had on the wire."""
    return str(frame.__struct_config__.tag)


def decode(data: str | bytes) -> ClientFrame:
    """The frame ``data`` holds, or ``FrameError`` with the contract's code (and its ref)."""
    try:
        return _frame_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _refusal(data, exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise FrameError(ErrorCode.BAD_REQUEST, "a frame is one JSON object") from None
    except RecursionError:  # msgspec's answer to JSON nested too deep
        raise FrameError(ErrorCode.BAD_REQUEST, "the frame is nested too deep") from None


def _refusal(data: str | bytes, error: msgspec.ValidationError) -> FrameError:
    """Why a JSON frame is not one of ours: the slow path, so it may decode again."""
    try:
        value = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return FrameError(ErrorCode.BAD_REQUEST, "a frame is one JSON object")
    if not isinstance(value, dict):
        return FrameError(ErrorCode.BAD_REQUEST, "a frame is one JSON object")
    ref = value.get("ref", NO_REF)
    kind = value.get("type")
    if not isinstance(kind, str):
        return FrameError(ErrorCode.BAD_REQUEST, "a frame needs a string 'type'", ref)
    if kind not in CLIENT_FRAME_TYPES:
        return FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind!r}", ref)
    return FrameError(ErrorCode.BAD_REQUEST, field_problem(error), ref)


_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"missing required field `(.*)`")


def field_problem(error: msgspec.ValidationError) -> str:
    """msgspec's complaint as ``field: what is wrong`` (``$.a[0]`` becomes ``a[0]``)."""
    text = str(error)
    missing = _MISSING.search(text)
    if missing is not None:
        return f"{missing.group(1)}: required"
    at = _PATH.search(text)
    if at is None:
        return text
    return f"{at.group(1) or 'the object'}: {text[: at.start()]}"


def wire_text(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket text frame (RFC 6455 §5.2).

    What a server writes; built once per fan-out, the same bytes go to every
    recipient socket.
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = _HEADER_16.pack(0x81, 126, size)
    else:
        header = _HEADER_64.pack(0x81, 127, size)
    return header + payload


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def _with_ref(frame: dict[str, Any], ref: Any) -> dict[str, Any]:
    if ref is not NO_REF:
        frame["ref"] = ref
    return frame


def error(code: ErrorCode | str, message: str, ref: Any = NO_REF) -> bytes:
    return encode(_with_ref({"type": "error", "code": str(code), "message": message}, ref))


def ack_message(ref: Any, message: Message) -> bytes:
    return encode(_with_ref({"type": "ack", "message": message}, ref))


def ack_conversation(ref: Any, conversation: Conversation) -> bytes:
    return encode(_with_ref({"type": "ack", "conversation": conversation}, ref))


def pong(ref: Any) -> bytes:
    return encode(_with_ref({"type": "pong"}, ref))


def auth_ok(user: User) -> bytes:
    return encode({"type": "auth_ok", "user": user})


def message_event(message: Message) -> bytes:
    return encode({"type": "message", "message": message})


def read_event(conversation: str, user: int, seq: int) -> bytes:
    return encode({"type": "read", "conversation": conversation, "user": user, "seq": seq})


def conversation_event(conversation: Conversation) -> bytes:
    return encode({"type": "conversation", "conversation": conversation})


def typing_event(conversation: str, user: int) -> bytes:
    return encode({"type": "typing", "conversation": conversation, "user": user})


def conversation_removed_event(conversation: str) -> bytes:
    return encode({"type": "conversation_removed", "conversation": conversation})


def push_event(payload: bytes) -> bytes:
    """``{"type": "push", "event": …}`` around an event already encoded as JSON."""
    return b'{"type":"push","event":' + payload + b"}"
