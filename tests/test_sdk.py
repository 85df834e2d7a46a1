"""The SDK: ``Client.events()`` survives restarts and misses nothing, ``send_ws``
never duplicates, and ``AdminClient`` covers the integration API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import PASSWORD, Account, AccountFactory, RunningServer
from tidings.client import (
    AdminClient,
    ApiError,
    Client,
    Frame,
    group_conversation,
    message_of,
    private_conversation,
)
from tidings.harness.spawn import ServerProcess

TOKEN = "sdk-s3cret"
Spawn = Callable[..., ServerProcess]


@pytest.fixture
async def server(make_server: Any) -> RunningServer:
    """Every in-process server of this module has the admin API on."""
    server: RunningServer = await make_server(service_token=TOKEN)
    return server


async def until(
    check: Callable[[], bool],
    timeout: float = 15,  # noqa: ASYNC109
    what: str | Callable[[], str] = "",
) -> None:
    """Wait until ``check()`` holds, polling; ``what`` describes it on failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.02)


class Listener:
    """Runs ``client.events()`` in a task and keeps what it yields."""

    def __init__(self, client: Client, **options: Any) -> None:
        self.client = client
        self.events: list[Frame] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run(options))

    async def _run(self, options: dict[str, Any]) -> None:
        try:
            async with contextlib.aclosing(self.client.events(**options)) as stream:
                async for event in stream:
                    self.events.append(event)
        except Exception as exc:
            self.error = exc

    def messages(self) -> list[dict[str, Any]]:
        return [e["message"] for e in self.events if e["type"] == "message"]  # type: ignore[misc]

    def bodies(self, conversation: str | None = None) -> list[str]:
        return [
            m["body"]
            for m in self.messages()
            if conversation is None or m["conversation"] == conversation
        ]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def listening(client: Client, **options: Any) -> AsyncIterator[Listener]:
    listener = Listener(client, **options)
    try:
        await until(lambda: client.connected or listener.task.done(), what="events() to connect")
        yield listener
    finally:
        await listener.stop()


def assert_exactly_once_in_order(listener: Listener) -> None:
    """No (conversation, seq) twice, and seqs ascending within each conversation."""
    seen = [(m["conversation"], m["seq"]) for m in listener.messages()]
    assert len(seen) == len(set(seen)), f"duplicates in {seen}"
    for conversation in {c for c, _ in seen}:
        seqs = [s for c, s in seen if c == conversation]
        assert seqs == sorted(seqs), f"{conversation} out of order: {seqs}"


