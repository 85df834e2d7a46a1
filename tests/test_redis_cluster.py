"""tidings on a Redis Cluster (issue 23, part 2): keys in the slots their
scripts need, and a primary that dies under load.

The cluster is six ``redis-server`` processes on loopback (``tests/redis_cluster``);
the multi-node tests of ``test_cluster.py`` and ``test_routing.py`` run on one
as well (``any_redis_env``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends import database_url
from tests.conftest import PASSWORD
from tests.redis_cluster import RedisCluster, redis_cluster
from tests.test_cluster import conversation_of
from tests.test_routing import PUBLISHES, messages_of, spawn_nodes
from tidings.client import Client, Socket
from tidings.client.errors import ApiError
from tidings.harness.spawn import ServerProcess, free_port
from tidings.nodes import PRIMARY_FIELD, presence_key, registry_key
from tidings.redis_target import FAILED_OVER, RedisTarget
from tidings.state import lua
from tidings.state.restore import restored
from tidings.state.spread import SpreadCopy

pytestmark = pytest.mark.slow


def node_env(database: str, redis: str, prefix: str) -> dict[str, str]:
    """A ``tidings serve`` node's settings on the test's database and cluster."""
    return {
        "TIDINGS_DATABASE_URL": database,
        "TIDINGS_REDIS_URL": redis,
        "TIDINGS_REDIS_CLUSTER": "1",
        "TIDINGS_REDIS_PREFIX": prefix,
    }


async def account(url: str, name: str) -> tuple[Client, int]:
    client = Client(url)
    user = await client.signup(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client, user.id


async def chat_list_of(client: Client) -> list[tuple[str, int, int | None, str | None]]:
    """What a user sees in the list: conversation, unread, last seq, last body."""
    entries = await client.conversations()
    return [
        (
            e.id,
            e.unread,
            e.last_message.seq if e.last_message else None,
            e.last_message.body if e.last_message else None,
        )
        for e in entries
    ]


async def chat_list_slot_key(target: RedisTarget) -> str:
    """The chat-list copy's epoch key (its namespace's slot)."""
    redis = target.connect()
    try:
        for _ in range(100):
            keys = [k async for k in redis.scan_iter(match=f"{{{target.prefix}cl2:*epoch")]
            if keys:
                return keys[0].decode()
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    raise AssertionError("the chat list wrote no epoch")


async def test_keys_sit_in_the_slots_their_scripts_need(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """On a Cluster the deployment's keys share one hash tag; the chat-list
    copy's epoch has one of its own, and each user's and each conversation's
    keys theirs, so the copy spreads; the push windows have none (a Cluster
    spreads them). The node's URL lists a cluster node that is down first: it
    starts from the next."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_slots:"
            down = f"redis://127.0.0.1:{free_port()}/0"
            env = node_env(database, f"{down},{servers.url}", prefix)
            node = spawn_server(**env)
            alice, alice_id = await account(node.url, "alice")
            bob, bob_id = await account(node.url, "bob")
            async with await bob.connect():
                await alice.send(conversation_of(alice_id, bob_id), "hi")
                assert (await bob.conversations())[0].unread == 1
                redis = RedisTarget(servers.url, prefix, cluster=True).connect()
                try:
                    keys = {k.decode() async for k in redis.scan_iter(match=f"*{prefix}*")}
                    slots = {
                        key: int(servers.cli(servers.ports[0], "CLUSTER", "KEYSLOT", key))
                        for key in keys
                    }
                finally:
                    await redis.aclose()
            for client in (alice, bob):
                await client.close()
    shared = {slots[k] for k in keys if k.startswith(f"{{{prefix}}}")}
    assert f"{{{prefix}}}nodes" in keys and any("}routes:" in k for k in keys)
    assert len(shared) == 1
    [epoch] = [k for k in keys if k.startswith(f"{{{prefix}cl2:") and k.endswith("}:epoch")]
    copy = [k for k in keys if k.startswith(f"{{{prefix}cl2:") and k != epoch]
    tags = {k: k[1 : k.index("}")] for k in copy}
    # Each user's and each conversation's keys in the slot of their own tag.
    for kind, of in (("u", alice_id), ("u", bob_id), ("c", conversation_of(alice_id, bob_id))):
        mine = {slots[k] for k, tag in tags.items() if tag.endswith(f"{kind}:{of}")}
        assert len(mine) == 1, (kind, of, copy)
    assert len({slots[k] for k in copy} | {slots[epoch]}) > 1
    assert slots[epoch] not in shared
    assert all(k.startswith(("{", f"{prefix}push:")) for k in keys), keys


