"""PROTOCOL-v2 §5 from outside: what a user keeps on a chat-list entry (pinned,
muted, hidden, marked unread, a draft), the list's order and ``total_unread``,
and the ``conversation`` event to the user's other connections, on every
stack (and across two nodes where there is Redis)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from tests.conftest import PASSWORD, Account, ServerFactory, no_event, private
from tests.contract import ISO_MS, assert_error
from tidings.client import Client, Conversation

CONVERSATIONS = "/api/v1/conversations"


async def group(owner: Account, *members: Account, name: str = "Team") -> str:
    created = await owner.client.create_group(name, [m.id for m in members])
    return f"g:{created.id}"


async def patch(account: Account, conversation: str, body: Any) -> tuple[int, Any]:
    return await account.client.request("PATCH", f"{CONVERSATIONS}/{conversation}", body)


async def listed(account: Account, *, hidden: bool = False) -> list[Conversation]:
    return await account.client.conversations(1000, hidden=hidden)


def total_by_rule(entries: list[Conversation]) -> int:
    """PROTOCOL-v2 §5: over entries not muted, unread, a marked one with none as 1."""
    return sum(e.unread or int(e.marked_unread) for e in entries if not e.muted)


async def test_a_new_entry_reads_as_v1(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)
    await bob.client.send(chat, "hi")
    status, body = await alice.client.request("GET", CONVERSATIONS)
    assert status == 200
    assert body["total_unread"] == 1
    (entry,) = body["conversations"]
    assert entry["pinned"] is False and entry["muted"] is False
    assert entry["marked_unread"] is False and entry["draft"] is None
    assert entry["hidden"] is False


async def test_pinned_entries_come_first_and_the_other_device_hears_of_it(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob, carol)
    await alice.client.send(team, "team first")
    await asyncio.sleep(0.01)
    await bob.client.send(private(alice, bob), "bob")
    await asyncio.sleep(0.01)
    await carol.client.send(private(alice, carol), "carol")
    assert [e.id for e in await listed(alice)] == [
        private(alice, carol),
        private(alice, bob),
        team,
    ]
    async with await alice.client.connect() as other_device:
        status, entry = await patch(alice, team, {"pinned": True})
        assert status == 200, entry
        assert entry["id"] == team and entry["pinned"] is True
        event = await other_device.next_event()
        assert event["type"] == "conversation"
        assert event["conversation"]["id"] == team and event["conversation"]["pinned"] is True
    assert [e.id for e in await listed(alice)] == [
        team,
        private(alice, carol),
        private(alice, bob),
    ]
    # Among pinned entries, newest first too.
    await patch(alice, private(alice, bob), {"pinned": True})
    await bob.client.send(private(alice, bob), "again")
    assert [e.id for e in await listed(alice)] == [
        private(alice, bob),
        team,
        private(alice, carol),
    ]
    # Only this user's list changes.
    assert not any(e.pinned for e in await listed(bob))
    await patch(alice, team, {"pinned": False})
    assert [e.id for e in await listed(alice)][0] == private(alice, bob)
    assert [e.id for e in await listed(alice)][1:] == [private(alice, carol), team]


async def test_a_change_over_the_websocket_origin_is_answered_not_echoed(
    alice: Account, bob: Account
) -> None:
    """The PATCH's own connection is HTTP: every socket of the user hears it."""
    chat = private(alice, bob)
    await bob.client.send(chat, "hi")
    async with (
        await alice.client.connect() as one,
        await alice.client.connect() as two,
        await bob.client.connect() as peer,
    ):
        await patch(alice, chat, {"muted": True})
        for socket in (one, two):
            event = await socket.next_event()
            assert event["type"] == "conversation" and event["conversation"]["muted"]
        await no_event(peer)


