"""RFC 6455 on ``GET /ws``, byte by byte, as any WebSocket client library would speak it.

After the upgrade the socket leaves aiohttp for tidings' own frame layer
(``tidings/gateway/wire.py``); these tests talk to it over a bare TCP
socket so that what a client library might do (pipeline its first frame
behind the upgrade, fragment a message, ping mid-message, split a frame
over many packets, break the protocol) is checked from outside. The frame
layer does not depend on the database, so one stack is enough.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from pathlib import Path

import msgspec
import pytest

from tests.conftest import Account, RunningServer, private, settings_for, start_server
from tidings.gateway.context import Edge
from tidings.harness.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    server_frame,
)

TEXT, BINARY, CLOSE, PING, PONG = OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def stack() -> str:
    return "sqlite"


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """One client frame (the harness codec) with a random mask key; masked unless told otherwise."""
    return client_frame(payload, opcode, fin=fin, rsv=rsv, mask=os.urandom(4) if masked else None)


def json_frame(value: object, **options: bool) -> bytes:
    return frame(TEXT, msgspec.json.encode(value), **options)


class RawSocket:
    """A WebSocket client in a few lines, to send exactly the bytes a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head = ""  # the status line and headers answering the upgrade
        self.buffer = bytearray()  # received, not yet read as a frame

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    async def json_body(self) -> dict[str, object]:
        size = int(self.header("Content-Length") or 0)
        value = msgspec.json.decode(await asyncio.wait_for(self.reader.readexactly(size), 10))
        assert isinstance(value, dict)
        return value

    @classmethod
    async def upgrade(
        cls,
        server: RunningServer,
        *,
        headers: dict[str, str] | None = None,
        then: bytes = b"",
        method: str = "GET",
    ) -> tuple[int, RawSocket]:
        """Send the upgrade request (and ``then`` in the same write); the status and socket."""
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        sent = {
            "Host": f"{host}:{port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        } | (headers or {})
        request = f"{method} /ws HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in sent.items() if value is not None
        )
        writer.write(request.encode() + b"\r\n" + then)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])

        if status == 101:
            accept = [
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-accept:")
            ]
            assert accept == [base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())], head
        sock = cls(reader, writer)
        sock.head = head.decode("latin-1")
        return status, sock

    async def read_frame(self, within: float = 10) -> tuple[int, bytes]:
        """The next server frame, decoded by the harness codec (it refuses a masked one)."""
        while (found := server_frame(self.buffer)) is None:
            data = await asyncio.wait_for(self.reader.read(65536), within)
            if not data:
                raise asyncio.IncompleteReadError(bytes(self.buffer), None)
            self.buffer += data
        opcode, _, payload, taken = found
        del self.buffer[:taken]
        return opcode, payload

    async def read_json(self) -> dict[str, object]:
        opcode, payload = await self.read_frame()
        assert opcode == TEXT, (opcode, payload)
        value = msgspec.json.decode(payload)
        assert isinstance(value, dict)
        return value

    async def closed_with(self, within: float = 10) -> int:
        """Read until the server's close frame; its code. The server then ends TCP."""
        while True:
            opcode, payload = await self.read_frame(within)
            if opcode == CLOSE:
                code: int = struct.unpack("!H", payload[:2])[0]
                self.writer.write(frame(CLOSE, payload[:2]))
                assert await self.rest(within) == b""
                return code

    async def rest(self, within: float = 10) -> bytes:
        """What the server sends after the frames read, until it ends TCP."""
        rest = bytes(self.buffer) + await asyncio.wait_for(self.reader.read(), within)
        self.buffer.clear()
        return rest

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


def auth(account: Account) -> bytes:
    return json_frame({"type": "auth", "token": account.client.token})


async def authenticated(server: RunningServer, account: Account) -> RawSocket:
    status, sock = await RawSocket.upgrade(server)
    assert status == 101
    await sock.send(auth(account))
    assert (await sock.read_json())["type"] == "auth_ok"
    return sock


async def test_an_auth_frame_sent_behind_the_upgrade_request_is_answered(
    server: RunningServer, alice: Account
) -> None:
    status, sock = await RawSocket.upgrade(server, then=auth(alice))
    try:
        assert status == 101
        assert (await sock.read_json())["type"] == "auth_ok"
    finally:
        sock.close()


