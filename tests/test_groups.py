"""Groups: creating, looking up, adding and removing members, ownership, and
what each membership change means for history, the chat list and live events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from tests.conftest import PASSWORD, Account, AccountFactory, ServerFactory
from tests.contract import ISO_MS, assert_error
from tidings.client import Client, Socket

GROUPS = "/api/v1/groups"


def members_path(group_id: int, user_id: int | None = None) -> str:
    return f"{GROUPS}/{group_id}/members" + ("" if user_id is None else f"/{user_id}")


async def create(owner: Account, *members: Account, name: str = "Weekend hike") -> str:
    """Create a group owned by ``owner``; return its conversation id."""
    group = await owner.client.create_group(name, [m.id for m in members])
    return f"g:{group.id}"


def gid(conversation: str) -> int:
    return int(conversation.removeprefix("g:"))


async def events_for(socket: Socket, seconds: float = 0.4) -> list[dict[str, Any]]:
    """Every event a socket receives within ``seconds``."""
    await asyncio.sleep(seconds)
    return socket.drain()


async def events_until(
    socket: Socket, last: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The events a socket receives up to and including the first that matches ``last``."""
    seen: list[dict[str, Any]] = []
    while not seen or not last(seen[-1]):
        seen.append(await socket.next_event())
    return seen


async def listed(account: Account) -> list[str]:
    return [entry.id for entry in await account.client.conversations()]


@pytest.fixture
async def dave(make_account: AccountFactory) -> Account:
    return await make_account("dave", "Dave")


# -- create and look up -------------------------------------------------------


async def test_creating_a_group_makes_the_creator_its_owner_and_a_member(
    alice: Account, bob: Account, carol: Account
) -> None:
    body = {"name": "Weekend hike", "member_ids": [bob.id, carol.id]}
    status, group = await alice.client.request("POST", GROUPS, body)
    assert status == 201, group
    assert isinstance(group["id"], int) and group["name"] == "Weekend hike"
    assert group["owner_id"] == alice.id
    assert sorted(group["member_ids"]) == sorted([alice.id, bob.id, carol.id])
    listed_twice = await alice.client.request(
        "POST", GROUPS, {"name": "x", "member_ids": [alice.id]}
    )
    assert listed_twice[0] == 201 and listed_twice[1]["member_ids"] == [alice.id]


@pytest.mark.parametrize("unknown", [999999, 2**63, 0, -1, "bob", None])
async def test_a_group_with_an_unknown_member_is_refused_with_422(
    alice: Account, bob: Account, unknown: object
) -> None:
    body = {"name": "Typo", "member_ids": [bob.id, unknown]}
    assert_error(await alice.client.request("POST", GROUPS, body), 422, "bad_request")
    assert await listed(alice) == [] and await listed(bob) == []


async def test_a_group_cannot_grow_past_the_size_limit(make_server: ServerFactory) -> None:
    server = await make_server(max_group_members=3)
    clients = [Client(server.url) for _ in range(5)]
    try:
        users = [await c.signup(f"member{i}", PASSWORD) for i, c in enumerate(clients)]
        owner = clients[0]
        await owner.login("member0", PASSWORD)
        too_many = {"name": "big", "member_ids": [u.id for u in users[1:4]]}
        assert_error(await owner.request("POST", GROUPS, too_many), 422, "bad_request")
        status, group = await owner.request(
            "POST", GROUPS, {"name": "full", "member_ids": [users[1].id, users[2].id]}
        )
        assert status == 201 and len(group["member_ids"]) == 3
        answer = await owner.request("POST", members_path(group["id"]), {"user_id": users[3].id})
        assert_error(answer, 422, "bad_request")
        assert len((await owner.group(group["id"])).member_ids) == 3
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_only_members_can_see_a_group(alice: Account, bob: Account, carol: Account) -> None:
    conversation = await create(alice, bob)
    status, seen = await bob.client.request("GET", f"{GROUPS}/{gid(conversation)}")
    assert status == 200 and seen["owner_id"] == alice.id
    assert sorted(seen["member_ids"]) == sorted([alice.id, bob.id])
    answer = await carol.client.request("GET", f"{GROUPS}/{gid(conversation)}")
    assert_error(answer, 403, "not_member")
    for unknown in ("999999", "abc", "0"):
        assert_error(await carol.client.request("GET", f"{GROUPS}/{unknown}"), 404, "not_found")


# -- adding ---------------------------------------------------------------------


async def test_the_owner_adds_members_with_user_id_or_user_ids(
    alice: Account, bob: Account, carol: Account, dave: Account
) -> None:
    group = gid(await create(alice))
    status, one = await alice.client.request("POST", members_path(group), {"user_id": bob.id})
    assert status == 200 and sorted(one["member_ids"]) == sorted([alice.id, bob.id])
    many = {"user_ids": [carol.id, dave.id]}
    status, all_of_them = await alice.client.request("POST", members_path(group), many)
    assert status == 200 and all_of_them["owner_id"] == alice.id
    assert sorted(all_of_them["member_ids"]) == sorted([alice.id, bob.id, carol.id, dave.id])


