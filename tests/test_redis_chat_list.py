"""The chat list kept in Redis answers exactly what SQL answers, through flushes and faults.

The oracle is a second server on the same database with the Redis chat
list turned off: it computes every entry from SQL (unread from history
positions), so any drift of the Redis copy shows up as a difference.
Each test that reads and drops keys only by name runs on one Redis server
and on a Redis Cluster of its own; those that call the scripts themselves
run on one server (their arguments are the one-slot layout's).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from redis import asyncio as aioredis

from tests.conftest import (
    PASSWORD,
    RunningServer,
    ServerFactory,
    settings_for,
    start_server,
)
from tidings.client import ChatList, Client
from tidings.nodes import registry_key
from tidings.redis_target import RedisTarget
from tidings.state import lua
from tidings.state.redis import RedisChatList
from tidings.state.spread import SpreadCopy
from tidings.store.sql import SqlStore

if TYPE_CHECKING:
    from tidings.redis_target import AnyRedis

ONE_SERVER = pytest.mark.parametrize("stack", ["postgresql+redis"], indirect=True)
BOTH = pytest.mark.parametrize(
    "stack", ["postgresql+redis", "postgresql+redis-cluster"], indirect=True
)


class Pair:
    """The same users seen through the Redis-backed server and the SQL oracle."""

    def __init__(self, cached: RunningServer, oracle: RunningServer) -> None:
        self.cached = cached
        self.oracle = oracle
        self.clients: list[Client] = []
        self.oracles: dict[int, Client] = {}
        self.ids: list[int] = []

    async def user(self, name: str) -> Client:
        client = Client(self.cached.url)
        user = await client.signup(name, PASSWORD)
        await client.login(name, PASSWORD)
        self.clients.append(client)
        self.ids.append(user.id)
        self.oracles[user.id] = Client(self.oracle.url, token=client.token)
        return client

    async def assert_same(self, limit: int | None = None) -> None:
        for client, user_id in zip(self.clients, self.ids, strict=True):
            cached = await client.chat_list(limit)  # the entries and total_unread
            expected = await self.oracles[user_id].chat_list(limit)
            assert cached == expected, f"user {user_id}"

    async def close(self) -> None:
        for client in [*self.clients, *self.oracles.values()]:
            await client.close()


@pytest.fixture
async def pair(make_server: ServerFactory) -> AsyncIterator[Pair]:
    cached = await make_server()
    assert cached.settings.redis_url and cached.settings.redis_chat_list
    oracle = await make_server(redis_chat_list=False)
    both = Pair(cached, oracle)
    yield both
    await both.close()


def connect(server: RunningServer) -> AnyRedis:
    """A client of the server's Redis: one server's, or the Cluster's."""
    return target_of(server).connect()


def target_of(server: RunningServer) -> RedisTarget:
    settings = server.settings
    assert settings.redis_url is not None
    return RedisTarget(settings.redis_url, settings.redis_prefix, settings.redis_cluster)


async def redis_keys(server: RunningServer, pattern: str) -> list[bytes]:
    """The copy's keys matching ``pattern`` (after the prefix), on every primary.

    On a Cluster the copy's names open with the hash tag's brace."""
    settings = server.settings
    brace = "{" if settings.redis_cluster else ""
    redis = connect(server)
    try:
        return sorted(
            {k async for k in redis.scan_iter(f"{brace}{settings.redis_prefix}{pattern}")}
        )
    finally:
        await redis.aclose()


async def copy_keys(server: RunningServer, family: str, of: int | str) -> list[bytes]:
    """The copy's keys of ``family`` (u of a user; h, m, x, n, t of a
    conversation) for ``of`` (``*``: any). On a Cluster each user's and each
    conversation's keys carry their own hash tag (state.spread)."""
    if not server.settings.redis_cluster:
        return await redis_keys(server, f"cl2:*:{family}:{of}")
    kind = "u" if family in ("u", "ug") else "c"
    return await redis_keys(server, f"cl2:*{kind}:{of}}}*:{family}")


