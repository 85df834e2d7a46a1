"""Frame decoding and encoding, without a socket."""

from __future__ import annotations

import msgspec
import pytest

from tidings.errors import ErrorCode
from tidings.gateway import frames
from tidings.models import Message


def test_a_frame_keeps_any_json_ref() -> None:
    frame = frames.decode(b'{"type": "ping", "ref": {"a": [1, 2.5, null]}}')
    assert isinstance(frame, frames.PingFrame) and frame.ref == {"a": [1, 2.5, None]}
    assert msgspec.json.decode(frames.pong(frame.ref)) == {"type": "pong", "ref": frame.ref}


def test_a_null_ref_is_echoed_and_a_missing_one_is_not() -> None:
    assert msgspec.json.decode(frames.pong(frames.decode('{"type":"ping","ref":null}').ref)) == {
        "type": "pong",
        "ref": None,
    }
    assert msgspec.json.decode(frames.pong(frames.decode('{"type":"ping"}').ref)) == {
        "type": "pong"
    }


@pytest.mark.parametrize(
    "data", [b"", b"nul", b"[]", b'"text"', b"{", b"\xff\xfe", b'{"type": 5}', b'{"ref": 1}']
)
def test_what_is_not_a_typed_json_object_is_bad_request(data: bytes) -> None:
    with pytest.raises(frames.FrameError) as refused:
        frames.decode(data)
    assert refused.value.code is ErrorCode.BAD_REQUEST


def test_a_bad_frame_with_a_ref_is_answered_with_it() -> None:
    with pytest.raises(frames.FrameError) as refused:
        frames.decode(b'{"type": 5, "ref": "r9"}')
    assert msgspec.json.decode(frames.error(refused.value.code, "x", refused.value.ref)) == {
        "type": "error",
        "code": "bad_request",
        "message": "x",
        "ref": "r9",
    }


def test_a_message_event_carries_every_field_of_the_contract() -> None:
    message = Message("p:1-2#1", "p:1-2", 1, 1, "hi", None, "2026-11-26T14:41:43.123Z", True)
    assert msgspec.json.decode(frames.message_event(message)) == {
        "type": "message",
        "message": {
            "id": "p:1-2#1",
            "conversation": "p:1-2",
            "seq": 1,
            "sender": 1,
            "body": "hi",
            "client_msg_id": None,
            "sent_at": "2026-11-26T14:41:43.123Z",
            "time_separator": True,
            # PROTOCOL-v2 section 1: every message carries the v2 fields, with defaults
            # that read as a v1 text message.
            "kind": "text",
            "attachment": None,
            "reply_to": None,
            "forwarded_from": None,
            "mentions": [],
            "mention_all": False,
            "target_seq": None,
            "recalled": False,
            "edited_at": None,
            "system": None,
        },
    }


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_wire_text_is_a_final_unmasked_text_frame_with_the_right_length(size: int) -> None:
    payload = b"x" * size
    wire = frames.wire_text(payload)
    assert wire[0] == 0x81  # FIN + text
    assert wire[1] & 0x80 == 0  # a server's frames are not masked
    short = wire[1] & 0x7F
    if size < 126:
        assert (short, wire[2:]) == (size, payload)
    elif size < 65_536:
        assert (short, int.from_bytes(wire[2:4], "big"), wire[4:]) == (126, size, payload)
    else:
        assert (short, int.from_bytes(wire[2:10], "big"), wire[10:]) == (127, size, payload)