async def test_a_muted_entry_keeps_its_count_but_leaves_the_total(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(bob, alice, carol)
    for text in ("one", "two", "three"):
        await bob.client.send(team, text)
    await carol.client.send(private(alice, carol), "hey")
    body = await alice.client.chat_list()
    assert body.total_unread == 4
    status, entry = await patch(alice, team, {"muted": True})
    assert status == 200 and entry["muted"] is True and entry["unread"] == 3
    body = await alice.client.chat_list()
    assert body.total_unread == 1
    assert {e.id: e.unread for e in body.conversations}[team] == 3
    assert body.total_unread == total_by_rule(body.conversations)
    await patch(alice, team, {"muted": False})
    assert (await alice.client.chat_list()).total_unread == 4


async def test_marked_unread_counts_one_until_a_read(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)
    sent = await bob.client.send(chat, "hi")
    await alice.client.mark_read(chat, sent.seq)
    assert (await alice.client.chat_list()).total_unread == 0
    status, entry = await patch(alice, chat, {"marked_unread": True})
    assert status == 200 and entry["marked_unread"] is True and entry["unread"] == 0
    assert (await alice.client.chat_list()).total_unread == 1
    # A read at the same position (nothing new to read) clears the mark, over
    # HTTP, and the other devices get the entry (no read event: nothing moved)...
    async with await alice.client.connect() as other_device:
        entry_after = await alice.client.mark_read(chat, sent.seq)
        assert entry_after.marked_unread is False
        event = await other_device.next_event()
        assert event["type"] == "conversation" and event["conversation"]["id"] == chat
        assert event["conversation"]["marked_unread"] is False
        # A repeat clears nothing and tells no one.
        await alice.client.mark_read(chat, sent.seq)
        await no_event(other_device)
    assert (await alice.client.chat_list()).total_unread == 0
    # ... and over the WebSocket, and a read that moves clears it too.
    await patch(alice, chat, {"marked_unread": True})
    second = await bob.client.send(chat, "there?")
    async with await alice.client.connect() as socket:
        await socket.mark_read(chat, second.seq)
    entry_now = await alice.client.conversation(chat)
    assert entry_now.marked_unread is False and entry_now.unread == 0
    # A marked entry with unread counts its unread, not one more.
    await bob.client.send(chat, "a")
    await bob.client.send(chat, "b")
    await patch(alice, chat, {"marked_unread": True})
    assert (await alice.client.chat_list()).total_unread == 2


async def test_a_hidden_entry_comes_back_with_the_next_countable_message(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(alice, bob)
    first = await bob.client.send(chat, "hi")
    await carol.client.send(private(alice, carol), "hello")
    status, entry = await patch(alice, chat, {"hidden": True})
    assert status == 200 and entry["hidden"] is True
    assert [e.id for e in await listed(alice)] == [private(alice, carol)]
    with_hidden = {e.id: e for e in await listed(alice, hidden=True)}
    assert with_hidden[chat].hidden is True
    # Notices do not bring it back: a recall, an edit.
    await bob.client.edit(chat, first.seq, "hi!")
    assert chat not in {e.id for e in await listed(alice)}
    # A message does, for the user who hid it only.
    again = await bob.client.send(chat, "are you there?")
    entries = {e.id: e for e in await listed(alice)}
    assert entries[chat].hidden is False and entries[chat].last_message is not None
    assert entries[chat].last_message.seq == again.seq
    # A recall of that message hides it again: it no longer counts.
    await bob.client.recall(chat, again.seq)
    assert chat not in {e.id for e in await listed(alice)}
    # Unhiding shows it whatever came since.
    await patch(alice, chat, {"hidden": False})
    assert chat in {e.id for e in await listed(alice)}
    # One's own message brings it back too.
    await patch(alice, chat, {"hidden": True})
    await alice.client.send(chat, "me")
    assert chat in {e.id for e in await listed(alice)}


async def test_a_draft_is_kept_orders_the_list_and_goes_with_a_send(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(alice, bob)
    await bob.client.send(chat, "hi")
    await asyncio.sleep(0.01)
    await carol.client.send(private(alice, carol), "hello")
    assert [e.id for e in await listed(alice)][0] == private(alice, carol)
    await asyncio.sleep(0.01)
    async with await alice.client.connect() as laptop:
        status, entry = await patch(alice, chat, {"draft": "see you at"})
        assert status == 200, entry
        assert entry["draft"]["body"] == "see you at"
        assert ISO_MS.fullmatch(entry["draft"]["updated_at"])
        event = await laptop.next_event()
        assert event["conversation"]["draft"]["body"] == "see you at"
    # The draft's time moves the entry up (the later of the two times).
    first = (await listed(alice))[0]
    assert first.id == chat and first.draft is not None
    assert first.draft.updated_at > first.updated_at
    # Another device sees it.
    phone = Client(alice.client.base_url)
    try:
        await phone.login(alice.username, PASSWORD)
        seen = await phone.conversation(chat)
        assert seen.draft is not None and seen.draft.body == "see you at"
    finally:
        await phone.close()
    # A send clears it (over HTTP here; the WebSocket in the next step).
    await alice.client.send(chat, "see you at 8")
    assert (await alice.client.conversation(chat)).draft is None
    await patch(alice, chat, {"draft": "x"})
    async with await alice.client.connect() as socket:
        await socket.send(chat, "sent by socket")  # acked: committed
    assert (await alice.client.conversation(chat)).draft is None
    # null and "" clear it; the peer's draft is the peer's.
    await patch(alice, chat, {"draft": "again"})
    await patch(bob, chat, {"draft": "bob's"})
    status, entry = await patch(alice, chat, {"draft": None})
    assert status == 200 and entry["draft"] is None
    await patch(alice, chat, {"draft": "again"})
    status, entry = await patch(alice, chat, {"draft": ""})
    assert entry["draft"] is None
    bobs = await bob.client.conversation(chat)
    assert bobs.draft is not None and bobs.draft.body == "bob's"
    # A draft of exactly 4,000 characters is kept.
    status, entry = await patch(alice, chat, {"draft": "d" * 4000})
    assert status == 200 and len(entry["draft"]["body"]) == 4000


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"pinned": "yes"}, 422, "bad_request"),
        ({"muted": None}, 422, "bad_request"),
        ({"hidden": 1}, 422, "bad_request"),
        ({"marked_unread": True, "colour": "red"}, 422, "bad_request"),
        ({"draft": 5}, 422, "bad_request"),
        ({"draft": "x" * 4001}, 413, "too_large"),
        ({"draft": "a\x00b"}, 422, "bad_request"),
        ([True], 422, "bad_request"),
        (b"{not json", 400, "bad_request"),
    ],
)
async def test_a_bad_patch_gets_its_contract_error_and_changes_nothing(
    alice: Account, bob: Account, body: Any, status: int, code: str
) -> None:
    chat = private(alice, bob)
    await bob.client.send(chat, "hi")
    before = await alice.client.conversation(chat)
    got, answer = await patch(alice, chat, body)
    assert_error((got, answer), status, code)
    assert await alice.client.conversation(chat) == before


