"""Several ``tidings serve`` processes sharing PostgreSQL and Redis form one service."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import PASSWORD, no_event, settings_for, start_server
from tests.test_push import PushService, push_service, subscribed
from tidings.client import Client, Socket
from tidings.client.errors import ApiError
from tidings.files.url import open_blob_store
from tidings.harness.spawn import ServerProcess

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    env: dict[str, str]

    async def account(self, name: str, node: int = 0) -> tuple[Client, int]:
        client = Client(self.nodes[node].url)
        user = await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        return client, user.id

    def client_on(self, node: int, token: str | None) -> Client:
        return Client(self.nodes[node].url, token=token)


@pytest.fixture
async def cluster(
    any_redis_env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> Cluster:
    """Three nodes on one Redis server, then on a Redis Cluster."""
    return Cluster([spawn_server(**any_redis_env) for _ in range(3)], any_redis_env)


def conversation_of(a: int, b: int) -> str:
    return f"p:{min(a, b)}-{max(a, b)}"


async def test_users_on_different_nodes_chat_privately_and_in_groups(cluster: Cluster) -> None:
    alice, alice_id = await cluster.account("alice", node=0)
    bob, bob_id = await cluster.account("bob", node=1)
    carol, carol_id = await cluster.account("carol", node=2)
    async with await alice.connect() as a, await bob.connect() as b, await carol.connect() as c:
        sent = await a.send(conversation_of(alice_id, bob_id), "across nodes")
        event = await b.next_event()
        assert event["message"]["id"] == sent.id  # type: ignore[index]
        group = await carol.create_group("three nodes", [alice_id, bob_id])
        for ws in (a, b, c):  # the creator's devices learn of the group too
            assert (await ws.next_event())["type"] == "conversation"
            created = await ws.next_event()  # and of its first entry, on every node
            assert created["message"]["system"]["event"] == "created"  # type: ignore[index]
        await c.send(f"g:{group.id}", "hello all")
        for ws in (a, b):
            assert (await ws.next_event())["message"]["body"] == "hello all"  # type: ignore[index]
        await no_event(c)
    for client in (alice, bob, carol):
        await client.close()


async def test_a_users_two_devices_on_two_nodes_both_get_events(cluster: Cluster) -> None:
    alice, alice_id = await cluster.account("alice", node=0)
    bob, bob_id = await cluster.account("bob", node=1)
    conversation = conversation_of(alice_id, bob_id)
    laptop_client = cluster.client_on(2, bob.token)
    async with (
        await alice.connect() as a,
        await bob.connect() as phone,
        await laptop_client.connect() as laptop,
    ):
        await a.send(conversation, "to both devices")
        for device in (phone, laptop):
            assert (await device.next_event())["message"]["seq"] == 1  # type: ignore[index]
        await phone.mark_read(conversation, 1)
        assert (await laptop.next_event())["type"] == "read"  # the other device clears its badge
        assert (await a.next_event())["type"] == "read"  # the read receipt crosses nodes too
    for client in (alice, bob, laptop_client):
        await client.close()


async def test_a_rename_and_a_password_change_reach_every_node(cluster: Cluster) -> None:
    alice, alice_id = await cluster.account("alice", node=0)
    bob, bob_id = await cluster.account("bob", node=1)
    conversation = conversation_of(alice_id, bob_id)
    await alice.send(conversation, "hi")
    phone = cluster.client_on(2, None)
    await phone.login("alice", PASSWORD)
    async with await bob.connect() as b, await phone.connect() as alice_phone:
        await alice.set_display_name("Alice Renamed")
        event = await b.next_event()
        assert event["conversation"]["title"] == "Alice Renamed"  # type: ignore[index]
        async with cluster.client_on(2, bob.token) as bob_elsewhere:
            assert (await bob_elsewhere.conversations())[0].title == "Alice Renamed"
        await alice.change_password(PASSWORD, "a new password")
        assert await alice_phone.wait_closed() == 4003
        status, _ = await phone.request("GET", "/api/v1/me")
        assert status == 401
        assert (await alice.me()).display_name == "Alice Renamed"
    for client in (alice, bob, phone):
        await client.close()


async def test_sends_to_one_group_from_every_node_are_gapless_and_in_order(
    cluster: Cluster,
) -> None:
    senders = [await cluster.account(f"sender{n}", node=n) for n in range(3)]
    watchers = [await cluster.account(f"watcher{n}", node=n) for n in range(3)]
    owner = senders[0][0]
    group = await owner.create_group("busy", [uid for _, uid in senders[1:] + watchers])
    conversation = f"g:{group.id}"
    watch_sockets = [await client.connect() for client, _ in watchers]
    send_sockets = [await client.connect() for client, _ in senders]

    async def stream(ws: Socket, tag: str) -> None:
        await asyncio.gather(*(ws.send(conversation, f"{tag}{i}") for i in range(40)))

    await asyncio.gather(*(stream(ws, f"n{n}-") for n, ws in enumerate(send_sockets)))
    for ws in watch_sockets:
        seqs = [(await ws.next_event(timeout=10))["message"]["seq"] for _ in range(120)]  # type: ignore[index]
        # Seq 1 is the created notice, before the watchers connected.
        assert seqs == list(range(2, 122)), "a node delivered out of seq order or lost one"
        await no_event(ws)
    for client, _ in watchers:
        entry = (await client.conversations())[0]
        assert (entry.last_seq, entry.unread) == (121, 120)  # the notice does not count
    history = await watchers[0][0].messages(conversation, after=0, limit=200)
    assert [m.seq for m in history] == list(range(1, 122))
    assert history[0].kind == "system"
    for ws in watch_sockets + send_sockets:
        await ws.close()
    for client, _ in senders + watchers:
        await client.close()


async def test_one_client_msg_id_sent_on_two_nodes_at_once_is_one_message(
    cluster: Cluster,
) -> None:
    """A retry that lands on another node while the first try is in flight."""
    alice, alice_id = await cluster.account("alice", node=0)
    bob, bob_id = await cluster.account("bob", node=1)
    carol, carol_id = await cluster.account("carol", node=2)
    private = conversation_of(alice_id, bob_id)
    bystanders = conversation_of(bob_id, carol_id)
    await alice.send(private, "opens the conversation")
    await bob.send(bystanders, "opens the other one")
    alice_again = cluster.client_on(1, alice.token)
    keys: list[str] = []
    for round_ in range(10):  # the two tries must overlap in the database: give it chances
        batch = [f"retry-{round_}-{i}" for i in range(10)]
        keys += batch
        answers = await asyncio.gather(
            *(alice.send(private, f"body {k}", client_msg_id=k) for k in batch),
            *(alice_again.send(private, f"body {k}", client_msg_id=k) for k in batch),
            *(carol.send(bystanders, f"bystander {round_} {i}") for i in range(10)),
        )
        first, second = answers[:10], answers[10:20]
        assert [m.id for m in first] == [m.id for m in second], "one key, two messages"
    history = await bob.messages(private, after=0, limit=200)
    assert sorted(m.client_msg_id or "" for m in history[1:]) == sorted(keys)
    assert [m.seq for m in history] == list(range(1, 102))
    assert len(await carol.messages(bystanders, after=0, limit=200)) == 101
    for client in (alice, alice_again, bob, carol):
        await client.close()


async def test_a_killed_node_leaves_the_others_serving_and_its_clients_catch_up(
    cluster: Cluster,
) -> None:
    alice, alice_id = await cluster.account("alice", node=0)
    bob, bob_id = await cluster.account("bob", node=1)
    conversation = conversation_of(alice_id, bob_id)
    bob_ws = await bob.connect()
    async with await alice.connect() as a:
        await a.send(conversation, "before")
        assert (await bob_ws.next_event())["message"]["seq"] == 1  # type: ignore[index]
        cluster.nodes[1].kill()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await bob_ws.next_event(timeout=5)
        for n in range(3):
            await a.send(conversation, f"while bob's node is down {n}")
    # Bob reconnects to another node and catches up after the last seq he saw.
    moved = cluster.client_on(2, bob.token)
    missed = await moved.messages(conversation, after=1)
    assert [m.seq for m in missed] == [2, 3, 4]
    assert (await moved.conversations())[0].unread == 4  # he never marked anything read
    for client in (alice, bob, moved):
        await client.close()


# -- Redis faults, on a Redis of the test's own -------------------------------


async def test_a_redis_restart_loses_no_message_and_nodes_recover(
    cluster_env: dict[str, str],
    spawn_server: Callable[..., ServerProcess],
    own_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    redis = own_redis()
    env = cluster_env | {"TIDINGS_REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0"}  # type: ignore[attr-defined]
    nodes = Cluster([spawn_server(**env) for _ in range(2)], env)
    alice, alice_id = await nodes.account("alice", node=0)
    bob, bob_id = await nodes.account("bob", node=1)
    conversation = conversation_of(alice_id, bob_id)
    acked: list[int] = []
    for n in range(5):
        acked.append((await alice.send(conversation, f"before {n}", f"b{n}")).seq)

    bob_ws = await bob.connect()
    redis.kill()
    redis.wait(5)
    # Bob's node can no longer hear the others: it sends him away to catch up.
    assert await bob_ws.wait_closed(timeout=15) in (1012, 1006)
    for n in range(5):  # sends still commit and ack over HTTP while Redis is down
        acked.append((await alice.send(conversation, f"during {n}", f"d{n}")).seq)

    own_redis()
    for _ in range(100):  # the node resubscribes by itself
        try:
            bob_ws = await bob.connect()
            break
        except Exception:
            await asyncio.sleep(0.2)
    else:
        raise AssertionError("bob's node never accepted sockets again")
    history = await bob.messages(conversation, after=0)
    assert [m.seq for m in history] == list(range(1, 11)) == acked
    async with await alice.connect() as a:
        await a.send(conversation, "after")
        # Events held back while Redis was away may still arrive, late but in
        # order; a client drops the seqs it has already fetched.
        seen = []
        while not seen or seen[-1] < 11:
            seen.append((await bob_ws.next_event(timeout=10))["message"]["seq"])  # type: ignore[index]
        assert seen == sorted(seen) and seen[-1] == 11
    await bob_ws.close()
    for client in (alice, bob):
        await client.close()


async def test_a_redis_that_stops_answering_sends_sockets_away_then_recovers(
    tmp_path: Path, own_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """Hung, not dead: no error ever reaches the subscription, only silence."""
    from redis import asyncio as aioredis

    own_redis()
    url = f"redis://127.0.0.1:{own_redis.port}/0"  # type: ignore[attr-defined]
    server, runner = await start_server(settings_for(tmp_path, redis_url=url))
    alice = Client(server.url)
    redis = aioredis.Redis.from_url(url)
    try:
        await alice.signup("alice", PASSWORD)
        await alice.login("alice", PASSWORD)
        socket_ = await alice.connect()
        await redis.execute_command("CLIENT", "PAUSE", 20_000, "ALL")
        # Pings go unanswered; after 9 s of silence the node sends its
        # sockets away rather than keep them deaf to the other nodes.
        assert await socket_.wait_closed(timeout=25) == 1012
        for _ in range(150):  # the pause ends; the node subscribes again by itself
            with contextlib.suppress(Exception):
                await (await alice.connect()).close()
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the node never accepted sockets again")
    finally:
        await redis.aclose()
        await alice.close()
        await runner.cleanup()


async def test_flushall_mid_traffic_changes_nothing(
    cluster_env: dict[str, str],
    spawn_server: Callable[..., ServerProcess],
    own_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    from redis import asyncio as aioredis

    own_redis()
    redis_url_ = f"redis://127.0.0.1:{own_redis.port}/0"  # type: ignore[attr-defined]
    env = cluster_env | {"TIDINGS_REDIS_URL": redis_url_}
    nodes = Cluster([spawn_server(**env) for _ in range(2)], env)
    alice, alice_id = await nodes.account("alice", node=0)
    bob, bob_id = await nodes.account("bob", node=1)
    conversation = conversation_of(alice_id, bob_id)
    async with await alice.connect() as a, await bob.connect() as b:
        sends = asyncio.gather(*(a.send(conversation, f"m{i}") for i in range(50)))
        flusher = aioredis.Redis.from_url(redis_url_)
        await flusher.flushall()
        await flusher.aclose()
        await sends
        seqs = [(await b.next_event(timeout=10))["message"]["seq"] for _ in range(50)]  # type: ignore[index]
        assert seqs == list(range(1, 51))
    entry = (await bob.conversations())[0]
    assert (entry.last_seq, entry.unread) == (50, 50)
    for client in (alice, bob):
        await client.close()


async def test_push_and_presence_span_every_node(
    any_redis_env: dict[str, str], spawn_server: Callable[..., ServerProcess]
) -> None:
    env = any_redis_env | {"TIDINGS_SERVICE_TOKEN": "svc"}
    nodes = Cluster([spawn_server(**env) for _ in range(3)], env)
    admin = Client(nodes.nodes[0].url, token="svc")
    users = [await nodes.account(f"spread{n}", node=n) for n in range(3)]
    sockets = [await client.connect() for client, _ in users]
    ids = [uid for _, uid in users]
    try:
        online: dict[str, bool] = {}
        for _ in range(50):  # each node reports its sockets to Redis within a moment
            _, answer = await admin.request(
                "GET", f"/api/v1/admin/presence?user_ids={ids[0]},{ids[1]},{ids[2]},999999"
            )
            online = answer["online"]  # type: ignore[index]
            if all(online[str(u)] for u in ids):
                break
            await asyncio.sleep(0.1)
        assert online == {str(ids[0]): True, str(ids[1]): True, str(ids[2]): True, "999999": False}
        status, answer = await admin.request(
            "POST", "/api/v1/admin/push", {"user_ids": ids[1:], "event": {"n": 1}}
        )
        assert (status, answer) == (200, {"connections": 2})
        for ws in sockets[1:]:
            assert await ws.next_event() == {"type": "push", "event": {"n": 1}}
        await no_event(sockets[0])
        _, stats = await admin.request("GET", "/api/v1/admin/stats")
        assert stats["connections"] == 3 and len(stats["nodes"]) == 3  # type: ignore[index]
        await sockets[2].close()
        for _ in range(50):
            _, answer = await admin.request("GET", f"/api/v1/admin/presence?user_ids={ids[2]}")
            if answer["online"][str(ids[2])] is False:  # type: ignore[index]
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed socket still counted as online")
    finally:
        for ws in sockets:
            await ws.close()
        for client, _ in users:
            await client.close()
        await admin.close()


async def test_nodes_sharing_an_s3_store_serve_each_others_files_and_collect_only_orphans(
    cluster_env: dict[str, str], spawn_server: Callable[..., ServerProcess], s3_files_url: str
) -> None:
    # PROTOCOL-v2 §3 on many nodes: one S3 prefix, one link key (server_secrets),
    # and every node's orphan collector running against the same files.
    env = cluster_env | {"TIDINGS_FILES_URL": s3_files_url, "TIDINGS_FILE_ORPHAN_SECONDS": "2"}
    nodes = Cluster([spawn_server(**env) for _ in range(2)], env)
    alice, alice_id = await nodes.account("alice", node=0)
    bob, bob_id = await nodes.account("bob", node=1)
    picture = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 40, 90)).save(picture, format="PNG")
    try:
        async with await bob.connect() as b:
            sent = await alice.send_image(conversation_of(alice_id, bob_id), picture.getvalue())
            event = await b.next_event()
            attachment = event["message"]["attachment"]  # type: ignore[index]
            assert attachment["id"] == sent.file.id  # type: ignore[union-attr]
            # Links signed on node 1 for the event, and on node 0 for the ack, work on both.
            assert await bob.download(attachment["url"]) == picture.getvalue()
            on_node_0 = nodes.client_on(0, bob.token)
            assert await on_node_0.download(sent.file.url) == picture.getvalue()  # type: ignore[union-attr]
            assert (await bob.download(attachment["thumbnail_url"])).startswith(b"\xff\xd8\xff")
            await on_node_0.close()
        orphan = await bob.upload(b"never sent", name="orphan.txt")
        # Both nodes collect every second (a quarter of 2 s, at least 1 s).
        for _ in range(100):
            try:
                await bob.download(f"/api/v1/files/{orphan.id}")
            except ApiError as gone:
                assert gone.status == 404
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the orphan was never collected")
        await asyncio.sleep(2.5)  # a few more rounds of both collectors
        assert await alice.download(sent.file.url) == picture.getvalue()  # type: ignore[union-attr]
        store = await open_blob_store(s3_files_url, Path("."))
        try:
            future = datetime.now(UTC) + timedelta(hours=1)
            stored = [key async for key in store.keys_older_than(future)]
        finally:
            await store.close()
        assert len(stored) == 2  # the sent image and its thumbnail: the orphan's bytes are gone
    finally:
        for client in (alice, bob):
            await client.close()


async def test_a_burst_from_two_nodes_makes_one_push_per_window(
    any_redis_env: dict[str, str],
    spawn_server: Callable[..., ServerProcess],
    push_service: PushService,
) -> None:
    # PROTOCOL-v2 §8, collapse: at most one push per user and conversation per
    # window across the cluster, and the window's last state still goes out.
    window = 1.5
    env = any_redis_env | {
        "TIDINGS_PUSH_ALLOW_PRIVATE": "true",
        "TIDINGS_PUSH_COLLAPSE_SECONDS": str(window),
    }
    nodes = Cluster([spawn_server(**env) for _ in range(2)], env)
    alice, alice_id = await nodes.account("alice", node=0)
    carol, carol_id = await nodes.account("carol", node=1)
    bob, bob_id = await nodes.account("bob", node=0)
    try:
        browser = await subscribed(bob, push_service, "bob")
        group = await alice.create_group("two nodes", [bob_id, carol_id])
        chat = f"g:{group.id}"
        for round_ in range(3):  # both nodes commit in the same window, again and again
            await asyncio.gather(
                alice.send(chat, f"from node 0, {round_}"),
                carol.send(chat, f"from node 1, {round_}"),
            )
        await push_service.wait(browser, 2, within=15)
        await asyncio.sleep(window * 2.5)  # anything a node still held back has gone by now
        gaps = [b - a for a, b in itertools.pairwise(browser.arrived)]
        assert all(gap >= window * 0.9 for gap in gaps), (gaps, browser.pushes)
        assert browser.pushes[-1]["total_unread"] == 6  # the final state went out
        assert browser.pushes[-1]["seq"] == (await bob.conversation(chat)).last_seq
    finally:
        for client in (alice, bob, carol):
            await client.close()


_ = push_service  # the fixture, imported by name for the test above
