"""Guarantee 1: an ack means committed, even when the process is killed.

These run ``tidings serve`` as a real subprocess and kill it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tidings.client import ApiError, Client
from tidings.harness.spawn import ServerProcess

pytestmark = pytest.mark.slow

PASSWORD = "password123"


async def _accounts(url: str, names: list[str]) -> list[Client]:
    clients = []
    for name in names:
        client = Client(url)
        await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        clients.append(client)
    return clients


async def test_every_acked_message_survives_sigkill_once_and_gapless(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()
    clients = await _accounts(server.url, ["kill1", "kill2", "kill3", "kill4", "kill5"])
    ids = [(await c.me()).id for c in clients]
    group = await clients[0].create_group("crash", ids[1:])
    conversations = [f"g:{group.id}", f"p:{ids[0]}-{ids[4]}"]
    acked: dict[str, tuple[str, int]] = {}  # client_msg_id -> (conversation, seq)
    sockets = [await c.connect() for c in clients[:4]]

    async def stream(index: int) -> None:
        n = 0
        while True:
            conversation = conversations[n % 2] if index == 0 else conversations[0]
            key = f"c{index}-{n}"
            try:
                message = await sockets[index].send(conversation, f"body {key}", key)
            except (TimeoutError, ApiError, ConnectionError):
                return
            acked[key] = (message.conversation, message.seq)
            n += 1

    streams = [asyncio.create_task(stream(i)) for i in range(4)]
    await asyncio.sleep(1.5)
    server.kill()
    await asyncio.wait(streams, timeout=15)
    for client in clients:
        await client.close()
    assert len(acked) > 50, "the streams barely ran; the test proves nothing"

    restarted = spawn_server()
    clients = await _accounts_again(restarted.url, ["kill1", "kill5"])
    try:
        stored: dict[str, tuple[str, int]] = {}
        for conversation in conversations:
            messages = await _all_messages(clients[0], conversation)
            seqs = [m.seq for m in messages]
            assert seqs == list(range(1, len(seqs) + 1)), f"gap in {conversation}"
            for message in messages:
                if message.kind == "system":  # a group's created notice, seq 1
                    assert message.seq == 1 and conversation.startswith("g:")
                    continue
                assert message.client_msg_id is not None
                assert message.client_msg_id not in stored, "stored twice"
                stored[message.client_msg_id] = (message.conversation, message.seq)
        for key, position in acked.items():
            assert stored.get(key) == position, f"acked {key} at {position} but lost"
        # The restarted server keeps counting where the dead one stopped.
        last = max(seq for conv, seq in stored.values() if conv == conversations[0])
        message = await clients[0].send(conversations[0], "after the crash")
        assert message.seq == last + 1
    finally:
        for client in clients:
            await client.close()


async def test_sigterm_closes_sockets_with_1001_and_keeps_what_was_acked(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()
    alice, bob = await _accounts(server.url, ["term1", "term2"])
    conversation = f"p:{(await alice.me()).id}-{(await bob.me()).id}"
    ws = await alice.connect()
    sent = [await ws.send(conversation, f"m{i}", f"k{i}") for i in range(20)]
    loop = asyncio.get_running_loop()
    exit_code = await loop.run_in_executor(None, server.terminate)
    assert exit_code == 0
    assert await ws.wait_closed() == 1001
    await alice.close()
    await bob.close()

    restarted = spawn_server()
    (bob,) = await _accounts_again(restarted.url, ["term2"])
    try:
        assert [m.id for m in await bob.messages(conversation)] == [m.id for m in sent]
    finally:
        await bob.close()


async def _accounts_again(url: str, names: list[str]) -> list[Client]:
    clients = []
    for name in names:
        client = Client(url)
        await client.login(name, PASSWORD)
        clients.append(client)
    return clients


async def _all_messages(client: Client, conversation: str) -> list:  # type: ignore[type-arg]
    found = []
    after = 0
    while batch := await client.messages(conversation, after=after, limit=200):
        found.extend(batch)
        after = batch[-1].seq
    return found