async def test_a_primary_killed_under_load_loses_no_acked_message_and_lists_come_back_exact(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """Kill the primary of the chat-list copy, then the primary of the
    deployment's keys, while messages flow between two nodes. Every acked
    message is in history, live delivery resumes, and every chat list agrees
    with SQL again (an oracle node reads lists from SQL only)."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_failover:"
            env = node_env(database, servers.url, prefix)
            nodes = [spawn_server(**env) for _ in range(2)]
            oracle = spawn_server(**env, TIDINGS_REDIS_CHAT_LIST="false")
            await run_failover(servers, env, nodes, oracle, prefix)


async def run_failover(
    servers: RedisCluster,
    env: dict[str, str],
    nodes: list[ServerProcess],
    oracle: ServerProcess,
    prefix: str,
) -> None:
    target = RedisTarget(env["TIDINGS_REDIS_URL"], prefix, cluster=True)
    alice, alice_id = await account(nodes[0].url, "alice")
    bob, bob_id = await account(nodes[1].url, "bob")
    carol, carol_id = await account(nodes[1].url, "carol")
    group = await alice.create_group("failover", [bob_id, carol_id])
    chats = [conversation_of(alice_id, bob_id), f"g:{group.id}"]
    acked: dict[str, list[int]] = {chat: [] for chat in chats}
    stop = asyncio.Event()

    async def send(sender: Client, chat: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(ApiError, ConnectionError, TimeoutError):
                # The same client_msg_id on a retry: at most one message per n.
                acked[chat].append((await sender.send(chat, f"m{n}", f"{chat}-{n}")).seq)
            await asyncio.sleep(0.01)

    senders = [
        asyncio.create_task(send(alice, chats[0])),
        asyncio.create_task(send(bob, chats[1])),
    ]
    try:
        await asyncio.sleep(1.0)
        chat_list_key = await chat_list_slot_key(target)
        deployment_key = registry_key(target.shared)
        first, second = servers.primary_of(chat_list_key), servers.primary_of(deployment_key)
        servers.kill(first)
        await asyncio.to_thread(servers.wait_failover, chat_list_key, first)
        await asyncio.sleep(1.0)
        if second != first:  # else that kill took both: its replica has none left
            servers.kill(second)
            await asyncio.to_thread(servers.wait_failover, deployment_key, second)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*senders)
    assert all(acked.values()), acked

    # No acked message lost, none twice: history holds each acked seq once.
    for chat in chats:
        reader = carol if chat.startswith("g:") else bob
        seqs: list[int] = []
        while page := await reader.messages(chat, after=seqs[-1] if seqs else 0):
            seqs += [m.seq for m in page]
        assert seqs == sorted(set(seqs))
        assert set(acked[chat]) <= set(seqs), sorted(set(acked[chat]) - set(seqs))

    # Live delivery across the nodes works again.
    socket: Socket | None = None
    for _ in range(100):
        try:
            socket = await bob.connect()
            break
        except (ConnectionError, OSError, ApiError):
            await asyncio.sleep(0.2)
    assert socket is not None
    async with socket:
        sent = await alice.send(chats[0], "after both failovers")
        # Events of the load may still come first (late, held while Redis was away).
        async with asyncio.timeout(30):
            while True:
                event = await socket.next_event(timeout=30)
                if event["type"] == "message" and event["message"]["id"] == sent.id:  # type: ignore[index]
                    break

    # Every chat list agrees with SQL again (the copy was dropped and rebuilt).
    users = [(alice, "alice"), (bob, "bob"), (carol, "carol")]
    seen: dict[str, object] = {}
    for _ in range(100):
        seen = {}
        for client, name in users:
            mirror = Client(oracle.url, token=client.token)
            try:
                cached, truth = await chat_list_of(client), await chat_list_of(mirror)
            finally:
                await mirror.close()
            seen[name] = (cached, truth)
        if all(cached == truth for cached, truth in seen.values()):  # type: ignore[misc]
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"chat lists differ from SQL: {seen}")
    for client, _ in users:
        await client.close()


async def test_after_a_failover_the_copy_is_dropped_and_presence_written_again(
    tmp_path: Path,
) -> None:
    """A replica that takes over may lack its primary's last writes, and no
    command fails to say so. The chat list's check (every lease third) and
    presence's lease both compare the primary's replication id with the one
    they saw last: after ``CLUSTER FAILOVER`` the copy moves to a new epoch
    (rebuilt from SQL) and presence writes its node's hash again. (On a
    Cluster the copy's own check is the spread one, below; this is the check
    a single server's copy makes, run here against a real failover.)"""
    with redis_cluster(tmp_path / "rc") as servers:
        target = RedisTarget(servers.url, "tidings_t_follow:", cluster=True)
        redis = target.connect()
        try:
            space = target.own_slot(f"{target.prefix}cl2:db.1") + ":"
            follow = redis.register_script(lua.FOLLOW_PRIMARY)
            failed_over = redis.register_script(FAILED_OVER)
            presence = presence_key(target.shared, "node0001")

            async def check() -> tuple[int, int]:
                dropped = await follow(keys=[lua.epoch_key(space)], args=[space])
                moved = await failed_over(keys=[presence], args=[PRIMARY_FIELD])
                return int(dropped), int(moved)

            assert await check() == (0, 0)  # the first look records the primary
            epoch = await redis.get(lua.epoch_key(space))
            assert await check() == (0, 0)
            for key in (lua.epoch_key(space), presence):
                old = servers.primary_of(key)
                servers.promote_replica_of(old)
            assert await check() == (1, 1)
            assert await redis.get(lua.epoch_key(space)) != epoch
            assert await check() == (0, 0)  # once per failover
        finally:
            await redis.aclose()


async def test_the_spread_copy_sees_a_failover_of_any_primary(
    tmp_path: Path,
) -> None:
    """The copy spreads over every primary (state.spread), so its check looks
    at each: a failover of any of them says so, once; presence's check says
    so only for its own primary."""
    with redis_cluster(tmp_path / "rc") as servers:
        target = RedisTarget(servers.url, "tidings_t_follow:", cluster=True)
        redis = target.connect()
        try:
            space = target.own_slot(f"{target.prefix}cl2:db.1") + ":"
            copy = SpreadCopy(redis, 60)  # type: ignore[arg-type]
            copy.bind(space)
            failed_over = redis.register_script(FAILED_OVER)
            presence = presence_key(target.shared, "node0001")

            async def check() -> tuple[int, int]:
                dropped = await copy.failed_over()
                moved = await failed_over(keys=[presence], args=[PRIMARY_FIELD])
                return int(dropped), int(moved)

            assert await check() == (0, 0)  # the first look records the primaries
            assert await check() == (0, 0)
            servers.promote_replica_of(servers.primary_of(presence))
            assert await check() == (1, 1)
            assert await check() == (0, 0)  # once per failover
            # A primary that holds none of presence's keys: the copy's check alone.
            others = [p for p in servers.primaries() if p != servers.primary_of(presence)]
            servers.promote_replica_of(others[0])
            assert await check() == (1, 0)
            assert await check() == (0, 0)
        finally:
            await redis.aclose()


async def test_a_running_node_drops_its_copy_after_a_failover_it_never_saw_fail(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """``CLUSTER FAILOVER`` moves the chat list's slot to its replica with no
    error any command could see (the client follows the MOVED answers). The
    node notices the new primary on its next look (every 5 s) and drops the
    copy: what the replica may lack is rebuilt from SQL."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_follow_node:"
            env = node_env(database, servers.url, prefix)
            node = spawn_server(**env)
            alice, alice_id = await account(node.url, "alice")
            bob, bob_id = await account(node.url, "bob")
            chat = conversation_of(alice_id, bob_id)
            await alice.send(chat, "before")
            assert [e.unread for e in await bob.conversations()] == [1]
            target = RedisTarget(servers.url, prefix, cluster=True)
            key = await chat_list_slot_key(target)
            redis = target.connect()
            try:
                await asyncio.sleep(6)  # the node has looked at this primary once
                epoch = await redis.get(key)
                servers.promote_replica_of(servers.primary_of(key))
                for _ in range(150):
                    if await redis.get(key) != epoch:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the copy was not dropped after the failover")
            finally:
                await redis.aclose()
            await alice.send(chat, "after")
            assert [(unread, body) for _, unread, _, body in await chat_list_of(bob)] == [
                (2, "after")
            ]
            for client in (alice, bob):
                await client.close()


async def test_tidings_restored_reads_a_clusters_copy_and_running_nodes_follow(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """``tidings restored`` on a Cluster: it reads the copy of the database as
    it was (SCAN over every primary, MGET in the copy's slot), moves the
    generation on, and the running node follows into a new namespace, whose
    lists agree with SQL."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_restored:"
            node = spawn_server(**node_env(database, servers.url, prefix))
            alice, alice_id = await account(node.url, "alice")
            bob, bob_id = await account(node.url, "bob")
            chat = conversation_of(alice_id, bob_id)
            for n in range(3):
                await alice.send(chat, f"m{n}")
            assert [e.unread for e in await bob.conversations()] == [3]
            target = RedisTarget(servers.url, prefix, cluster=True)
            before = await chat_list_slot_key(target)
            done = await restored(database, target)
            assert (done.before.generation, done.after.generation, done.went_back) == (1, 2, [])
            redis = target.connect()
            try:
                for _ in range(150):  # the node looks every lease third (5 s)
                    await bob.conversations()
                    keys = [k async for k in redis.scan_iter(match=f"{{{prefix}cl2:*.2}}:epoch")]
                    if keys:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the node did not follow the new generation")
            finally:
                await redis.aclose()
            assert before.endswith(".1}:epoch")
            await alice.send(chat, "after")
            assert [(unread, body) for _, unread, _, body in await chat_list_of(bob)] == [
                (4, "after")
            ]
            for client in (alice, bob):
                await client.close()


def bus_publishes(servers: RedisCluster) -> dict[str, int]:
    """Pub/sub messages the six Redis processes sent each other over the cluster
    bus: ``publish`` (a classic PUBLISH, to every node) and ``publishshard``."""
    totals = {"publish": 0, "publishshard": 0}
    for port in servers.ports:
        for line in servers.cli(port, "CLUSTER", "INFO").splitlines():
            name, _, value = line.strip().partition(":")
            kind = name.removeprefix("cluster_stats_messages_").removesuffix("_sent")
            if name.endswith("_sent") and kind in totals:
                totals[kind] += int(value)
    return totals


def shard_channels(servers: RedisCluster, prefix: str) -> dict[str, set[int]]:
    """Each of the deployment's sharded channels, and the Redis processes it is subscribed on."""
    found: dict[str, set[int]] = {}
    for port in servers.ports:
        if servers.processes[port].poll() is not None:
            continue  # killed
        for name in servers.cli(port, "PUBSUB", "SHARDCHANNELS", f"*{prefix}*").split():
            found.setdefault(name, set()).add(port)
    return found


async def node_ids(target: RedisTarget) -> list[str]:
    redis = target.connect()
    try:
        names = await redis.hkeys(registry_key(target.shared))
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)
    finally:
        await redis.aclose()


async def test_events_cross_only_the_shard_that_owns_their_nodes_channel(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """Sharded pub/sub: each node's channel carries the node's id as its hash
    tag, so the nodes' channels spread over the shards, and each is read on the
    primary that owns it. A group spread over four nodes still costs one
    publish per other node per message, and nothing is broadcast over the
    cluster bus (a classic PUBLISH reaches all six Redis processes): each
    publish costs one bus message, the copy to its shard's replica."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_shards:"
            env = node_env(database, servers.url, prefix)
            target = RedisTarget(servers.url, prefix, cluster=True)
            async with contextlib.asynccontextmanager(spawn_nodes)(env, spawn_server) as nodes:
                members = [await nodes.account(f"member{n}", n) for n in range(4)]
                sender, _ = members[0]
                group = await sender.create_group("spread", [uid for _, uid in members[1:]])
                async with contextlib.AsyncExitStack() as stack:
                    sockets = [
                        await stack.enter_async_context(await c.connect()) for c, _ in members
                    ]
                    ids = await node_ids(target)
                    subscribed = shard_channels(servers, prefix)
                    own = {f"{prefix}events:{{{node}}}" for node in ids}
                    assert len(ids) == 4 and set(subscribed) == own | {f"{{{prefix}}}events"}
                    for name, ports in subscribed.items():
                        # Each node reads its own channel; all four read the shared one.
                        assert ports == {servers.primary_of(name)}, (name, ports)
                    bus = bus_publishes(servers)
                    published = sum(await nodes.metrics(PUBLISHES))
                    count = 30
                    for i in range(count):
                        await sockets[0].send(f"g:{group.id}", f"g{i}")
                    for socket in sockets[1:]:
                        seqs = await messages_of(socket, count)
                        assert seqs == sorted(seqs) and len(set(seqs)) == count
                    published = sum(await nodes.metrics(PUBLISHES)) - published
                    now = bus_publishes(servers)
    assert published >= 3 * count
    assert now["publish"] - bus["publish"] == 0
    assert now["publishshard"] - bus["publishshard"] == published


async def test_a_failover_of_a_nodes_channel_shard_closes_its_sockets_and_it_listens_again(
    tmp_path: Path, spawn_server: Callable[..., ServerProcess]
) -> None:
    """Kill the primary that owns a node's channel. The node stops hearing the
    others, so it closes its sockets (their clients catch up on reconnecting),
    subscribes on the replica that took over, and live events reach it again;
    no acked message is lost meanwhile."""
    async with database_url("postgresql", tmp_path) as database:
        with redis_cluster(tmp_path / "rc") as servers:
            prefix = "tidings_t_shard_failover:"
            env = node_env(database, servers.url, prefix)
            sending, hearing = spawn_server(**env), spawn_server(**env)
            alice, alice_id = await account(sending.url, "alice")
            bob, bob_id = await account(hearing.url, "bob")
            chat = conversation_of(alice_id, bob_id)
            _, ready = await bob.request("GET", "/readyz")
            own = f"{prefix}events:{{{ready['node']}}}"  # type: ignore[index]
            socket = await bob.connect()
            first = await alice.send(chat, "before")
            event = await socket.next_event(timeout=10)
            assert event["type"] == "message" and event["message"]["id"] == first.id  # type: ignore[index]
            dead = servers.primary_of(own)
            servers.kill(dead)
            acked = [(await alice.send(chat, f"during {n}")).seq for n in range(5)]
            closed = None
            async with asyncio.timeout(30):
                with contextlib.suppress(ConnectionError):
                    while True:
                        await socket.next_event(timeout=30)
                closed = socket.close_code
            assert closed is not None
            taken = await asyncio.to_thread(servers.wait_failover, own, dead)
            for _ in range(300):
                if shard_channels(servers, prefix).get(own) == {taken}:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"{own} is not subscribed on the new primary {taken}")
            seqs = [m.seq for m in await bob.messages(chat, after=0)]
            assert set(acked) <= set(seqs)
            live: Socket | None = None
            for _ in range(100):
                with contextlib.suppress(ConnectionError, OSError, ApiError):
                    live = await bob.connect()
                    break
                await asyncio.sleep(0.2)
            assert live is not None
            async with live:
                after = await alice.send(chat, "after the failover")
                async with asyncio.timeout(30):
                    while True:
                        event = await live.next_event(timeout=30)
                        if event["type"] == "message" and event["message"]["id"] == after.id:  # type: ignore[index]
                            break
            await socket.close()
            for client in (alice, bob):
                await client.close()