async def test_only_the_owner_adds_members(alice: Account, bob: Account, carol: Account) -> None:
    conversation = await create(alice, bob)
    group = gid(conversation)
    for body in ({"user_id": carol.id}, {"user_ids": [carol.id]}):
        answer = await bob.client.request("POST", members_path(group), body)
        assert_error(answer, 403, "forbidden")
    assert carol.id not in (await alice.client.group(group)).member_ids
    assert await listed(carol) == []
    # A refused add stores no members_added notice: the created one stays alone.
    [created] = await alice.client.messages(conversation)
    assert created.seq == 1 and created.system and created.system["event"] == "created"


async def test_a_user_added_to_a_group_gets_a_conversation_event_with_its_entry(
    alice: Account, bob: Account, carol: Account
) -> None:
    async with await bob.client.connect() as bob_ws, await carol.client.connect() as carol_ws:
        conversation = await create(alice, bob, name="Book club")
        created: dict[str, Any] = await bob_ws.next_event()
        assert created["type"] == "conversation"
        for i in range(2):
            await alice.client.send(conversation, f"before carol {i}")
        await alice.client.add_members(gid(conversation), [carol.id])
        added: dict[str, Any] = await carol_ws.next_event()
        # Then the notice that added her, as a message: her first.
        notice: dict[str, Any] = await carol_ws.next_event()
    assert added["type"] == "conversation"
    entry = added["conversation"]
    # Seq 1 is the created notice, 2-3 the messages, 4 the notice that adds carol.
    expected = {
        "id": conversation,
        "type": "group",
        "title": "Book club",
        "peer_id": None,
        "group_id": gid(conversation),
        "unread": 0,
        "last_seq": 4,
        "read_seq": 4,
    }
    assert {key: entry.get(key) for key in expected} == expected
    assert notice["type"] == "message" and entry["last_message"] == notice["message"]
    assert notice["message"]["system"]["event"] == "members_added"
    assert notice["message"]["body"] == "Alice added Carol"
    assert entry["updated_at"] == notice["message"]["sent_at"]
    assert ISO_MS.fullmatch(entry["updated_at"])
    at_creation = created["conversation"]
    assert at_creation["id"] == conversation
    assert at_creation["last_message"]["system"]["event"] == "created"
    assert (at_creation["unread"], at_creation["last_seq"]) == (0, 1)


async def test_a_late_joiner_sees_only_messages_sent_after_joining(
    alice: Account, bob: Account, carol: Account
) -> None:
    conversation = await create(alice, bob)
    for i in range(3):
        await bob.client.send(conversation, f"old {i}")
    await alice.client.add_members(gid(conversation), [carol.id])
    # 1: created, 2-4: old, 5: the notice that added carol, all she sees.
    [added] = await carol.client.messages(conversation)
    assert (added.seq, added.kind) == (5, "system")
    assert await carol.client.messages(conversation, after=0) == [added]
    assert await carol.client.messages(conversation, before=5) == []
    [entry] = await carol.client.conversations()
    assert (entry.id, entry.read_seq, entry.last_seq, entry.unread) == (conversation, 5, 5, 0)
    assert entry.last_message == added
    welcome = await alice.client.send(conversation, "welcome, carol")
    assert await carol.client.messages(conversation) == [added, welcome]
    assert await carol.client.messages(conversation, after=0) == [added, welcome]
    [entry] = await carol.client.conversations()
    assert (entry.unread, entry.last_message) == (1, welcome)


# -- removing -------------------------------------------------------------------


async def test_a_removed_member_stops_receiving_and_can_no_longer_send_or_read(
    alice: Account, bob: Account, carol: Account
) -> None:
    async with await bob.client.connect() as bob_ws:
        conversation = await create(alice, bob, carol)
        before = await alice.client.send(conversation, "before")
        await events_until(bob_ws, lambda e: e.get("message", {}).get("seq") == before.seq)
        status, _ = await alice.client.request("DELETE", members_path(gid(conversation), bob.id))
        assert status == 204
        await alice.client.send(conversation, "after bob left")
        await carol.client.send(conversation, "bye bob")
        # Not even the notice of his own removal: that goes to those who stay.
        after = await events_for(bob_ws)
        assert [e for e in after if e["type"] == "message"] == []
        assert {"type": "conversation_removed", "conversation": conversation} in after
    client, path = bob.client, f"/api/v1/conversations/{conversation}"
    answer = await client.request("POST", f"{path}/messages", {"body": "hi"})
    assert_error(answer, 403, "not_member")
    assert_error(await client.request("GET", f"{path}/messages"), 403, "not_member")
    assert_error(await client.request("POST", f"{path}/read", {"seq": 3}), 403, "not_member")
    assert_error(await client.request("GET", f"{GROUPS}/{gid(conversation)}"), 403, "not_member")
    assert await listed(bob) == []
    bodies = [m.body for m in await carol.client.messages(conversation)]
    assert bodies[-4:] == ["before", "Alice removed Bob", "after bob left", "bye bob"]


