"""The chat list: order, unread counts, last message, time separators, and the
live ``message`` events that keep every open connection of every member current."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from tests.conftest import PASSWORD, Account, AccountFactory, RunningServer, ServerFactory, private
from tidings.client import Client, Socket
from tidings.models import Conversation, Message, iso_ms, now_ms

Entries = dict[str, Conversation]


async def entries(account: Account, limit: int | None = None) -> Entries:
    return {entry.id: entry for entry in await account.client.conversations(limit)}


async def group_of(owner: Account, *members: Account, name: str = "Team") -> str:
    return f"g:{(await owner.client.create_group(name, [m.id for m in members])).id}"


COUNTABLE = frozenset({"text", "image", "file", "voice"})


def unread_by_rule(history: list[Message], user: int) -> int:
    """The contract's definition: countable messages (never notices, PROTOCOL-v2 §1)
    after the user's read_seq not sent by the user. Here read_seq is the seq of the
    user's own latest message (a send sets it)."""
    read_seq = max((m.seq for m in history if m.sender == user), default=0)
    return sum(1 for m in history if m.seq > read_seq and m.sender != user and m.kind in COUNTABLE)


@pytest.fixture
async def sign_up_on(
    make_server: ServerFactory,
) -> AsyncIterator[Callable[..., Awaitable[Account]]]:
    """Accounts on a server with changed settings (``make_account`` uses the default one)."""
    clients: list[Client] = []

    async def make(server: RunningServer, name: str) -> Account:
        client = Client(server.url)
        clients.append(client)
        user = await client.signup(name, PASSWORD, name.title())
        await client.login(name, PASSWORD)
        return Account(user, client, name)

    yield make
    await asyncio.gather(*(c.close() for c in clients))


# -- order, last message, limit -------------------------------------------------