async def test_a_patch_needs_an_entry_of_ones_own(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(bob, carol)
    await bob.client.send(chat, "private")
    got, answer = await patch(alice, chat, {"pinned": True})
    assert_error((got, answer), 403, "not_member")
    team = await group(bob, carol)
    got, answer = await patch(alice, team, {"pinned": True})
    assert_error((got, answer), 403, "not_member")
    got, answer = await patch(alice, "g:999999", {"pinned": True})
    assert_error((got, answer), 404, "not_found")
    got, answer = await patch(alice, "p:2-1", {"pinned": True})
    assert_error((got, answer), 404, "not_found")
    # A private chat before its first message has no entry to keep state on.
    got, answer = await patch(alice, private(alice, bob), {"draft": "hi"})
    assert_error((got, answer), 404, "not_found")
    got, answer = await alice.client.request("GET", f"{CONVERSATIONS}?hidden=maybe")
    assert_error((got, answer), 422, "bad_request")
    # Nobody else's entry changed.
    assert not any(e.pinned for e in await listed(bob))
    status, _ = await alice.client.request(
        "PATCH", f"{CONVERSATIONS}/{chat}", {"pinned": True}, headers={"Authorization": "x"}
    )
    assert status == 401


async def test_an_empty_patch_answers_the_entry_and_tells_no_one(
    alice: Account, bob: Account
) -> None:
    chat = private(alice, bob)
    await bob.client.send(chat, "hi")
    async with await alice.client.connect() as socket:
        status, entry = await patch(alice, chat, {})
        assert status == 200 and entry["id"] == chat
        await no_event(socket)


async def test_total_unread_matches_a_recomputation_after_random_changes(
    alice: Account, bob: Account, carol: Account
) -> None:
    rng = random.Random(20)
    chats = [private(alice, bob), private(alice, carol), await group(bob, alice, carol)]
    senders = {chats[0]: bob, chats[1]: carol, chats[2]: carol}
    for chat in chats:
        await senders[chat].client.send(chat, "start")
    last_sent: dict[str, int] = {}
    for step in range(50):
        chat = rng.choice(chats)
        action = rng.randrange(7)
        if action == 0:
            last_sent[chat] = (await senders[chat].client.send(chat, f"m{step}")).seq
        elif action == 6:
            # A recalled message no longer counts: the total follows (uncounted seqs).
            if chat in last_sent:
                await senders[chat].client.recall(chat, last_sent.pop(chat))
        elif action == 1:
            entry = await alice.client.conversation(chat)
            await alice.client.mark_read(chat, rng.randint(entry.read_seq, entry.last_seq))
        else:
            field = ("pinned", "muted", "hidden", "marked_unread")[action - 2]
            await patch(alice, chat, {field: rng.random() < 0.5})
        got = await alice.client.chat_list(1000, hidden=True)
        assert got.total_unread == total_by_rule(got.conversations), step
        pinned = [e.pinned for e in got.conversations]
        assert pinned == sorted(pinned, reverse=True), step


async def test_the_entry_state_is_the_same_on_another_node(
    make_server: ServerFactory, stack: str
) -> None:
    if "redis" not in stack:
        pytest.skip("two nodes share events through Redis")
    one, two = await make_server(), await make_server()
    clients = [Client(one.url), Client(one.url), Client(two.url)]
    try:
        alice_user = await clients[0].signup("alice", PASSWORD, "Alice")
        bob_user = await clients[1].signup("bob", PASSWORD, "Bob")
        await clients[0].login("alice", PASSWORD)
        await clients[1].login("bob", PASSWORD)
        await clients[2].login("alice", PASSWORD)
        low, high = sorted((alice_user.id, bob_user.id))
        chat = f"p:{low}-{high}"
        async with await clients[2].connect() as far:
            await asyncio.sleep(0.1)  # the socket is known on its node
            # The message comes first and is awaited here, so a loaded machine's
            # late delivery of it cannot stand in for the event under test.
            await clients[1].send(chat, "hi")
            assert (await far.next_event())["type"] == "message"
            await clients[0].update_conversation(chat, pinned=True, draft="on node one")
            event = await far.next_event()
            assert event["type"] == "conversation"
            assert event["conversation"]["pinned"] is True
            assert event["conversation"]["draft"]["body"] == "on node one"
        seen = (await clients[2].conversations())[0]
        assert seen.pinned and seen.draft is not None and seen.draft.body == "on node one"
    finally:
        await asyncio.gather(*(c.close() for c in clients))