async def copy_namespace(server: RunningServer) -> str:
    """The one chat-list namespace of this test's prefix: ``{prefix}cl2:{identity}.{gen}:``."""
    epochs = await redis_keys(server, "cl2:*epoch")
    assert len(epochs) == 1, epochs
    return epochs[0].decode().removesuffix("epoch")


async def delete(server: RunningServer, keys: list[bytes]) -> None:
    redis = connect(server)
    try:
        await redis.delete(*keys)
    finally:
        await redis.aclose()


async def flush(server: RunningServer) -> None:
    """FLUSHALL, for this test's keys only (the Redis is shared with other tests)."""
    keys = await redis_keys(server, "cl2:*")
    if keys:
        await delete(server, keys)


async def metric(server: RunningServer, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + "/metrics") as answer,
    ):
        for line in (await answer.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def private(a: int, b: int) -> str:
    return f"p:{min(a, b)}-{max(a, b)}"


@BOTH
async def test_the_redis_list_is_the_sql_list(pair: Pair) -> None:
    alice, bob, carol = [await pair.user(n) for n in ("alice", "bob", "carol")]
    a, b, c = pair.ids
    await pair.assert_same()  # nobody is in anything yet
    await alice.send(private(a, b), "hi bob")
    await bob.send(private(a, b), "hi alice")
    await carol.send(private(a, c), "hi alice, carol here")
    group = await alice.create_group("team", [b])
    await alice.send(f"g:{group.id}", "team, listen")
    await pair.assert_same()
    # Served from Redis: the users' indexes are there now.
    assert await copy_keys(pair.cached, "u", a)
    assert await metric(pair.cached, "tidings_chat_list_rebuilds") >= 3
    # Carol joins late: she sees the group, not the message sent before she joined.
    await alice.add_members(group.id, [c])
    await pair.assert_same()
    await bob.send(f"g:{group.id}", "welcome carol")
    await alice.mark_read(private(a, b), 2)
    await carol.mark_read(f"g:{group.id}", 2)
    await pair.assert_same()
    await pair.assert_same(limit=2)
    # Bob leaves; the group goes from his list and stays in the others'.
    await bob.remove_member(group.id, b)
    await alice.send(f"g:{group.id}", "bob left")
    await pair.assert_same()
    entries = await bob.conversations()
    assert [e.id for e in entries] == [private(a, b)]
    # Group changes (PROTOCOL-v2 §6): their notices move the group, count for no one,
    # and a rename shows at once in every list, from Redis as from SQL.
    await alice.update_group(group.id, name="team 2", announcement="standup at 10")
    await alice.set_admins(group.id, [c])
    await pair.assert_same()
    listed = {e.id: e for e in await carol.conversations()}
    assert listed[f"g:{group.id}"].title == "team 2"
    assert listed[f"g:{group.id}"].last_message is not None
    assert listed[f"g:{group.id}"].last_message.kind == "system"


@BOTH
async def test_the_list_stays_exact_through_flushes_mid_traffic(pair: Pair) -> None:
    users = [await pair.user(f"user{n}") for n in range(6)]
    ids = pair.ids
    group = await users[0].create_group("all", ids[1:])
    conversations = [f"g:{group.id}"] + [
        private(ids[i], ids[j]) for i in range(6) for j in range(i + 1, 6) if (i + j) % 2
    ]
    rng = random.Random(7)
    stop = asyncio.Event()

    async def traffic(n: int) -> None:
        client, me = users[n], ids[n]
        mine = [c for c in conversations if c.startswith("g:") or str(me) in c[2:].split("-")]
        while not stop.is_set():
            conversation = rng.choice(mine)
            sent = await client.send(conversation, f"from {me}")
            if rng.random() < 0.3:
                await client.mark_read(conversation, sent.seq)
            if rng.random() < 0.3:
                await client.conversations()  # rebuilds race with the updates

    async def flusher() -> None:
        for _ in range(5):
            await asyncio.sleep(0.2)
            await flush(pair.cached)

    tasks = [asyncio.create_task(traffic(n)) for n in range(6)]
    await flusher()
    stop.set()
    await asyncio.gather(*tasks)
    await pair.assert_same()
    assert await copy_keys(pair.cached, "u", "*"), "the lists were rebuilt in Redis"
    total = sum(e.last_seq for e in await users[0].conversations() if e.id.startswith("g:"))
    assert total > 20, "too little traffic to mean anything"


@pytest.mark.parametrize("stack", ["postgresql+redis-cluster"], indirect=True)
async def test_between_an_updates_users_and_its_conversations_no_one_sees_their_own_message_unread(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a Cluster an update lands in two steps, one script per primary each:
    the read positions, then the conversations' heads (state.spread). A list
    read between the two shows the sender nothing unread of its own, and the
    peer either the old or the new count, never more."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    chat = private(*pair.ids)
    await bob.send(chat, "hi")
    await alice.mark_read(chat, 1)
    await pair.assert_same()  # both indexes and the head are in the copy now
    between: list[tuple[ChatList, ChatList]] = []
    each = SpreadCopy._each

    async def first_step_then_read(
        self: SpreadCopy, script: str, epoch: bytes, groups: list[Any]
    ) -> list[Any]:
        answers = await each(self, script, epoch, groups)
        if script in (lua.S_APPLY_READS, lua.S_APPLY_HEADS) and not between:
            between.append((await alice.chat_list(), await bob.chat_list()))
        return answers

    monkeypatch.setattr(SpreadCopy, "_each", first_step_then_read)
    await alice.send(chat, "mine")
    [(mine, theirs)] = between
    assert [(e.unread, mine.total_unread) for e in mine.conversations] == [(0, 0)]
    assert [e.unread for e in theirs.conversations] in ([0], [1])
    await pair.assert_same()


@pytest.mark.parametrize("stack", ["postgresql+redis-cluster"], indirect=True)
async def test_a_read_seq_read_before_an_update_whose_head_the_page_shows_is_read_again(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a Cluster a list read fetches the page's heads and the user's read
    seqs in one round, on several primaries at once. When an update lands
    between the two (the read seqs from before it, a page head from after),
    the read seqs are read again: the sender never sees its own message as
    unread."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    chat = private(*pair.ids)
    await bob.send(chat, "hi")
    await alice.mark_read(chat, 1)
    await pair.assert_same()
    read = SpreadCopy.read
    sent: list[int] = []

    async def update_in_between(
        self: SpreadCopy, epoch: bytes, user: int, *args: Any
    ) -> tuple[list[Any], list[Any], list[Any]] | None:
        fields = args[-1]
        before = await self.read_seqs(epoch, user, fields)
        if not sent:
            sent.append((await alice.send(chat, "mine")).seq)
            for _ in range(200):  # the copy is updated after the ack
                [head] = await self.heads(epoch, [chat.encode()])
                if head.startswith(b"2|"):
                    break
                await asyncio.sleep(0.01)
        found = await read(self, epoch, user, *args)
        return None if found is None else (found[0], found[1], before)

    monkeypatch.setattr(SpreadCopy, "read", update_in_between)
    mine = await alice.chat_list()
    assert sent == [2]
    assert [(e.last_seq, e.unread) for e in mine.conversations] == [(2, 0)]
    assert mine.total_unread == 0
    monkeypatch.undo()
    await pair.assert_same()


@BOTH
async def test_an_evicted_last_message_is_refilled(pair: Pair) -> None:
    """Under a maxmemory policy a message key may go without its head."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    await alice.send(private(*pair.ids), "kept in Redis")
    await pair.assert_same()
    evicted = await copy_keys(pair.cached, "m", private(*pair.ids))
    assert evicted
    await delete(pair.cached, evicted)
    await pair.assert_same()
    assert (await bob.conversations())[0].last_message.body == "kept in Redis"  # type: ignore[union-attr]
    assert await copy_keys(pair.cached, "m", private(*pair.ids))  # refilled


@BOTH
async def test_an_evicted_uncounted_set_off_the_page_still_gives_the_exact_total(
    pair: Pair,
) -> None:
    """total_unread reads every entry's uncounted seqs (PROTOCOL-v2 §5), not just
    the page's: one evicted without its head is refilled, never counted as 0."""
    alice, bob, carol = await pair.user("alice"), await pair.user("bob"), await pair.user("carol")
    alice_id, bob_id, carol_id = pair.ids
    with_bob = private(alice_id, bob_id)
    first = await bob.send(with_bob, "one")
    await bob.send(with_bob, "two")
    await bob.recall(with_bob, first.seq)  # two uncounted seqs above alice's read position
    await asyncio.sleep(0.01)
    await carol.send(private(alice_id, carol_id), "newest")
    await pair.assert_same(limit=1)  # the page is carol's chat; bob's is off it
    uncounted = await copy_keys(pair.cached, "x", with_bob)
    assert uncounted
    await delete(pair.cached, uncounted)
    # Only alice reads: bob's own list would show his chat and refill it anyway.
    first_read = await alice.chat_list(1)
    assert first_read.total_unread == 2  # carol's 1, bob's 1 ("one" was recalled)
    assert await copy_keys(pair.cached, "x", with_bob)  # refilled
    assert await alice.chat_list(1) == first_read
    await pair.assert_same(limit=1)


@ONE_SERVER
async def test_a_rebuild_never_hides_an_update_made_during_it(pair: Pair) -> None:
    """The race the generations close: SQL read, then an update, then the install."""
    assert pair.cached.settings.redis_url is not None
    redis = aioredis.Redis.from_url(pair.cached.settings.redis_url)
    prefix = f"{pair.cached.settings.redis_prefix}cl2:"
    index, apply, install = (redis.register_script(s) for s in (lua.INDEX, lua.APPLY, lua.INSTALL))
    try:
        epoch, status, generation = await index(args=[prefix, 42, 60])
        assert status == b"u"
        # ...the rebuild reads SQL: read_seq 3 in p:42-43; meanwhile the user
        # reads up to 5, and that update finds no index to change.
        await apply(args=[prefix, 60, 0, 42, "p:42-43", 5, 0])
        assert await install(args=[prefix, epoch, 42, generation, 60, "p:42-43", 3]) == 0
        # A rebuild that starts now sees the new state and is installed.
        epoch, status, generation = await index(args=[prefix, 42, 60])
        assert await install(args=[prefix, epoch, 42, generation, 60, "p:42-43", 5]) == 1
        # Updates from nodes arriving out of order never move a position back.
        await apply(args=[prefix, 60, 0, 42, "p:42-43", 4, 0])
        assert await redis.hget(f"{prefix}{epoch.decode()}:u:42", "p:42-43") == b"5"
    finally:
        await redis.aclose()


@BOTH
async def test_a_node_that_stops_reporting_drops_the_redis_copy(pair: Pair) -> None:
    """It may have died between a commit and its update: every list is rebuilt."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    await alice.send(private(*pair.ids), "hello")
    await pair.assert_same()
    settings = pair.cached.settings
    target = target_of(pair.cached)
    redis = target.connect()
    store = SqlStore.from_url(settings.database_url)
    watcher = RedisChatList(target, store, node="watcher", node_ttl=0.5)  # type: ignore[arg-type]
    try:
        await watcher._bind()  # to the namespace of this database, as the servers are
        space = await copy_namespace(pair.cached)
        epoch = await redis.get(f"{space}epoch")
        assert epoch is not None
        # A node whose last report is old: killed with SIGKILL, say.
        nodes = registry_key(target.shared)
        live = await redis.hgetall(nodes)
        assert live, "the servers report themselves"
        await redis.hset(nodes, "dead-node", next(iter(live.values())))
        await asyncio.sleep(0.6)
        await watcher._reap_dead_nodes()
        assert await redis.get(f"{space}epoch") != epoch
        assert not await redis.hexists(nodes, "dead-node")
        # The lists come back, rebuilt from SQL, exact.
        await bob.mark_read(private(*pair.ids), 1)
        await pair.assert_same()
    finally:
        await watcher.close()
        await store.close()
        await redis.aclose()


@ONE_SERVER
async def test_redis_unreachable_after_a_commit_serves_sql_then_drops_the_copy(
    tmp_path: Path, own_redis: Callable[[], subprocess.Popen[bytes]], stack: str
) -> None:
    """An update lost to a Redis that hangs must not leave a stale count behind."""
    redis_url = f"redis://127.0.0.1:{own_redis.port}/0"  # type: ignore[attr-defined]
    own_redis()
    settings = settings_for(tmp_path, redis_url=redis_url, redis_prefix="t:")
    server, runner = await start_server(settings)
    alice, bob = Client(server.url), Client(server.url)
    try:
        a = (await alice.signup("alice", PASSWORD)).id
        b = (await bob.signup("bob", PASSWORD)).id
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)
        conversation = private(a, b)
        await alice.send(conversation, "one")
        assert (await bob.conversations())[0].unread == 1  # now cached in Redis
        redis = aioredis.Redis.from_url(redis_url)
        await redis.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        # The commit stands and is acked although its Redis update times out.
        sent = await alice.send(conversation, "two")
        assert sent.seq == 2
        entry = (await bob.conversations())[0]  # from SQL meanwhile
        assert (entry.unread, entry.last_message.body) == (2, "two")  # type: ignore[union-attr]
        assert await metric(server, "tidings_chat_list_redis_trusted") == 0
        await asyncio.sleep(3.5)  # Redis answers again, with its old copy
        for _ in range(50):
            entry = (await bob.conversations())[0]
            assert (entry.unread, entry.last_seq) == (2, 2)
            await asyncio.sleep(0.05)
        assert await metric(server, "tidings_chat_list_redis_trusted") == 1
        await redis.aclose()
    finally:
        await alice.close()
        await bob.close()
        await runner.cleanup()


@BOTH
async def test_an_edited_last_message_keeps_its_quote_in_the_redis_list(pair: Pair) -> None:
    """An edit's outcome carries its target as it reads now, quote included: the
    Redis list showed the edited last message without the message it quotes
    (found by the counts test's random mix on two nodes)."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    chat = private(*pair.ids)
    quoted = await alice.send(chat, "where do we meet?")
    reply = await bob.send(chat, "at the statoin", reply_to=quoted.seq)
    await pair.assert_same()  # the copy holds the conversation's head now
    await bob.edit(chat, reply.seq, "at the station")
    await pair.assert_same()
    [entry] = await alice.conversations()
    assert entry.last_message is not None and entry.last_message.body == "at the station"
    assert entry.last_message.reply_to is not None
    assert entry.last_message.reply_to.preview == "where do we meet?"


@ONE_SERVER
async def test_a_group_name_is_kept_in_redis_through_renames_evictions_and_other_nodes(
    pair: Pair, make_server: ServerFactory
) -> None:
    """A group's name lives beside its head (no SQL read for a page of groups):
    set by the notice of whichever node renamed it, refilled when evicted, and
    never moved back by a rename applied late."""
    alice, bob = await pair.user("alice"), await pair.user("bob")
    group = await alice.create_group("team", [pair.ids[1]])
    chat = f"g:{group.id}"
    await pair.assert_same()
    [name_key] = await copy_keys(pair.cached, "t", chat)
    # Renamed through another node with the Redis list: seen here at once.
    far = await make_server()
    renamer = Client(far.url, token=alice.token)
    try:
        await renamer.update_group(group.id, name="team two")
    finally:
        await renamer.close()
    assert [e.title for e in await bob.conversations()] == ["team two"]
    await pair.assert_same()
    assert pair.cached.settings.redis_url is not None
    redis = aioredis.Redis.from_url(pair.cached.settings.redis_url)
    try:
        named = await redis.get(name_key)
        assert named is not None and named.endswith(b"|team two")
        seq = int(named.split(b"|")[0])
        # A rename applied late (an older notice from another node) is ignored.
        prefix = f"{pair.cached.settings.redis_prefix}cl2:"
        apply = redis.register_script(lua.APPLY)
        await apply(args=[prefix, 60, 1, chat, seq - 1, 0, 0, "", b"", "", "", f"{seq - 1}|team"])
        assert await redis.get(name_key) == named
        assert [e.title for e in await bob.conversations()] == ["team two"]
        # Evicted without its head: the head is dropped and both come back from SQL.
        await redis.delete(name_key)
        await pair.assert_same()
        assert [e.title for e in await alice.conversations()] == ["team two"]
        assert await redis.get(name_key) == named
    finally:
        await redis.aclose()
