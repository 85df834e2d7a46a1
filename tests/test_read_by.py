"""PROTOCOL-v2 §6's read-by from outside: who of the members who could see a
message (and still belong) read it, for its sender and the group's owner,
exact against every member's own read position, on every stack."""

from __future__ import annotations

import random

from tests.conftest import Account, AccountFactory, private
from tests.contract import assert_error


def reads_path(conversation: str, seq: int | str) -> str:
    return f"/api/v1/conversations/{conversation}/messages/{seq}/reads"


async def test_the_sender_and_the_owner_see_who_read_a_group_message(
    alice: Account, bob: Account, carol: Account, make_account: AccountFactory
) -> None:
    dave = await make_account("dave", "Dave")
    group = await alice.client.create_group("Team", [bob.id, carol.id, dave.id])
    team = f"g:{group.id}"
    sent = await bob.client.send(team, "lunch?")
    status, body = await bob.client.request("GET", reads_path(team, sent.seq))
    assert status == 200, body
    assert body == {
        "seq": sent.seq,
        "read": 0,
        "unread": 3,
        "read_ids": [],
        "unread_ids": sorted([alice.id, carol.id, dave.id]),
    }
    await carol.client.mark_read(team, sent.seq)
    later = await dave.client.send(team, "yes")  # dave's own send reads up to it
    for viewer in (bob, alice):  # the sender, the owner
        got = await viewer.client.read_by(team, sent.seq)
        assert got.read_ids == sorted([carol.id, dave.id])
        assert got.unread_ids == [alice.id]
        assert (got.read, got.unread) == (2, 1)
    # A plain member who did not send it may not ask.
    assert_error(await carol.client.request("GET", reads_path(team, sent.seq)), 403, "forbidden")
    # A member added later could not see it; a removed one no longer belongs.
    erin = await make_account("erin", "Erin")
    await alice.client.add_members(group.id, [erin.id])
    await alice.client.remove_member(group.id, dave.id)
    got = await bob.client.read_by(team, sent.seq)
    # Alice's own changes (their notices) read up to them, as her sends would.
    assert got.read_ids == sorted([alice.id, carol.id]) and got.unread_ids == []
    # An admin may ask too; a plain member still may not.
    await alice.client.set_admins(group.id, [carol.id])
    assert (await carol.client.read_by(team, sent.seq)).read_ids == got.read_ids
    assert_error(await erin.client.request("GET", reads_path(team, sent.seq)), 404, "not_found")
    # Erin sees dave's later message's read-by only as its sender could: not at all.
    assert_error(await erin.client.request("GET", reads_path(team, later.seq)), 404, "not_found")


async def test_read_by_in_a_private_chat_is_the_peer(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send(chat, "hi")
    assert (await alice.client.read_by(chat, sent.seq)).unread_ids == [bob.id]
    await bob.client.mark_read(chat, sent.seq)
    got = await alice.client.read_by(chat, sent.seq)
    assert (got.read, got.unread, got.read_ids) == (1, 0, [bob.id])
    assert_error(await bob.client.request("GET", reads_path(chat, sent.seq)), 403, "forbidden")


async def test_bad_read_by_questions_get_their_contract_errors(
    alice: Account, bob: Account, carol: Account
) -> None:
    chat = private(alice, bob)
    sent = await alice.client.send(chat, "hi")
    group = await bob.client.create_group("Not yours", [carol.id])
    answers = [
        (await alice.client.request("GET", reads_path(chat, 99)), 404, "not_found"),
        (await alice.client.request("GET", reads_path(chat, 0)), 404, "not_found"),
        (await alice.client.request("GET", reads_path(chat, "x")), 404, "not_found"),
        (await carol.client.request("GET", reads_path(chat, sent.seq)), 403, "not_member"),
        (await alice.client.request("GET", reads_path(f"g:{group.id}", 1)), 403, "not_member"),
        (await alice.client.request("GET", reads_path("g:999999", 1)), 404, "not_found"),
        (await alice.client.request("GET", reads_path("p:2-1", 1)), 404, "not_found"),
    ]
    for answer, status, code in answers:
        assert_error(answer, status, code)


async def test_read_by_is_exact_against_every_members_own_position(
    alice: Account, make_account: AccountFactory
) -> None:
    rng = random.Random(6)
    others = [await make_account(f"member{i}", f"Member {i}") for i in range(11)]
    group = await alice.client.create_group("Big", [m.id for m in others])
    team = f"g:{group.id}"
    sent = [await alice.client.send(team, f"n{i}") for i in range(8)]
    for member in others:
        await member.client.mark_read(team, rng.randint(0, sent[-1].seq))
    for message in sent:
        got = await alice.client.read_by(team, message.seq)
        positions = {m.id: (await m.client.conversation(team)).read_seq for m in others}
        assert got.read_ids == sorted(u for u, at in positions.items() if at >= message.seq)
        assert got.unread_ids == sorted(u for u, at in positions.items() if at < message.seq)
        assert got.read + got.unread == len(others)
