"""A client that stops reading is cut off (1013); everyone else is unaffected."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import PASSWORD, ServerFactory
from tidings.client import Client
from tidings.gateway.context import Edge


async def test_a_client_that_never_reads_is_dropped_and_others_get_everything(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        send_queue_frames=64, write_batch_max=16, rate_limit_connection=0, rate_limit_user=0
    )
    names = ["sender", "stalled", "reader"]
    clients = [Client(server.url) for _ in names]
    users = []
    for client, name in zip(clients, names, strict=True):
        await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        users.append(await client.me())
    sender, stalled, reader = clients
    group = await sender.create_group("flood", [users[1].id, users[2].id])
    conversation = f"g:{group.id}"
    hub = server.app[Edge.KEY].hub

    # aiohttp stops reading the socket once its small buffer is full and
    # receive() is never called: a client that stopped reading.
    async with aiohttp.ClientSession() as session:
        stuck = await session.ws_connect(server.url + "/ws", max_msg_size=0)
        await stuck.send_json({"type": "auth", "token": stalled.token})
        assert (await stuck.receive_json())["type"] == "auth_ok"
        assert hub.is_online(users[1].id)

        reader_ws = await reader.connect()
        sender_ws = await sender.connect()
        body = "x" * 4000
        count = 4000
        for start in range(0, count, 200):
            for n in range(start, start + 200):
                await sender_ws.send_raw(
                    f'{{"type":"send","ref":{n},"conversation":"{conversation}","body":"{body}"}}'
                )
            for _ in range(200):
                assert (await sender_ws.next_event(timeout=20))["type"] == "ack"
        seqs = [(await reader_ws.next_event(timeout=20))["message"]["seq"] for _ in range(count)]  # type: ignore[index]
        assert seqs == list(range(2, count + 2))  # after the group's created notice
        # Cut off at once (nothing more is queued), gone once the close times out.
        stalled_connection = hub.connections_of(users[1].id)
        assert all(c.state.value != "open" for c in stalled_connection)
        for _ in range(100):
            if not hub.is_online(users[1].id):
                break
            await asyncio.sleep(0.1)
        assert not hub.is_online(users[1].id), "the stalled client was never cut off"
        await stuck.close()
    for client in clients:
        await client.close()