async def test_the_chat_list_is_newest_first_across_private_and_group_chats(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group_of(alice, bob, carol)
    steps = [(bob, private(alice, bob)), (carol, team), (carol, private(alice, carol))]
    for sender, conversation in steps:
        await sender.client.send(conversation, "hi")
        await asyncio.sleep(0.01)  # distinct millisecond timestamps
    order = [entry.id for entry in await alice.client.conversations()]
    assert order == [private(alice, carol), team, private(alice, bob)]
    await bob.client.send(private(alice, bob), "me again")
    listed = await alice.client.conversations()
    assert [entry.id for entry in listed] == [private(alice, bob), private(alice, carol), team]
    stamps = [entry.updated_at for entry in listed]
    assert stamps == sorted(stamps, reverse=True)


async def test_each_entry_shows_the_last_message_and_its_time(
    alice: Account, bob: Account, carol: Account
) -> None:
    conversation = private(alice, bob)
    await alice.client.send(conversation, "first")
    last = await bob.client.send(conversation, "second")
    for account, peer in ((alice, bob), (bob, alice)):
        entry = (await entries(account))[conversation]
        assert (entry.type, entry.peer_id, entry.group_id) == ("private", peer.id, None)
        assert entry.title == peer.user.display_name
        assert entry.last_message == last and entry.updated_at == last.sent_at
        assert entry.last_seq == 2


async def test_a_new_group_is_listed_with_its_created_notice(alice: Account, bob: Account) -> None:
    before = iso_ms(now_ms())
    team = await group_of(alice, bob, name="Quiet room")
    after = iso_ms(now_ms())
    entry = (await entries(bob))[team]
    assert (entry.type, entry.title, entry.peer_id) == ("group", "Quiet room", None)
    # PROTOCOL-v2 §1: a group's conversation starts with its created notice,
    # which is its last message until one is sent, and counts for no one.
    created = entry.last_message
    assert created is not None and (created.seq, created.kind) == (1, "system")
    assert created.body == 'Alice created the group "Quiet room"'
    assert entry.group_id == int(team[2:]) and (entry.unread, entry.last_seq) == (0, 1)
    assert entry.read_seq == 1
    assert before <= entry.updated_at <= after and entry.updated_at == created.sent_at


async def test_limit_keeps_only_the_newest_entries_and_the_default_is_100(
    alice: Account, make_account: AccountFactory
) -> None:
    peers = [await make_account() for _ in range(101)]
    for i, peer in enumerate(peers):
        if i >= 98:
            await asyncio.sleep(0.01)  # the newest three have distinct timestamps
        await peer.client.send(private(alice, peer), "hello")
    newest = [private(alice, peer) for peer in reversed(peers)]
    assert [entry.id for entry in await alice.client.conversations(limit=3)] == newest[:3]
    assert len(await alice.client.conversations()) == 100
    assert len(await alice.client.conversations(limit=101)) == 101
    for bad in ("0", "-1", "abc"):
        status, _ = await alice.client.request("GET", f"/api/v1/conversations?limit={bad}")
        assert status == 422


# -- unread and read_seq --------------------------------------------------------------


async def test_unread_counts_messages_after_read_seq_from_others(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    for i in range(3):
        await bob.client.send(conversation, f"m{i}")
    assert (await entries(alice))[conversation].unread == 3
    assert (await entries(bob))[conversation].unread == 0
    await alice.client.mark_read(conversation, 2)
    entry = (await entries(alice))[conversation]
    assert (entry.read_seq, entry.unread) == (2, 1)


async def test_sending_marks_everything_up_to_the_senders_message_read(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    for i in range(3):
        await bob.client.send(conversation, f"m{i}")
    mine = await alice.client.send(conversation, "caught up")
    entry = (await entries(alice))[conversation]
    assert (entry.read_seq, entry.unread, entry.last_seq) == (mine.seq, 0, 4)
    bobs = (await entries(bob))[conversation]
    assert (bobs.read_seq, bobs.unread) == (3, 1)


async def test_group_unread_counts_everyone_elses_messages(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group_of(alice, bob, carol)
    await bob.client.send(team, "one")
    await bob.client.send(team, "two")
    await carol.client.send(team, "three")
    unread = {a.username: (await entries(a))[team].unread for a in (alice, bob, carol)}
    assert unread == {"alice": 3, "bob": 1, "carol": 0}


async def test_unread_is_exact_when_one_account_sends_from_several_devices_at_once(
    alice: Account, bob: Account, carol: Account
) -> None:
    team, direct = await group_of(alice, bob, carol), private(alice, bob)
    per_device, devices = 15, 3
    sockets = [await bob.client.connect() for _ in range(devices)]
    carol_ws = await carol.client.connect()
    try:
        sends = [
            ws.send(conversation, f"bob {d}.{i}")
            for d, ws in enumerate(sockets)
            for i in range(per_device)
            for conversation in (direct, team)
        ]
        sends += [carol_ws.send(team, f"carol {i}") for i in range(per_device)]
        await asyncio.gather(*sends)
    finally:
        for ws in (*sockets, carol_ws):
            await ws.close()
    total_bob = per_device * devices
    alice_list, bob_list, carol_list = [await entries(a) for a in (alice, bob, carol)]
    assert alice_list[direct].unread == total_bob and alice_list[direct].last_seq == total_bob
    assert (bob_list[direct].unread, bob_list[direct].read_seq) == (0, total_bob)
    assert alice_list[team].unread == total_bob + per_device
    history = await alice.client.messages(team, limit=200)
    # Seq 1 is the created notice; the messages follow it without a gap.
    assert [m.seq for m in history] == list(range(1, total_bob + per_device + 2))
    assert history[0].kind == "system"
    assert bob_list[team].unread == unread_by_rule(history, bob.id)
    assert carol_list[team].unread == unread_by_rule(history, carol.id)


# -- time separators ------------------------------------------------------------------


async def test_a_time_separator_marks_the_first_message_and_each_gap(
    make_server: ServerFactory, sign_up_on: Callable[..., Awaitable[Account]]
) -> None:
    server = await make_server(time_separator_seconds=0.3)
    ann, ben = await sign_up_on(server, "ann"), await sign_up_on(server, "ben")
    conversation = private(ann, ben)
    marks = [(await ann.client.send(conversation, "hello")).time_separator]
    marks.append((await ben.client.send(conversation, "hi")).time_separator)
    await asyncio.sleep(0.5)
    marks.append((await ben.client.send(conversation, "later")).time_separator)
    marks.append((await ann.client.send(conversation, "right away")).time_separator)
    assert marks == [True, False, True, False]
    history = await ben.client.messages(conversation)
    assert [m.time_separator for m in history] == marks
    assert (await entries(ben))[conversation].last_message == history[-1]


async def test_time_separators_are_counted_per_conversation(
    make_server: ServerFactory, sign_up_on: Callable[..., Awaitable[Account]]
) -> None:
    server = await make_server(time_separator_seconds=0.3)
    ann, ben, cat = [await sign_up_on(server, name) for name in ("ann", "ben", "cat")]
    first = await ann.client.send(private(ann, ben), "to ben")
    await asyncio.sleep(0.5)
    other = await ann.client.send(private(ann, cat), "to cat")
    again = await ann.client.send(private(ann, ben), "to ben again")
    assert [m.time_separator for m in (first, other, again)] == [True, True, True]
    team = await group_of(ann, ben, cat)
    # The group's created notice opens its timeline, so it carries the first
    # separator; the messages right after it do not.
    [created] = await cat.client.messages(team)
    assert created.kind == "system" and created.time_separator
    group_marks = [(await cat.client.send(team, f"g{i}")).time_separator for i in range(3)]
    assert group_marks == [False, False, False]
    await asyncio.sleep(0.5)
    assert (await cat.client.send(team, "later")).time_separator


# -- live updates -------------------------------------------------------------------


async def collect_messages(socket: Socket, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        event: dict[str, Any] = await socket.next_event()
        if event["type"] == "message":
            found.append(event["message"])
    return found


async def test_every_member_connection_gets_each_new_message(
    alice: Account, bob: Account, carol: Account, make_account: AccountFactory
) -> None:
    outsider = await make_account("dave", "Dave")
    team = await group_of(alice, bob, carol)
    phone, laptop = await alice.client.connect(), await alice.client.connect()
    bob_ws, carol_ws = await bob.client.connect(), await carol.client.connect()
    outsider_ws = await outsider.client.connect()
    try:
        sent = [msgspec.to_builtins(await alice.client.send(team, f"http {i}")) for i in range(3)]
        sent.append(msgspec.to_builtins(await bob_ws.send(team, "from bob's socket")))
        sent.append(msgspec.to_builtins(await phone.send(team, "from alice's phone")))
        expected = {
            "phone": sent[:4],
            "laptop": sent,
            "bob": sent[:3] + sent[4:],
            "carol": sent,
        }
        sockets = {"phone": phone, "laptop": laptop, "bob": bob_ws, "carol": carol_ws}
        for name, ws in sockets.items():
            assert await collect_messages(ws, len(expected[name])) == expected[name], name
        await asyncio.sleep(0.3)
        leftovers = [e for ws in (*sockets.values(), outsider_ws) for e in ws.drain()]
        assert [e for e in leftovers if e["type"] == "message"] == []
    finally:
        for ws in (phone, laptop, bob_ws, carol_ws, outsider_ws):
            await ws.close()


async def test_a_private_message_reaches_both_users_open_connections(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    async with (
        await alice.client.connect() as alice_ws,
        await bob.client.connect() as bob_phone,
        await bob.client.connect() as bob_laptop,
    ):
        sent = msgspec.to_builtins(await alice.client.send(conversation, "ping"))
        for ws in (alice_ws, bob_phone, bob_laptop):
            assert await ws.next_event() == {"type": "message", "message": sent}


async def test_a_private_entry_shows_how_far_the_peer_has_read(
    alice: Account, bob: Account
) -> None:
    conversation = private(alice, bob)
    for n in range(3):
        await alice.client.send(conversation, f"m{n}")
    assert (await alice.client.conversations())[0].peer_read_seq == 0
    await bob.client.mark_read(conversation, 2)
    assert (await alice.client.conversations())[0].peer_read_seq == 2
    group = await alice.client.create_group("no receipts", [bob.id])
    entries = {c.id: c for c in await alice.client.conversations()}
    assert entries[f"g:{group.id}"].peer_read_seq is None