async def signed_up(url: str, name: str) -> tuple[Client, int]:
    client = Client(url)
    user = await client.signup(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client, user.id


# -- events(): reconnect and catch up --------------------------------------------------


@pytest.mark.slow
async def test_events_survive_a_server_restart_and_yield_every_message_once(
    spawn_server: Spawn,
) -> None:
    first = spawn_server()
    port = first.url.rsplit(":", 1)[1]
    url = first.url
    alice, a = await signed_up(url, "alice")
    bob, b = await signed_up(url, "bob")
    carol, c = await signed_up(url, "carol")
    private = private_conversation(a, b)
    group = await alice.create_group("hike", [b])
    team = group_conversation(group.id)
    try:
        async with listening(bob) as inbox:
            for i in range(1, 4):
                await alice.send(private, f"m{i}")
            await alice.send(team, "g1")
            await until(lambda: len(inbox.messages()) == 4, what="the first 4 messages")

            first.kill()
            await until(lambda: not bob.connected, what="the drop to be noticed")
            await asyncio.to_thread(spawn_server, TIDINGS_PORT=port)  # same port, same database
            # While bob is (probably) still backing off: caught up on reconnect.
            for i in range(4, 11):
                await alice.send(private, f"m{i}")
            await alice.send(team, "g2")
            await carol.send(private_conversation(b, c), "c1")  # a conversation new to bob

            await until(lambda: bob.connected, what="the reconnect")
            for i in range(11, 16):  # live again
                await alice.send(private, f"m{i}")
            await alice.send(team, "g3")
            await until(
                lambda: len(inbox.messages()) >= 19,
                what=lambda: f"all 19 messages: {inbox.messages()} {inbox.error!r}",
            )
            await asyncio.sleep(0.3)  # and nothing more
        assert inbox.error is None
        assert inbox.bodies(private) == [f"m{i}" for i in range(1, 16)]
        assert [m["seq"] for m in inbox.messages() if m["conversation"] == private] == list(
            range(1, 16)
        )
        assert inbox.bodies(team) == ["g1", "g2", "g3"]
        assert inbox.bodies(private_conversation(b, c)) == ["c1"]
        assert_exactly_once_in_order(inbox)
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_events_resume_from_last_seen_with_the_messages_in_between(
    alice: Account, bob: Account
) -> None:
    conversation = private_conversation(alice.id, bob.id)
    await alice.client.send(conversation, "before")  # history: not replayed by default
    async with listening(bob.client) as inbox:
        await alice.client.send(conversation, "one")
        await until(lambda: inbox.bodies() == ["one"])
    assert bob.client.last_seen[conversation] == 2
    for body in ("two", "three"):
        await alice.client.send(conversation, body)
    async with listening(bob.client) as inbox:  # the same client: resumes after seq 2
        await until(lambda: len(inbox.messages()) == 2)
        await alice.client.send(conversation, "four")
        await until(lambda: len(inbox.messages()) == 3)
    assert inbox.bodies() == ["two", "three", "four"]


async def test_events_with_unread_start_at_the_first_unread_message(
    alice: Account, bob: Account, make_account: AccountFactory
) -> None:
    conversation = private_conversation(alice.id, bob.id)
    for body in ("a", "b", "c"):
        await alice.client.send(conversation, body)
    await bob.client.mark_read(conversation, 1)
    # Pages of 200: more than one page is caught up too.
    carol = await make_account("carol")
    lots = private_conversation(bob.id, carol.id)
    for i in range(205):
        await carol.client.send(lots, f"x{i}", client_msg_id=f"x{i}")
    async with listening(bob.client, unread=True) as inbox:
        await until(lambda: len(inbox.messages()) == 207)
    assert inbox.bodies(conversation) == ["b", "c"]
    assert inbox.bodies(lots) == [f"x{i}" for i in range(205)]
    assert_exactly_once_in_order(inbox)


async def test_events_pass_other_events_through(
    alice: Account, bob: Account, server: RunningServer
) -> None:
    async with listening(bob.client) as inbox, AdminClient(server.url, TOKEN) as admin:
        group = await alice.client.create_group("later", [bob.id])
        assert await admin.push({"n": 1}, user_ids=[bob.id]) == 1
        await until(lambda: len(inbox.events) == 2)
        await alice.client.send(group_conversation(group.id), "hi")
        await until(lambda: len(inbox.events) == 3)
    assert [e["type"] for e in inbox.events] == ["conversation", "push", "message"]
    assert inbox.events[1] == {"type": "push", "event": {"n": 1}}


@pytest.mark.parametrize("how", ["logout", "admin"])
async def test_events_stop_with_unauthorized_when_the_token_is_revoked(
    bob: Account, server: RunningServer, how: str
) -> None:
    listener = Listener(bob.client)
    await until(lambda: bob.client.connected)
    if how == "logout":
        async with Client(server.url, bob.client.token) as other_device:
            await other_device.logout()
    else:
        async with AdminClient(server.url, TOKEN) as admin:
            await admin.revoke_tokens(bob.id)
    await asyncio.wait_for(listener.task, 10)
    assert isinstance(listener.error, ApiError)
    assert listener.error.code == "unauthorized"
    assert listener.error.body == {"close_code": 4003}


async def test_events_end_when_the_client_is_closed(bob: Account) -> None:
    listener = Listener(bob.client)
    await until(lambda: bob.client.connected)
    await bob.client.close()
    await asyncio.wait_for(listener.task, 5)
    assert listener.error is None and not bob.client.connected


async def test_events_refuse_a_bad_token_at_once(server: RunningServer) -> None:
    async with Client(server.url, "not-a-token") as client:
        with pytest.raises(ApiError) as refused:
            async for _ in client.events():
                pass
    assert refused.value.code == "unauthorized"


# -- send_ws: never twice --------------------------------------------------------------


async def test_send_ws_uses_the_socket_and_events_yield_it_once(
    alice: Account, bob: Account
) -> None:
    conversation = private_conversation(alice.id, bob.id)
    async with listening(alice.client) as mine, listening(bob.client) as theirs:
        first = await alice.client.send_ws(conversation, "hello")
        again = await alice.client.send_ws(conversation, "hello", first.client_msg_id)
        assert again == first and first.client_msg_id and len(first.client_msg_id) == 32
        await bob.client.send(conversation, "back")
        await until(lambda: len(mine.messages()) == 2 and len(theirs.messages()) == 2)
        await asyncio.sleep(0.2)
    assert mine.bodies() == theirs.bodies() == ["hello", "back"]
    assert len(await alice.client.messages(conversation)) == 2
    # Without events() running, send_ws goes over HTTP, with the same guarantee.
    third = await alice.client.send_ws(conversation, "over http", "cm-3")
    assert await alice.client.send_ws(conversation, "over http", "cm-3") == third


async def test_send_ws_raises_refusals_at_once(alice: Account, bob: Account) -> None:
    async with listening(alice.client):
        with pytest.raises(ApiError) as refused:
            await alice.client.send_ws("p:999998-999999", "nobody's")
    assert refused.value.code in ("not_member", "not_found")


@pytest.mark.slow
async def test_send_ws_never_duplicates_across_a_server_kill(spawn_server: Spawn) -> None:
    first = spawn_server()
    port = first.url.rsplit(":", 1)[1]
    alice, a = await signed_up(first.url, "alice")
    bob, b = await signed_up(first.url, "bob")
    conversation = private_conversation(a, b)
    acked: list[str] = []

    async def stream(name: str) -> None:
        for i in range(12):
            body = f"{name}-{i}"
            sent = await alice.send_ws(conversation, body)
            assert sent.body == body
            acked.append(body)

    try:
        async with listening(alice) as mine, listening(bob) as theirs:
            senders = asyncio.gather(*(stream(name) for name in "abcde"))
            await until(lambda: len(acked) >= 15, what="some acks")
            first.kill()  # with sends in flight: some stored but not acked
            await asyncio.sleep(0.3)
            await asyncio.to_thread(spawn_server, TIDINGS_PORT=port)
            await asyncio.wait_for(senders, 40)
            await until(lambda: len(theirs.messages()) >= 60, what="bob's 60 messages")
            await until(lambda: len(mine.messages()) >= 60, what="alice's own 60 messages")
            await asyncio.sleep(0.3)
        history = await alice.messages(conversation, after=0, limit=200)
        bodies = [m.body for m in history]
        assert sorted(bodies) == sorted(f"{n}-{i}" for n in "abcde" for i in range(12))
        assert [m.seq for m in history] == list(range(1, 61))
        for name in "abcde":  # each stream in its own order
            assert [x for x in bodies if x.startswith(name)] == [f"{name}-{i}" for i in range(12)]
        for listener in (mine, theirs):
            assert listener.bodies() == bodies
            assert_exactly_once_in_order(listener)
    finally:
        await alice.close()
        await bob.close()


# -- AdminClient -----------------------------------------------------------------------


async def test_admin_client_covers_the_integration_api(server: RunningServer) -> None:
    async with AdminClient(server.url, TOKEN) as admin:
        shop = await admin.create_user("shop", "Shop")
        buyer = await admin.create_user("buyer")
        assert (shop.display_name, buyer.display_name) == ("Shop", "buyer")
        with pytest.raises(ApiError) as taken:
            await admin.create_user("SHOP")
        assert taken.value.code == "username_taken" and taken.value.status == 409
        assert [u.id for u in await admin.users()] == [shop.id, buyer.id]
        assert [u.id for u in await admin.users(after_id=shop.id, limit=5)] == [buyer.id]
        assert [u.id async for u in admin.iter_users(page=1)] == [shop.id, buyer.id]
        assert await admin.user(buyer.id) == buyer
        renamed = await admin.set_display_name(buyer.id, "Best buyer")
        assert renamed.display_name == "Best buyer"

        token = await admin.mint_token(buyer.id)
        async with Client(server.url, token) as client:
            assert (await client.me()).id == buyer.id
            assert await admin.presence([buyer.id, shop.id]) == {buyer.id: False, shop.id: False}
            async with await client.connect() as ws:
                assert await admin.presence([buyer.id, shop.id]) == {
                    buyer.id: True,
                    shop.id: False,
                }
                conversation = private_conversation(shop.id, buyer.id)
                sent = await admin.send_as(shop.id, conversation, "shipped", "order-1")
                assert sent.sender == shop.id and sent.seq == 1
                assert message_of(await ws.next_event()) == sent
                assert await admin.send_as(shop.id, conversation, "shipped", "order-1") == sent

                assert await admin.push({"order": 1}, user_ids=[buyer.id]) == 1
                assert await ws.next_event() == {"type": "push", "event": {"order": 1}}
                assert await admin.push("all", all=True) == 1
                assert await ws.next_event() == {"type": "push", "event": "all"}

                group = await admin.create_group("staff", shop.id, [buyer.id])
                assert group.owner_id == shop.id and sorted(group.member_ids) == sorted(
                    [shop.id, buyer.id]
                )
                assert (await ws.next_event())["type"] == "conversation"
                created = message_of(await ws.next_event())  # the group's seq 1
                assert (created.seq, created.kind) == (1, "system")
                assert await admin.group(group.id) == group
                # The group run on the members' behalf (PROTOCOL-v2 §6): each a notice.
                ran = await admin.update_group(group.id, name="staff room", announcement="9:00")
                assert ran.name == "staff room" and ran.announcement is not None
                ran = await admin.set_admins(group.id, [buyer.id])
                assert ran.admin_ids == [buyer.id]
                ran = await admin.mute_member(group.id, buyer.id, 60)
                assert ran.muted_ids == [buyer.id]
                ran = await admin.unmute_member(group.id, buyer.id)
                assert ran.muted_ids == []
                ran = await admin.transfer_group(group.id, buyer.id)
                assert ran.owner_id == buyer.id
                events = [message_of(await ws.next_event()).system for _ in range(6)]
                assert [e["event"] for e in events if e] == [
                    "renamed",
                    "announcement",
                    "admins_changed",
                    "muted",
                    "unmuted",
                    "owner_changed",
                ]
                group = await admin.group(group.id)
                assert await admin.push(None, group_id=group.id) == 1
                assert await ws.next_event() == {"type": "push", "event": None}
                online = await admin.group_online(group.id)
                assert (online.members, online.online, online.connections) == (2, 1, 1)
                stats = await admin.stats()
                assert stats.connections == 1 and len(stats.nodes) == 1
                assert stats.nodes[0].connections == 1 and stats.nodes[0].users_online == 1

                changed = await admin.set_members(group.id, [shop.id])
                assert changed is not None and changed.member_ids == [shop.id]
                await admin.dissolve_group(group.id)
                assert (await admin.group(group.id)).dissolved
                await admin.delete_group(group.id)
                with pytest.raises(ApiError) as gone:
                    await admin.group(group.id)
                assert gone.value.code == "not_found"

                await admin.revoke_tokens(buyer.id)
                assert await ws.wait_closed() == 4003
        with pytest.raises(ValueError):
            await admin.push({}, user_ids=[1], all=True)
        with pytest.raises(ValueError):
            await admin.push({})


async def test_admin_client_errors(server: RunningServer, make_server: Any) -> None:
    async with AdminClient(server.url, "wrong") as admin:
        with pytest.raises(ApiError) as wrong:
            await admin.stats()
    assert (wrong.value.status, wrong.value.code) == (401, "unauthorized")
    off = await make_server()  # no service token: the admin API is off
    async with AdminClient(off.url, TOKEN) as admin:
        with pytest.raises(ApiError) as forbidden:
            await admin.stats()
    assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
