"""Hostile WebSocket frames: the decoder and a live socket never answer outside the contract.

Part one fuzzes :func:`tidings.gateway.frames.decode` alone: any bytes, any
JSON value, any nesting depth gives a ``ClientFrame`` or a ``FrameError``
with a contract code, never another exception.

Part two drives a live server over one authenticated socket per test: each
generated frame (``send``, ``read``, ``ping``, ``auth``, unknown types, with
fields of any JSON type and any ``ref``) gets exactly one answer (ack, pong
or error) carrying the frame's ``ref`` (none if it sent none), every error
code is one of the contract's, the socket stays open, and a normal send
works afterwards.

How "exactly one answer" is checked without a timeout per example: after
each frame a ``ping`` with a sentinel ``ref`` follows, and frames are read
until both answers are in. A pong may overtake the ack of a send (the ack
waits for the commit), so order is not assumed; a missing answer times out
and a second answer shows up as an extra frame in the next example (and in
the final silence check).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Account, private
from tests.contract import CONTRACT_CODES
from tidings.client import Socket
from tidings.gateway import frames

MAX_BODY = 4000  # the default TIDINGS_MAX_BODY_CHARS
MAX_SEQ = 2**63 - 1
ABSENT: Any = object()  # a field left out of the frame

# -- strategies -------------------------------------------------------------

# Text that UTF-8 can carry (no lone surrogates: JSON text cannot hold them).
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
EMOJI_RTL = st.sampled_from(["😀", "👩‍👩‍👧", "🇺🇦", "مرحبا", "שלום", "\u202e", "ä", "𝄞", "\u200b"])
UNICODE_BODY = st.lists(st.one_of(EMOJI_RTL, TEXT), min_size=1, max_size=8).map("".join)
NEAR_LIMIT_BODY = st.tuples(st.integers(MAX_BODY - 3, MAX_BODY + 3), EMOJI_RTL).map(
    lambda size_char: (size_char[1] * size_char[0])[: size_char[0]].ljust(size_char[0], "x")
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: 2**64 and far beyond
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def deep(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels deep: arrays, or objects under the key "a"."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# -- part one: the pure decoder ----------------------------------------------


def assert_decodes_or_refuses(data: str | bytes) -> frames.ClientFrame | None:
    """``decode`` either gives a frame or a FrameError with a contract code."""
    try:
        frame = frames.decode(data)
    except frames.FrameError as exc:
        assert str(exc.code) in CONTRACT_CODES, exc
        return None
    assert frames.frame_type(frame) in frames.CLIENT_FRAME_TYPES
    return frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_of_any_bytes_gives_a_frame_or_a_contract_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_decode_of_any_json_value_gives_a_frame_or_a_contract_error(value: Any) -> None:
    encoded = json.dumps(value, ensure_ascii=False).encode()
    frame = assert_decodes_or_refuses(encoded)
    if frame is not None:
        assert isinstance(value, dict) and value.get("type") == frames.frame_type(frame)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(TEXT, JSON_VALUES, max_size=4),
    st.one_of(st.just(ABSENT), JSON_VALUES),
    st.one_of(st.just(ABSENT), TEXT, JSON_VALUES),
)
def test_decode_keeps_the_ref_of_any_object_frame_whether_or_not_it_is_valid(
    fields: dict[str, Any], ref: Any, kind: Any
) -> None:
    fields = {k: v for k, v in fields.items() if k not in ("ref", "type")}
    if ref is not ABSENT:
        fields["ref"] = ref
    if kind is not ABSENT:
        fields["type"] = kind
    try:
        frame = frames.decode(json.dumps(fields, ensure_ascii=False))
    except frames.FrameError as exc:
        # An unknown type is named as such; a known one with fields of the
        # wrong shape, and anything without a string type, is a bad request.
        unknown = isinstance(kind, str) and kind not in frames.CLIENT_FRAME_TYPES
        assert exc.code == ("unknown_type" if unknown else "bad_request")
        got_ref = exc.ref
    else:
        assert frames.frame_type(frame) == kind
        got_ref = frame.ref
    if ref is ABSENT:
        assert got_ref is frames.NO_REF
    else:
        assert canonical(got_ref) == canonical(ref)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_decode_of_any_text_gives_a_frame_or_a_contract_error(text: str) -> None:
    assert_decodes_or_refuses(text)


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "ping", "ref": ' + str(10**400).encode() + b"}",
        b'{"type": "ping", "ref": -' + str(10**400).encode() + b"}",
        b'{"type": "ping", "ref": 1e999}',
        b'{"type": "ping", "ref": NaN}',
        b'{"type": "ping", "ref": Infinity}',
        b'{"type": "ping", "type": 5}',
        b'{"type": "\\ud800"}',
        b'{"type": "\xed\xa0\x80"}',  # a UTF-8 encoded surrogate
        b'\xef\xbb\xbf{"type": "ping"}',  # a byte order mark
        b'{"type": "ping"} {"type": "ping"}',
        b'{"type": "ping"}\x00',
        b"\x00" * 100,
    ],
)
def test_decode_of_edge_case_json_gives_a_frame_or_a_contract_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [100, 900, 1_000, 10_000, 100_000])
def test_decode_of_deeply_nested_json_gives_a_frame_or_bad_request(depth: int, kind: str) -> None:
    nested = deep(depth, kind)
    assert_decodes_or_refuses(nested)
    assert_decodes_or_refuses('{"type": "ping", "ref": ' + nested + "}")


# -- part two: a live socket -------------------------------------------------


def canonical(value: Any) -> bytes:
    """One spelling per JSON value, to compare refs exactly (1 != 1.0 != true)."""
    return msgspec.json.encode(value, order="sorted")


@dataclass
class Live:
    """Alice's socket and the conversations it may and may not use."""

    sock: Socket
    alice: Account
    bob: Account
    mine: list[str]  # alice may send to and read these
    foreign: list[str]  # exist, but alice is not a member
    missing: list[str]  # name nothing
    sentinels: itertools.count[int]
    # client_msg_id -> the message its first acked send stored.
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture
async def live(alice: Account, bob: Account, carol: Account) -> AsyncIterator[Live]:
    own_group = await alice.client.create_group("mine", [bob.id])
    other_group = await bob.client.create_group("theirs", [carol.id])
    await bob.client.send(private(bob, carol), "secret between bob and carol")
    sock = await alice.client.connect()
    live = Live(
        sock=sock,
        alice=alice,
        bob=bob,
        mine=[private(alice, bob), f"g:{own_group.id}"],
        foreign=[private(bob, carol), f"g:{other_group.id}"],
        missing=["g:999999", f"p:{alice.id}-999999", f"p:{bob.id}-{alice.id}", "p:01-2", "x"],
        sentinels=itertools.count(),
    )
    yield live
    await sock.close()


