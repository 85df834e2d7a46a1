"""The examples run: the echo bot answers, the backend app's login gives a working token."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib.util
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from tests.conftest import Account, RunningServer, ServerFactory
from tests.loopback import serving
from tidings.client import AdminClient, Client, Socket, message_of, private_conversation
from tidings.models import Message

TOKEN = "examples-s3cret"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
async def server(make_server: ServerFactory) -> RunningServer:
    return await make_server(service_token=TOKEN)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["echo_bot", "backend_app", "push_backend"])
def test_each_example_has_a_help(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


@contextlib.asynccontextmanager
async def echo_bot(url: str) -> AsyncIterator[int]:
    """Run examples/echo_bot.py as a process; yields the bot's user id once it is up."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "echo_bot.py"),
        url,
        "--service-token",
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        found = re.match(r"echo bot: user (\d+) \(echo\)", line)
        if found is None:
            raise AssertionError(f"bot did not start: {line!r} {await process.stderr.read()!r}")
        yield int(found.group(1))
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def answer_from(ws: Socket, sender: int) -> Message:
    """The next message event sent by ``sender``. (With Redis fan-out, a socket
    opened just after a send may also get that earlier message: skip it.)"""
    while True:
        message = message_of(await ws.next_event(timeout=10))
        if message.sender == sender:
            return message


async def test_the_echo_bot_answers_private_messages(alice: Account, server: RunningServer) -> None:
    async with AdminClient(server.url, TOKEN) as admin:
        bot = await admin.create_user("echo")  # the bot finds it rather than creating it
    conversation = private_conversation(alice.id, bot.id)
    await alice.client.send(conversation, "sent before the bot started")
    async with await alice.client.connect() as ws, echo_bot(server.url) as bot_id:
        assert bot_id == bot.id
        first = await answer_from(ws, bot.id)
        assert (first.body, first.seq) == ("echo: sent before the bot started", 2)
        await ws.send(conversation, "hello, bot")
        second = await answer_from(ws, bot.id)
        assert (second.body, second.seq) == ("echo: hello, bot", 4)
        with pytest.raises(TimeoutError):  # one answer each, and no echo of an echo
            await ws.next_event(timeout=0.5)


@contextlib.asynccontextmanager
async def backend_app(tidings_url: str) -> AsyncIterator[str]:
    app = load("backend_app").make_app(tidings_url, TOKEN)
    async with serving(app, access_log=None) as origin:
        yield origin


async def test_the_backend_app_logs_its_users_in_to_tidings(server: RunningServer) -> None:
    async with backend_app(server.url) as shop, aiohttp.ClientSession() as http:
        async with http.get(shop + "/") as page:
            assert page.status == 200 and "<form" in await page.text()
        login = {"username": "alice", "password": "wonderland"}
        async with http.post(shop + "/login", json=login) as answer:
            assert answer.status == 200
            first = await answer.json()
        assert first["tidings_url"] == server.url
        assert first["user"]["username"] == "alice"
        client = Client(first["tidings_url"], first["token"])
        async with client, await client.connect() as ws:  # the token works on the WebSocket
            assert ws.user is not None and ws.user.id == first["user"]["id"]
            assert ws.user.display_name == "Alice Liddell"
            await ws.ping()
        async with http.post(shop + "/login", data=login) as answer:  # the form, again
            again = await answer.json()
        assert again["user"]["id"] == first["user"]["id"] and again["token"] != first["token"]
        wrong = {"username": "alice", "password": "not it"}
        async with http.post(shop + "/login", json=wrong) as answer:
            assert answer.status == 401

    # A new process of the app (no memory of ids) finds the existing tidings user.
    async with backend_app(server.url) as shop, aiohttp.ClientSession() as http:
        async with http.post(shop + "/login", json=login) as answer:
            later = await answer.json()
        assert later["user"]["id"] == first["user"]["id"]


async def test_the_push_backend_forwards_signed_pushes_only() -> None:
    forwarded: list[dict[str, object]] = []

    async def forward(push: dict[str, object]) -> None:
        forwarded.append(push)

    module = load("push_backend")
    push = b'{"event":"push","type":"push","user_id":2,"conversation":"p:1-2","seq":1,'
    push += b'"title":"Alice","body":"hi","total_unread":1}'
    good = "sha256=" + hmac.new(TOKEN.encode(), push, hashlib.sha256).hexdigest()
    app = module.make_app(TOKEN, forward)
    async with serving(app, access_log=None) as origin, aiohttp.ClientSession() as http:
        url = f"{origin}/tidings"
        async with http.post(url, data=push, headers={"X-Tidings-Signature": "x"}) as r:
            assert r.status == 401
        async with http.post(url, data=push, headers={"X-Tidings-Signature": good}) as r:
            assert r.status == 204
    assert [p["user_id"] for p in forwarded] == [2]