async def test_a_fragmented_send_with_a_ping_inside_is_acked_and_the_ping_answered(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    sock = await authenticated(server, alice)
    try:
        text = msgspec.json.encode(
            {"type": "send", "ref": 7, "conversation": private(alice, bob), "body": "in parts"}
        )
        await sock.send(frame(TEXT, text[:10], fin=False))
        await sock.send(frame(PING, b"still there?"))
        await sock.send(frame(0x0, text[10:20], fin=False))
        await sock.send(frame(0x0, text[20:]))
        assert await sock.read_frame() == (PONG, b"still there?")
        ack = await sock.read_json()
        assert ack["type"] == "ack" and ack["ref"] == 7, ack
        assert ack["message"]["body"] == "in parts"  # type: ignore[index]
    finally:
        sock.close()


async def test_a_frame_split_over_many_packets_is_read_whole(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    sock = await authenticated(server, alice)
    try:
        body = "é" * 3000  # 6,000 bytes: a 16-bit length
        data = json_frame(
            {"type": "send", "ref": 1, "conversation": private(alice, bob), "body": body}
        ) + json_frame({"type": "ping", "ref": 2})
        for at in range(0, len(data), 333):
            await sock.send(data[at : at + 333])
            await asyncio.sleep(0)
        answers = {(a := await sock.read_json())["ref"]: a for _ in range(2)}
        assert answers[1]["message"]["body"] == body  # type: ignore[index]
        assert answers[2]["type"] == "pong"
    finally:
        sock.close()


async def test_a_message_at_a_raised_size_limit_in_64_byte_fragments_is_read_whole(
    tmp_path: Path,
) -> None:
    """One fragment per 64 bytes of the limit is allowed: 4,096 at 256 KiB."""
    limit = 256 * 1024
    server, runner = await start_server(settings_for(tmp_path, max_frame_bytes=limit))
    try:
        status, sock = await RawSocket.upgrade(server)
        assert status == 101
        text = b'{"type":"auth","token":"not a token"' + b" " * (limit - 38) + b"}"
        parts = [text[at : at + 64] for at in range(0, len(text), 64)]
        assert len(parts) == limit // 64
        await sock.send(
            frame(TEXT, parts[0], fin=False)
            + b"".join(
                frame(0x0, part, fin=index == len(parts) - 1)
                for index, part in enumerate(parts[1:], start=1)
            )
        )
        # Read whole and understood: refused as a bad token, not as too big (1009).
        assert (await sock.read_json())["type"] == "error"
        assert await sock.closed_with() == 4001
        sock.close()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
async def test_invalid_utf_8_closes_1007_before_the_rest_of_the_message_is_sent(
    server: RunningServer, alice: Account, fragmented: bool
) -> None:
    """RFC 6455 §8.1: fail fast, whether the message or only its frame is unfinished."""
    sock = await authenticated(server, alice)
    try:
        start = b'{"type":"ping","ref":"\xf4\x90'  # U+110000 and up: never valid UTF-8
        if fragmented:
            await sock.send(frame(TEXT, start, fin=False))
        else:
            whole = frame(TEXT, start + b' never sent"}')
            await sock.send(whole[: -len(b' never sent"}')])
        assert await sock.closed_with() == 1007
    finally:
        sock.close()


async def test_a_burst_of_sends_comes_back_as_whole_frames_in_order(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    """Many acks and events for one socket leave together; each is still its own frame."""
    sender, receiver = await authenticated(server, alice), await authenticated(server, bob)
    try:
        conversation = private(alice, bob)
        burst = b"".join(
            json_frame({"type": "send", "ref": i, "conversation": conversation, "body": f"n{i}"})
            for i in range(300)
        )
        await sender.send(burst)  # one TCP write: the server reads them in one go
        acks = [await sender.read_json() for _ in range(300)]
        assert [(a["type"], a["ref"]) for a in acks] == [("ack", i) for i in range(300)]
        seqs = [a["message"]["seq"] for a in acks]  # type: ignore[index]
        assert seqs == sorted(seqs) and len(set(seqs)) == 300
        events = [await receiver.read_json() for _ in range(300)]
        assert [e["message"]["body"] for e in events] == [f"n{i}" for i in range(300)]  # type: ignore[index]
        assert [e["message"]["seq"] for e in events] == seqs  # type: ignore[index]
    finally:
        sender.close()
        receiver.close()


async def test_a_client_close_is_answered_with_its_code_and_the_server_ends_tcp(
    server: RunningServer, alice: Account
) -> None:
    sock = await authenticated(server, alice)
    try:
        await sock.send(frame(CLOSE, struct.pack("!H", 4321) + b"bye"))
        opcode, payload = await sock.read_frame()
        assert (opcode, payload[:2]) == (CLOSE, struct.pack("!H", 4321))
        assert await sock.rest() == b""
    finally:
        sock.close()


BROKEN = {
    "unmasked": (lambda: json_frame({"type": "ping"}, masked=False), 1002),
    "reserved bit": (lambda: frame(TEXT, b'{"type":"ping"}', rsv=0x40), 1002),
    "unknown opcode": (lambda: frame(0x3, b"x"), 1002),
    "continuation first": (lambda: frame(0x0, b"x"), 1002),
    "fragmented ping": (lambda: frame(PING, b"x", fin=False), 1002),
    "new message inside a message": (
        lambda: frame(TEXT, b'{"ty', fin=False) + frame(TEXT, b'{"type":"ping"}'),
        1002,
    ),
    "text not utf-8": (lambda: frame(TEXT, b'{"type":"\xff"}'), 1007),
    "declared over the limit": (lambda: frame(BINARY, b"x" * (64 * 1024 + 1)), 1009),
    "endless empty fragments": (
        lambda: frame(TEXT, b"", fin=False) + frame(0x0, b"", fin=False) * 1100,
        1009,
    ),
    "fragments over the limit": (
        lambda: frame(TEXT, b"x" * 40_000, fin=False) + frame(0x0, b"x" * 40_000),
        1009,
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_broken_frame_closes_with_the_rfc_code(
    server: RunningServer, alice: Account, case: str
) -> None:
    make, code = BROKEN[case]
    sock = await authenticated(server, alice)
    try:
        await sock.send(make())
        assert await sock.closed_with() == code
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("method", "headers", "status", "code", "answer_header"),
    [
        ("GET", {"Upgrade": None}, 400, "bad_request", None),
        ("GET", {"Connection": "keep-alive"}, 400, "bad_request", None),
        ("GET", {"Sec-WebSocket-Key": "not base64!"}, 400, "bad_request", None),
        (
            "GET",
            {"Sec-WebSocket-Key": base64.b64encode(b"short").decode()},
            400,
            "bad_request",
            None,
        ),
        # RFC 6455 §4.2.2: an unknown version is refused naming the versions spoken.
        (
            "GET",
            {"Sec-WebSocket-Version": "8"},
            426,
            "bad_request",
            ("Sec-WebSocket-Version", "13"),
        ),
        # RFC 9110 §15.5.6: a 405 names the methods the resource takes.
        ("POST", {"Content-Length": "0"}, 405, "method_not_allowed", ("Allow", "GET")),
    ],
    ids=["no upgrade", "no connection upgrade", "key not base64", "key short", "version 8", "post"],
)
async def test_a_bad_upgrade_request_gets_a_contract_error(
    server: RunningServer,
    method: str,
    headers: dict[str, str],
    status: int,
    code: str,
    answer_header: tuple[str, str] | None,
) -> None:
    answered, sock = await RawSocket.upgrade(server, method=method, headers=headers)
    try:
        assert answered == status
        if answer_header is not None:
            name, wanted = answer_header
            listed = {v.strip() for v in (sock.header(name) or "").split(",")}
            assert wanted in listed and method not in listed, sock.head
        body = await sock.json_body()
        assert body["error"]["code"] == code  # type: ignore[index]
    finally:
        sock.close()


async def test_shutdown_closes_a_socket_that_has_not_authenticated_with_1001(
    tmp_path: Path,
) -> None:
    server, runner = await start_server(settings_for(tmp_path))
    try:
        status, sock = await RawSocket.upgrade(server)
        assert status == 101
        closing = asyncio.ensure_future(sock.closed_with())
        await runner.cleanup()
        assert await closing == 1001
        sock.close()
    finally:
        await runner.cleanup()


async def test_a_server_fault_during_auth_closes_the_socket_with_1011(
    server: RunningServer, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a refusal (those are 4001 or 1013) but a bug: the socket must not hang."""
    edge = server.app[Edge.KEY]

    async def broken(token: str) -> int:
        raise RuntimeError("a bug in authentication")

    monkeypatch.setattr(edge.accounts, "authenticate", broken)
    status, sock = await RawSocket.upgrade(server)
    try:
        await sock.send(auth(alice))
        assert await sock.closed_with() == 1011
    finally:
        sock.close()


def test_the_aiohttp_pin_is_the_range_the_wire_layer_was_tested_on() -> None:
    """pyproject.toml allows exactly the aiohttp versions wire.py accepts at import."""
    from tidings.gateway.wire import TESTED_AIOHTTP

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    oldest, newest = (".".join(map(str, version)) for version in TESTED_AIOHTTP)
    assert f'"aiohttp>={oldest},<={newest}",' in pyproject


@pytest.mark.parametrize("version", ["3.10.11", "3.14.6", "3.15.0", "4.0.0a1"])
def test_an_untested_aiohttp_is_refused_with_what_to_install(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidings.gateway import wire

    monkeypatch.delenv(wire.ALLOW_UNTESTED, raising=False)
    with pytest.raises(ImportError, match=r"aiohttp>=3\.11\.0,<=3\.14\.5"):
        wire._check_aiohttp(version)
    monkeypatch.setenv(wire.ALLOW_UNTESTED, "1")
    wire._check_aiohttp(version)  # the escape hatch for trying a candidate


@pytest.mark.parametrize("version", ["3.11.0", "3.12.15", "3.14.5"])
def test_a_tested_aiohttp_is_accepted(version: str) -> None:
    from tidings.gateway import wire

    wire._check_aiohttp(version)
