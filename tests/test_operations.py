"""Operating the server: readiness, metrics, and the abuse limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import (
    PASSWORD,
    Account,
    RunningServer,
    ServerFactory,
    ServerProcess,
    private,
)
from tidings.client import ApiError, Client, private_conversation


async def test_readyz_reports_each_backend(server: RunningServer) -> None:
    async with Client(server.url) as client:
        status, body = await client.request("GET", "/readyz")
    assert status == 200 and body["ready"] is True  # type: ignore[index]
    assert len(body["node"]) == 8  # type: ignore[index]  # which node answered
    checks = body["checks"]  # type: ignore[index]
    assert checks["database"] == "ok"
    if server.settings.redis_url:
        assert checks["redis"] == "ok"


async def test_metrics_count_messages_latency_and_errors(
    server: RunningServer, alice: Account, bob: Account
) -> None:
    async with await alice.client.connect() as ws:
        for n in range(5):
            await ws.send(private(alice, bob), f"m{n}")
        await ws.send_raw("not json")
        await ws.next_event()
    async with aiohttp.ClientSession() as session, session.get(server.url + "/metrics") as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = await answer.text()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["tidings_messages_committed_total"] >= 5
    assert values["tidings_ack_latency_seconds_count"] >= 5
    assert values['tidings_errors_total{code="bad_request",edge="websocket"}'] >= 1
    assert "tidings_connections" in values and "tidings_writer_pending" in values


async def test_a_websocket_from_a_foreign_origin_is_refused(
    make_server: ServerFactory,
) -> None:
    server = await make_server(allowed_origins="https://app.example.com")
    host = server.url.removeprefix("http://")
    async with aiohttp.ClientSession() as session:
        for origin, allowed in (
            ("https://evil.example.net", False),
            ("https://app.example.com", True),
            (f"http://{host}", True),  # the server's own pages
        ):
            try:
                ws = await session.ws_connect(server.url + "/ws", origin=origin)
            except aiohttp.WSServerHandshakeError as refused:
                assert not allowed and refused.status == 403, origin
            else:
                assert allowed, origin
                await ws.close()
        # Non-browser clients send no Origin and are not affected.
        ws = await session.ws_connect(server.url + "/ws")
        await ws.close()


async def test_connections_per_user_are_capped(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_user=2)
    async with Client(server.url) as client:
        await client.signup("capped", PASSWORD)
        await client.login("capped", PASSWORD)
        kept = [await client.connect(), await client.connect()]
        with pytest.raises(ApiError):
            await client.connect()
        await kept[0].close()
        again = await client.connect()  # a slot freed up
        await again.close()
        await kept[1].close()


async def test_repeated_failed_logins_from_one_address_are_rate_limited(
    make_server: ServerFactory,
) -> None:
    server = await make_server(login_failures_per_minute=3)
    async with Client(server.url) as client:
        await client.signup("guarded", PASSWORD)
        for _ in range(3):
            status, body = await client.request(
                "POST", "/api/v1/sessions", {"username": "guarded", "password": "wrong guess"}
            )
            assert status == 401
        status, body = await client.request(
            "POST", "/api/v1/sessions", {"username": "guarded", "password": PASSWORD}
        )
        # Even the right password waits now: that is what slows a brute force.
        assert status == 429 and body["error"]["code"] == "rate_limited"  # type: ignore[index]


async def test_json_logs_are_one_object_per_line_and_never_carry_a_token(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    log_file = tmp_path / "server.log"
    server = spawn_server(stderr_to=log_file, TIDINGS_LOG_FORMAT="json", TIDINGS_LOG_LEVEL="DEBUG")
    async with Client(server.url) as client:
        await client.signup("logged", PASSWORD)
        session = await client.login("logged", PASSWORD)
        async with await client.connect() as ws:
            answer = await ws.request({"type": "nonsense"})
            assert answer["code"] == "unknown_type"
        await client.logout()
    assert server.terminate() == 0
    text = log_file.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert records, "the server logged nothing"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    assert any(r["logger"] == "tidings" and r["level"] == "INFO" for r in records)
    assert session.token not in text
    assert PASSWORD not in text


def _gc_collections(text: str) -> dict[str, float]:
    prefix = 'python_gc_collections_total{generation="'
    return {
        line[len(prefix)]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_a_burst_of_sends_sets_off_hardly_any_collection_on_a_served_node(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """``tidings serve`` raises the cyclic collector's first threshold: the live
    objects of sends in flight no longer set off young collections by the
    hundred and full ones that walk every socket's state (a fifth of a loaded
    core, docs/benchmarks.md stop 39). /metrics shows each generation's count."""
    server = spawn_server()
    async with Client(server.url) as client, aiohttp.ClientSession() as session:
        alice = await client.signup("gc_alice", PASSWORD)
        bob = await client.signup("gc_bob", PASSWORD)
        await client.login("gc_alice", PASSWORD)
        chat = private_conversation(alice.id, bob.id)
        sockets = [await client.connect() for _ in range(4)]

        async def metrics() -> dict[str, float]:
            async with session.get(server.url + "/metrics") as answer:
                return _gc_collections(await answer.text())

        before = await metrics()
        assert set(before) == {"0", "1", "2"}
        for _ in range(3):  # 1,200 sends, 400 in flight at a time
            await asyncio.gather(
                *(ws.send(chat, f"burst {n}") for ws in sockets for n in range(100))
            )
        after = await metrics()
        for ws in sockets:
            await ws.close()
    assert after["2"] == before["2"], (before, after)
    assert after["0"] - before["0"] <= 5, (before, after)
