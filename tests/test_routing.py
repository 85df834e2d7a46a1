"""Events go only to the nodes that hold their recipients (issue 23, part 1).

Four ``tidings serve`` nodes on one PostgreSQL and one Redis. Each node's
``/metrics`` counts the events it took from other nodes
(``tidings_broker_events_received``) and the PUBLISHes it made
(``tidings_broker_publishes``); the tests read them from outside, as an
operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

import pytest
from redis import asyncio as aioredis

from tests.conftest import PASSWORD
from tests.test_cluster import conversation_of
from tidings.client import Client, Socket
from tidings.client.errors import ApiError
from tidings.harness.spawn import ServerProcess
from tidings.nodes import routing_since_key
from tidings.redis_target import RedisTarget

pytestmark = pytest.mark.slow

RECEIVED = "tidings_broker_events_received"
PUBLISHES = "tidings_broker_publishes"
EVENTS_SENT = "tidings_broker_events_sent"
SHARED = "tidings_broker_shared_batches"


class Nodes:
    def __init__(self, servers: list[ServerProcess]) -> None:
        self.servers = servers
        self.clients: list[Client] = []

    async def account(self, name: str, node: int) -> tuple[Client, int]:
        client = Client(self.servers[node].url)
        self.clients.append(client)
        user = await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        return client, user.id

    async def metric(self, node: int, name: str) -> float:
        client = Client(self.servers[node].url)
        try:
            _, text = await client.request("GET", "/metrics")
        finally:
            await client.close()
        found = re.search(rf"^{name} (\S+)$", str(text), re.MULTILINE)
        assert found, f"{name} is not in node {node}'s /metrics"
        return float(found.group(1))

    async def metrics(self, name: str) -> list[float]:
        return [await self.metric(n, name) for n in range(len(self.servers))]


async def spawn_nodes(
    env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> AsyncIterator[Nodes]:
    # A deployment that has been up a while: the routing table is warm (a new
    # one sends everything to every node for its first seconds).
    target = RedisTarget(
        env["TIDINGS_REDIS_URL"], env["TIDINGS_REDIS_PREFIX"], "TIDINGS_REDIS_CLUSTER" in env
    )
    redis = target.connect()
    await redis.set(routing_since_key(target.shared), 0)
    await redis.aclose()
    found = Nodes([spawn_server(**env) for _ in range(4)])
    yield found
    for client in found.clients:
        await client.close()


@pytest.fixture
async def nodes(
    any_redis_env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> AsyncIterator[Nodes]:
    """Four nodes on one Redis server, then on a Redis Cluster."""
    async for found in spawn_nodes(any_redis_env, spawn_server):
        yield found


@pytest.fixture
async def standalone_nodes(
    cluster_env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> AsyncIterator[Nodes]:
    """Four nodes on one Redis server, for tests that reach into it."""
    async for found in spawn_nodes(cluster_env, spawn_server):
        yield found


async def messages_of(socket: Socket, count: int) -> list[int]:
    seqs = []
    while len(seqs) < count:
        event = await socket.next_event(timeout=10)
        if event["type"] == "message":
            seqs.append(event["message"]["seq"])  # type: ignore[index]
    return seqs


async def test_traffic_among_users_of_one_node_reaches_the_other_nodes_as_no_event(
    nodes: Nodes,
) -> None:
    alice, alice_id = await nodes.account("alice", 0)
    bob, bob_id = await nodes.account("bob", 0)
    others = [await nodes.account(f"other{n}", n) for n in (1, 2, 3)]
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(await alice.connect())
        b = await stack.enter_async_context(await bob.connect())
        for client, _ in others:  # every node holds a connected user
            await stack.enter_async_context(await client.connect())
        before = await nodes.metrics(RECEIVED)
        chat = conversation_of(alice_id, bob_id)
        for i in range(50):
            await a.send(chat, f"m{i}")
        assert await messages_of(b, 50) == list(range(1, 51))
        await b.mark_read(chat, 50)
        after = await nodes.metrics(RECEIVED)
        assert [after[n] - before[n] for n in (1, 2, 3)] == [0, 0, 0]
        assert await nodes.metric(0, SHARED) == 0

        # A message to a user of node 1 reaches node 1, and only node 1.
        other_client, other_id = others[0]
        await a.send(conversation_of(alice_id, other_id), "to node 1")
        final = await nodes.metrics(RECEIVED)
        for _ in range(50):
            if final[1] > after[1]:
                break
            await asyncio.sleep(0.1)
            final = await nodes.metrics(RECEIVED)
        assert final[1] > after[1]
        assert [final[n] - after[n] for n in (2, 3)] == [0, 0]


async def test_a_group_spread_over_four_nodes_costs_one_publish_per_node_per_message(
    nodes: Nodes,
) -> None:
    members = [await nodes.account(f"member{n}", n) for n in range(4)]
    sender, _ = members[0]
    group = await sender.create_group("spread", [uid for _, uid in members[1:]])
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(await c.connect()) for c, _ in members]
        published = await nodes.metric(0, PUBLISHES)
        sent = await nodes.metric(0, EVENTS_SENT)
        received = await nodes.metrics(RECEIVED)
        count = 30
        for i in range(count):
            await sockets[0].send(f"g:{group.id}", f"g{i}")  # one batch each
        for socket in sockets[1:]:
            seqs = await messages_of(socket, count)
            assert seqs == sorted(seqs) and len(set(seqs)) == count
        assert await nodes.metric(0, PUBLISHES) - published == 3 * count
        assert await nodes.metric(0, EVENTS_SENT) - sent == 3 * count
        now = await nodes.metrics(RECEIVED)
        assert [now[n] - received[n] for n in (1, 2, 3)] == [count, count, count]


async def test_a_socket_opened_amid_traffic_misses_nothing_between_catch_up_and_live(
    nodes: Nodes,
) -> None:
    """Each new socket of bob's (on nodes 1-3, while alice sends from node 0)
    fetches history after auth_ok and then hears live events: together they
    hold every seq from 1 to the last it heard, with no gap, and the live ones
    come in order. This is what registering the route before auth_ok buys."""
    alice, alice_id = await nodes.account("alice", 0)
    bob, bob_id = await nodes.account("bob", 1)
    chat = conversation_of(alice_id, bob_id)
    total = 300
    async with await alice.connect() as a:

        async def send_all() -> None:
            for i in range(total):
                await a.send(chat, f"m{i}")
                if i % 10 == 0:
                    await asyncio.sleep(0.005)

        sending = asyncio.create_task(send_all())
        rounds = 0
        while not sending.done() or rounds < 3:
            rounds += 1
            bob_on = Client(nodes.servers[1 + rounds % 3].url, token=bob.token)
            async with await bob_on.connect() as b:
                history: set[int] = set()
                while True:  # the client's catch-up: pages after its last seen seq
                    page = await bob_on.messages(chat, after=max(history, default=0), limit=100)
                    history |= {m.seq for m in page}
                    if len(page) < 100:
                        break
                known = max(history, default=0)
                live: list[int] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        while True:
                            event = await b.next_event(timeout=None)
                            if event["type"] == "message":
                                live.append(event["message"]["seq"])  # type: ignore[index]
                assert live == sorted(live)
                top = max([known, *live])
                assert set(range(1, top + 1)) <= history | set(live), (known, live[:5])
            await bob_on.close()
        await sending


async def test_auth_ok_comes_only_once_redis_routes_the_users_events_to_its_node(
    standalone_nodes: Nodes, cluster_env: dict[str, str]
) -> None:
    """While Redis holds every write back (CLIENT PAUSE … WRITE), a socket gets
    no auth_ok; when it does get it, Redis already routes its user's events to
    its node. Sent earlier, a message committed in between would reach no node
    of the user's, and come too late for the catch-up the client did already."""
    bob, bob_id = await standalone_nodes.account("bob", 2)
    prefix = cluster_env["TIDINGS_REDIS_PREFIX"]
    redis = aioredis.Redis.from_url(cluster_env["TIDINGS_REDIS_URL"])

    async def routed() -> bool:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}routes:*")]
        return any([await redis.sismember(key, str(bob_id)) for key in keys])

    try:
        assert not await routed()
        await redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        started = asyncio.get_running_loop().time()
        async with await bob.connect():
            waited = asyncio.get_running_loop().time() - started
            assert await routed()
        assert waited > 1.0  # auth_ok waited for the pause to end
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()