CONVERSATION_KIND = st.sampled_from(["mine", "foreign", "missing"])


def conversation_field(live: Live, choice: Any) -> Any:
    """Resolve a drawn conversation choice: ("mine", i), ("foreign", i), ... or any value."""
    if isinstance(choice, tuple) and choice and choice[0] in ("mine", "foreign", "missing"):
        pool = getattr(live, choice[0])
        return pool[choice[1] % len(pool)]
    return choice


def resolve(live: Live, frame: dict[str, Any]) -> None:
    """Resolve the drawn conversation choices of a frame in place (a forward's too)."""
    if "conversation" in frame:
        frame["conversation"] = conversation_field(live, frame["conversation"])
    forward = frame.get("forward")
    if isinstance(forward, dict) and "conversation" in forward:
        forward["conversation"] = conversation_field(live, forward["conversation"])


# one_of picks its branches about evenly: repeats weigh real ids and good bodies more.
CONVERSATIONS = st.one_of(
    *[st.tuples(st.just("mine"), st.integers(0, 9))] * 4,
    st.tuples(CONVERSATION_KIND, st.integers(0, 9)),
    st.just(ABSENT),
    TEXT,
    JSON_VALUES,
)
BODIES = st.one_of(
    UNICODE_BODY, UNICODE_BODY, NEAR_LIMIT_BODY, st.just(""), st.just(ABSENT), JSON_VALUES
)
CLIENT_MSG_IDS = st.one_of(
    st.just(ABSENT), st.none(), st.text(min_size=0, max_size=70), JSON_VALUES
)
SEQS = st.one_of(
    st.integers(0, 50), st.integers(), st.integers(MAX_SEQ - 2, MAX_SEQ + 2), JSON_VALUES
)
REFS = st.one_of(st.just(ABSENT), JSON_VALUES)
MENTIONS = st.one_of(st.lists(st.integers(0, 5), max_size=4), JSON_VALUES)
FORWARDS = st.one_of(
    st.fixed_dictionaries(
        {"conversation": st.tuples(CONVERSATION_KIND, st.integers(0, 9)), "seq": SEQS}
    ),
    JSON_VALUES,
)
V2_SEND_FIELDS = ("reply_to", "mentions", "mention_all", "forward", "kind")
EXTRA_FIELDS = st.dictionaries(TEXT, JSON_VALUES, max_size=3)


