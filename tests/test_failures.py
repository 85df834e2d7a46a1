"""Database faults: refusals say `unavailable`, nothing is acked without a commit,
and the server recovers by itself when the database returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.backends import database_url
from tests.conftest import PASSWORD, RunningServer, settings_for, start_server
from tidings.client import ApiError, Client


class CuttableProxy:
    """A TCP proxy on loopback whose links to the database can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new links and break the open ones, as a database going down."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._links):
            writer.transport.abort()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._links.difference_update((writer, up_writer))


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, CuttableProxy]]:
    async with database_url("postgresql", tmp_path) as url:
        real = make_url(url)
        proxy = CuttableProxy(real.port or 5432)
        await proxy.start()
        proxied_url = real.set(port=proxy.port).render_as_string(hide_password=False)
        running, runner = await start_server(settings_for(tmp_path, database_url=proxied_url))
        try:
            yield running, proxy
        finally:
            await runner.cleanup()
            with contextlib.suppress(Exception):
                await proxy.cut()


async def test_database_down_answers_unavailable_and_recovers_by_itself(
    proxied: tuple[RunningServer, CuttableProxy],
) -> None:
    server, proxy = proxied
    alice, bob = Client(server.url), Client(server.url)
    for client, name in ((alice, "alice"), (bob, "bob")):
        await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
    a, b = (await alice.me()).id, (await bob.me()).id
    conversation = f"p:{min(a, b)}-{max(a, b)}"
    ws = await alice.connect()
    first = await ws.send(conversation, "before", "k1")

    await proxy.cut()
    with pytest.raises(ApiError) as refused_ws:
        await ws.send(conversation, "during", "k2")
    assert refused_ws.value.code == "unavailable"
    assert not ws.closed  # the connection stays usable
    status, body = await alice.request(
        "POST", f"/api/v1/conversations/{conversation}/messages", {"body": "during"}
    )
    assert status == 503 and body["error"]["code"] == "unavailable"  # type: ignore[index]

    await proxy.start()  # the database is back, on the same port
    for _ in range(50):
        try:
            retried = await ws.send(conversation, "during", "k2")  # the same client_msg_id
            break
        except ApiError:
            await asyncio.sleep(0.2)
    else:
        raise AssertionError("the server never recovered")
    assert retried.seq == first.seq + 1
    history = await bob.messages(conversation)
    assert [(m.seq, m.client_msg_id) for m in history] == [(1, "k1"), (2, "k2")]
    await ws.close()
    for client in (alice, bob):
        await client.close()