async def test_a_socket_redis_cannot_route_within_5_s_is_closed_with_1013_and_no_frame(
    standalone_nodes: Nodes, cluster_env: dict[str, str]
) -> None:
    """Redis holds every write back for longer than the node waits to route a
    new socket (5 s): the socket gets no auth_ok (its events might reach no
    node of its user's) but a close with 1013, "try again later"; once Redis
    takes writes again, the same client connects."""
    bob, _ = await standalone_nodes.account("bob", 2)
    redis = aioredis.Redis.from_url(cluster_env["TIDINGS_REDIS_URL"])
    try:
        await redis.execute_command("CLIENT", "PAUSE", 7000, "WRITE")
        started = asyncio.get_running_loop().time()
        with pytest.raises(ApiError) as refused:
            await bob.connect()
        waited = asyncio.get_running_loop().time() - started
        assert "closed with 1013 before auth_ok" in str(refused.value)
        assert 4.5 < waited < 7.0
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()
    async with await bob.connect():  # auth_ok: routed again
        pass


async def test_a_node_that_leaves_or_crashes_costs_no_message_and_its_users_move_on(
    nodes: Nodes,
) -> None:
    """A group over nodes 0-2. Node 1 stops cleanly: its routes go with it, so
    a message costs one publish fewer. Node 2 is killed: its routes linger
    until they expire (a wasted publish, no harm). Their users reconnect on
    node 3, catch up, and hear what follows live, in order."""
    members = [await nodes.account(f"member{n}", n) for n in range(3)]
    sender, _ = members[0]
    group = await sender.create_group("moving", [uid for _, uid in members[1:]])
    chat = f"g:{group.id}"
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(await c.connect()) for c, _ in members]
        first = (await sockets[0].send(chat, "all here")).seq
        for socket in sockets[1:]:
            assert await messages_of(socket, 1) == [first]

        published = await nodes.metric(0, PUBLISHES)
        nodes.servers[1].terminate()
        seq = (await sockets[0].send(chat, "node 1 left")).seq
        assert await messages_of(sockets[2], 1) == [seq]
        assert await nodes.metric(0, PUBLISHES) - published == 1  # to node 2 alone

        nodes.servers[2].kill()
        for n in range(3):
            seq = (await sockets[0].send(chat, f"node 2 is gone {n}")).seq

        for client, _ in members[1:]:
            moved = Client(nodes.servers[3].url, token=client.token)
            nodes.clients.append(moved)
            socket = await stack.enter_async_context(await moved.connect())
            missed = await moved.messages(chat, after=first)
            assert [m.seq for m in missed] == list(range(first + 1, seq + 1))
            before = await nodes.metric(3, RECEIVED)
            seq = (await sockets[0].send(chat, "after the move")).seq
            assert await messages_of(socket, 1) == [seq]
            assert await nodes.metric(3, RECEIVED) > before