def put(frame: dict[str, Any], name: str, value: Any) -> None:
    if value is not ABSENT:
        frame[name] = value


@st.composite
def client_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A frame as a dict, with conversation choices still unresolved."""
    kinds = ["send"] * 5 + ["read"] * 3 + ["recall"] * 2 + ["edit"] * 2 + ["typing"] * 2
    kinds += ["ping", "auth", "?", "!"]
    kind = draw(st.sampled_from(kinds))
    if kind == "?":
        kind = draw(TEXT)  # an unknown type, mostly
    elif kind == "!":
        kind = draw(st.one_of(st.just(ABSENT), JSON_VALUES))  # not even a string
    frame: dict[str, Any] = {
        k: v for k, v in draw(EXTRA_FIELDS).items() if k not in ("type", "ref")
    }
    put(frame, "type", kind)
    put(frame, "ref", draw(REFS))
    if kind == "send":
        put(frame, "conversation", draw(CONVERSATIONS))
        put(frame, "body", draw(BODIES))
        put(frame, "client_msg_id", draw(CLIENT_MSG_IDS))
        if draw(st.booleans()):  # PROTOCOL-v2 section 2's fields, good and bad
            put(frame, "reply_to", draw(st.one_of(st.just(ABSENT), SEQS)))
            put(frame, "mentions", draw(st.one_of(st.just(ABSENT), MENTIONS)))
            put(frame, "mention_all", draw(st.one_of(st.just(ABSENT), JSON_VALUES)))
            put(frame, "forward", draw(st.one_of(st.just(ABSENT), FORWARDS)))
            put(frame, "kind", draw(st.one_of(st.just(ABSENT), st.just("image"), TEXT)))
    elif kind in ("recall", "edit"):
        put(frame, "conversation", draw(CONVERSATIONS))
        put(frame, "seq", draw(SEQS))
        put(frame, "client_msg_id", draw(CLIENT_MSG_IDS))
        if kind == "edit":
            put(frame, "body", draw(BODIES))
    elif kind == "read":
        put(frame, "conversation", draw(CONVERSATIONS))
        put(frame, "seq", draw(SEQS))
    elif kind == "typing":  # PROTOCOL-v2 section 5: no answer unless refused
        put(frame, "conversation", draw(CONVERSATIONS))
    elif kind == "auth":
        put(frame, "token", draw(st.one_of(TEXT, JSON_VALUES)))
    return frame


async def exchange(live: Live, data: str | bytes, *, silent_ok: bool = False) -> dict[str, Any]:
    """Send one frame, then a sentinel ping; return the one answer to the frame
    (``{}`` when ``silent_ok`` and none came: a socket handles its frames in
    order, so an answer would have come before the pong)."""
    sentinel = {"\x00sentinel": next(live.sentinels)}
    await live.sock.send_raw(data)
    await live.sock.send_raw(frames.encode({"type": "ping", "ref": sentinel}).decode())
    answers: list[dict[str, Any]] = []
    pong = False
    while not (pong and (answers or silent_ok)):
        got = await live.sock.next_event(timeout=10)
        if got.get("type") == "pong" and got.get("ref") == sentinel:
            assert not pong, f"two pongs for one ping: {got}"
            pong = True
        else:
            assert not answers, f"a second answer {got} after {answers[0]} for {data!r:.300}"
            answers.append(got)
    assert not live.sock.closed, f"closed with {live.sock.close_code} after {data!r:.300}"
    return answers[0] if answers else {}


def assert_answer_shape(answer: dict[str, Any], ref: Any) -> None:
    """An ack, pong or contract error, carrying ``ref`` exactly (or no ref)."""
    assert answer.get("type") in ("ack", "pong", "error"), answer
    if ref is ABSENT:
        assert "ref" not in answer, answer
    else:
        assert "ref" in answer, answer
        assert canonical(answer["ref"]) == canonical(ref), answer
    if answer["type"] == "error":
        assert answer.get("code") in CONTRACT_CODES, answer
        assert isinstance(answer.get("message"), str), answer


def alices_private(live: Live, conversation: object) -> bool:
    """A private conversation id (``p:a-b``, a < b) that has alice in it."""
    if not isinstance(conversation, str) or not conversation.startswith("p:"):
        return False
    low, _, high = conversation[2:].partition("-")
    if not (low.isascii() and low.isdigit() and high.isascii() and high.isdigit()):
        return False
    return int(low) < int(high) and live.alice.user.id in (int(low), int(high))


def expected(live: Live, frame: dict[str, Any]) -> str | None:
    """The answer the contract fixes for this frame ("ack", "pong" or an error
    code), or None where several refusals are fair (e.g. two bad fields)."""
    kind = frame.get("type", ABSENT)
    if not isinstance(kind, str):
        return "bad_request"
    if kind == "ping":
        return "pong"
    if kind == "auth":
        return "bad_request"
    if kind == "typing":
        conversation = frame.get("conversation", ABSENT)
        if not isinstance(conversation, str):
            return "bad_request"
        return "silent" if conversation in live.mine else None
    if kind not in ("send", "read", "recall", "edit"):
        return "unknown_type"
    if kind in ("recall", "edit") or any(name in frame for name in V2_SEND_FIELDS):
        return None  # several refusals are fair; the shape and the ack's content are checked
    mine = frame.get("conversation") in live.mine
    if kind == "read":
        seq = frame.get("seq", ABSENT)
        good_seq = type(seq) is int and 0 <= seq <= MAX_SEQ
        if mine:
            return "ack" if good_seq else "bad_request"
        return None
    body = frame.get("body", ABSENT)
    cmid = frame.get("client_msg_id")
    good_cmid = cmid is None or (
        isinstance(cmid, str) and 1 <= len(cmid) <= 64 and "\x00" not in cmid
    )
    if not (mine and good_cmid):
        return None
    if not isinstance(body, str) or not body:
        return "bad_request"
    if len(body) > MAX_BODY:
        return "too_large"
    # No database stores U+0000 alike (PostgreSQL refuses it), so no body has it.
    return "bad_request" if "\x00" in body else "ack"


def assert_ack_content(live: Live, frame: dict[str, Any], answer: dict[str, Any]) -> None:
    """An ack carries the message sent, or the original one for a repeated client_msg_id."""
    if frame["type"] == "read":
        assert answer["conversation"]["id"] == frame["conversation"]
        return
    message = answer["message"]
    cmid = frame.get("client_msg_id")
    if cmid is not None and cmid in live.originals:
        assert message == live.originals[cmid], "a repeat acks the original entry"
        return
    if frame["type"] in ("recall", "edit"):
        assert (message["kind"], message["target_seq"]) == (frame["type"], frame["seq"])
        if message["client_msg_id"] != cmid:  # recalled before: the first recall's notice
            assert frame["type"] == "recall", message
            return
        if frame["type"] == "edit":
            assert message["body"] == frame["body"]
    elif frame.get("forward") is not None:
        assert message["forwarded_from"] is not None
    else:
        assert message["body"] == frame["body"]
    assert message["conversation"] == frame["conversation"]
    assert message["client_msg_id"] == cmid
    if cmid is not None:
        live.originals[cmid] = message


async def assert_still_works(live: Live) -> None:
    sent = await live.sock.send(live.mine[0], "still here 👋", client_msg_id=None)
    assert sent.body == "still here 👋"
    await live.sock.ping()
    assert live.sock.drain() == []


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(frame=client_frames())
# A NUL in a body or key is refused on every database (CI drew the first once).
@example(frame={"type": "send", "ref": 1, "conversation": ("mine", 0), "body": "\x00"})
@example(
    frame={
        "type": "send",
        "ref": 2,
        "conversation": ("mine", 0),
        "body": "x",
        "client_msg_id": "\x00",
    }
)
async def test_every_generated_frame_gets_one_contract_answer_with_its_ref(
    live: Live, frame: dict[str, Any]
) -> None:
    resolve(live, frame)
    typing = frame.get("type") == "typing"
    answer = await exchange(live, json.dumps(frame, ensure_ascii=False), silent_ok=typing)
    want = expected(live, frame)
    kind = frame.get("type")
    if not answer:  # a typing frame taken in silence: only one of one's own chats
        # (with a user id that names nobody, a private chat of alice's is hers
        # too: typing there is relayed to no one; a refusal would be as fair)
        assert want == "silent" or alices_private(live, frame.get("conversation")), frame
        event("typing -> silent")
        return
    assert want != "silent", (frame, answer)
    assert_answer_shape(answer, frame.get("ref", ABSENT))
    got = answer.get("code", answer["type"])
    known = ("send", "read", "recall", "edit", "typing", "ping", "auth")
    label = kind if kind in known else "unknown"
    event(f"{label if isinstance(kind, str) else 'non-string type'} -> {got}")
    if want is not None:
        assert got == want, (frame, answer)
    if answer["type"] == "ack":
        assert_ack_content(live, frame, answer)


@settings(FUZZ, max_examples=60)
@given(frame=client_frames())
async def test_a_normal_send_still_works_after_any_generated_frame(
    live: Live, frame: dict[str, Any]
) -> None:
    resolve(live, frame)
    await exchange(
        live, json.dumps(frame, ensure_ascii=False), silent_ok=frame.get("type") == "typing"
    )
    await assert_still_works(live)


@FUZZ
@given(data=st.binary(max_size=300))
async def test_any_binary_frame_is_answered_bad_request_and_the_socket_stays_open(
    live: Live, data: bytes
) -> None:
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        value = None
    assume(not isinstance(value, dict))
    answer = await exchange(live, data)
    assert_answer_shape(answer, ABSENT)
    assert answer.get("code") == "bad_request", answer


@FUZZ
@given(value=JSON_VALUES)
async def test_any_json_value_as_a_frame_gets_one_contract_answer(live: Live, value: Any) -> None:
    answer = await exchange(live, json.dumps(value, ensure_ascii=False))
    ref = value["ref"] if isinstance(value, dict) and "ref" in value else ABSENT
    assert_answer_shape(answer, ref)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["frame", "ref", "body"])
async def test_deeply_nested_json_frames_get_bad_request_and_the_socket_stays_open(
    live: Live, kind: str, where: str
) -> None:
    nested = deep(10_000, kind)
    data = {
        "frame": nested,
        "ref": '{"type": "ping", "ref": ' + nested + "}",
        "body": '{"type": "send", "ref": "r", "conversation": "'
        + live.mine[0]
        + '", "body": '
        + nested
        + "}",
    }[where]
    answer = await exchange(live, data)
    assert answer.get("type") == "error" and answer.get("code") == "bad_request", answer
    await assert_still_works(live)


@pytest.mark.parametrize(
    "body",
    ["😀" * MAX_BODY, "مرحبا" * (MAX_BODY // 5), "👩‍👩‍👧" * (MAX_BODY // 5), "\u202e" * MAX_BODY],
    ids=["emoji", "rtl", "zwj-family", "rtl-override"],
)
async def test_a_body_of_exactly_the_limit_in_unicode_characters_is_acked_intact(
    live: Live, body: str
) -> None:
    assert len(body) == MAX_BODY
    answer = await exchange(
        live, json.dumps({"type": "send", "ref": 1, "conversation": live.mine[0], "body": body})
    )
    assert answer["type"] == "ack", answer
    assert answer["message"]["body"] == body
    too_long = json.dumps(
        {"type": "send", "ref": 2, "conversation": live.mine[0], "body": body + body[-1]}
    )
    assert (await exchange(live, too_long)).get("code") == "too_large"