async def test_a_member_added_again_sees_only_what_comes_after_the_new_join(
    alice: Account, bob: Account
) -> None:
    async with await bob.client.connect() as bob_ws:
        conversation = await create(alice, bob)
        await alice.client.send(conversation, "while bob was in")
        await alice.client.remove_member(gid(conversation), bob.id)
        await alice.client.send(conversation, "while bob was out")
        await alice.client.add_members(gid(conversation), [bob.id])
        back = await alice.client.send(conversation, "welcome back")
        seen = await events_until(bob_ws, lambda e: e.get("message", {}).get("seq") == back.seq)
    # 1 created, 2 "while bob was in", 3 his removal, 4 "while bob was out",
    # 5 the notice that adds him again, 6 "welcome back".
    assert seen[-1] == {"type": "message", "message": msgspec.to_builtins(back)}
    assert [e["message"]["seq"] for e in seen if e["type"] == "message"] == [1, 2, 5, 6]
    entries = [e["conversation"] for e in seen if e["type"] == "conversation"]
    assert [(c["id"], c["read_seq"], c["unread"]) for c in entries][-1] == (conversation, 5, 0)
    [again, later] = await bob.client.messages(conversation)
    assert (again.seq, again.kind, later) == (5, "system", back)
    [entry] = await bob.client.conversations()
    assert (entry.read_seq, entry.unread, entry.last_message) == (5, 1, back)


async def test_a_member_can_leave_a_group(alice: Account, bob: Account, carol: Account) -> None:
    group = gid(await create(alice, bob, carol))
    status, _ = await bob.client.request("DELETE", members_path(group, bob.id))
    assert status == 204
    assert sorted((await alice.client.group(group)).member_ids) == sorted([alice.id, carol.id])
    assert await listed(bob) == []


async def test_the_owner_removes_any_member(alice: Account, bob: Account, carol: Account) -> None:
    group = gid(await create(alice, bob, carol))
    for member in (carol, bob):
        status, _ = await alice.client.request("DELETE", members_path(group, member.id))
        assert status == 204
    assert (await alice.client.group(group)).member_ids == [alice.id]


async def test_a_member_who_is_not_the_owner_cannot_remove_another(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = gid(await create(alice, bob, carol))
    for target in (carol, alice):
        answer = await bob.client.request("DELETE", members_path(group, target.id))
        assert_error(answer, 403, "forbidden")
    assert sorted((await carol.client.group(group)).member_ids) == sorted(
        [alice.id, bob.id, carol.id]
    )


# -- ownership and the end of a group ---------------------------------------------


async def test_when_the_owner_leaves_the_longest_standing_member_becomes_owner(
    alice: Account, bob: Account, carol: Account, dave: Account
) -> None:
    # carol joins first, bob (the lower id) later: carol has stood longest.
    group = gid(await create(alice, carol))
    await alice.client.add_members(group, [bob.id])
    await alice.client.remove_member(group, alice.id)
    after = await carol.client.group(group)
    assert after.owner_id == carol.id
    assert sorted(after.member_ids) == sorted([bob.id, carol.id])
    assert carol.id in (await carol.client.add_members(group, [dave.id])).member_ids
    assert_error(await bob.client.request("DELETE", members_path(group, dave.id)), 403, "forbidden")


async def test_leaving_and_rejoining_starts_a_members_standing_anew(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = gid(await create(alice, bob))
    await alice.client.add_members(group, [carol.id])
    await bob.client.remove_member(group, bob.id)
    await alice.client.add_members(group, [bob.id])
    await alice.client.remove_member(group, alice.id)
    assert (await bob.client.group(group)).owner_id == carol.id


async def test_a_group_left_by_everyone_is_deleted(alice: Account, bob: Account) -> None:
    conversation = await create(alice, bob)
    await bob.client.send(conversation, "last words")
    await bob.client.remove_member(gid(conversation), bob.id)
    await alice.client.remove_member(gid(conversation), alice.id)
    for account in (alice, bob):
        found = await account.client.request("GET", f"{GROUPS}/{gid(conversation)}")
        assert_error(found, 404, "not_found")
        sent = await account.client.request(
            "POST", f"/api/v1/conversations/{conversation}/messages", {"body": "anyone?"}
        )
        assert_error(sent, 404, "not_found")
        assert await listed(account) == []