async def test_after_redis_loses_the_routing_table_events_go_everywhere_until_it_is_back(
    standalone_nodes: Nodes, cluster_env: dict[str, str]
) -> None:
    """Every key of the deployment is deleted mid-session (what a FLUSHALL or
    a Redis restart without persistence does to it). Messages keep arriving,
    on the shared channel; each node writes its routes again within a lease
    (5 s); once the warm-up is over, routing is exact again."""
    users = [await standalone_nodes.account(f"user{n}", n) for n in range(4)]
    alice_id, bob_id = users[0][1], users[1][1]
    prefix = cluster_env["TIDINGS_REDIS_PREFIX"]
    redis = aioredis.Redis.from_url(cluster_env["TIDINGS_REDIS_URL"])
    chat = conversation_of(alice_id, bob_id)
    try:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(await c.connect()) for c, _ in users]
            await sockets[0].send(chat, "before")
            await messages_of(sockets[1], 1)

            keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            await redis.delete(*keys)
            shared = await standalone_nodes.metric(0, SHARED)
            seq = (await sockets[0].send(chat, "while the table is gone")).seq
            assert await messages_of(sockets[1], 1) == [seq]
            assert await standalone_nodes.metric(0, SHARED) > shared  # everyone heard it

            async def sets() -> dict[bytes, set[bytes]]:
                found = [key async for key in redis.scan_iter(match=f"{prefix}routes:*")]
                return {k: await redis.smembers(k) for k in found if b"routing:" not in k}

            for _ in range(100):  # each node's next lease writes its set again
                if len(await sets()) == 4:
                    break
                await asyncio.sleep(0.1)
            written = await sets()
            assert sorted(len(members) for members in written.values()) == [1, 1, 1, 1]

            await redis.set(routing_since_key(prefix), 0)  # the warm-up is over
            before = await standalone_nodes.metrics(RECEIVED)
            seq = (await sockets[0].send(chat, "routed again")).seq
            assert await messages_of(sockets[1], 1) == [seq]
            after = await standalone_nodes.metrics(RECEIVED)
            assert [after[n] - before[n] for n in (2, 3)] == [0, 0]
            assert after[1] > before[1]
    finally:
        await redis.aclose()
