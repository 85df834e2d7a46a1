"""PROTOCOL-v2 §5's typing from outside: relayed to the other members'
connections (on every node), at most once per user and conversation every
2 s, never stored, refused to outsiders."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PASSWORD, Account, AccountFactory, ServerFactory, no_event, private
from tidings.client import Client


async def group(owner: Account, *members: Account) -> str:
    return f"g:{(await owner.client.create_group('Team', [m.id for m in members])).id}"


def typing_of(conversation: str, user: int) -> dict[str, object]:
    return {"type": "typing", "conversation": conversation, "user": user}


async def test_typing_reaches_the_other_members_once_per_two_seconds(
    alice: Account, bob: Account, carol: Account
) -> None:
    team = await group(alice, bob, carol)
    before = await alice.client.chat_list()
    async with (
        await alice.client.connect() as typer,
        await alice.client.connect() as own_other_device,
        await bob.client.connect() as bob_socket,
        await carol.client.connect() as carol_socket,
    ):
        await typer.typing(team)
        for socket in (bob_socket, carol_socket):
            assert await socket.next_event() == typing_of(team, alice.id)
        await no_event(typer)  # no ack, no echo
        await no_event(own_other_device)
        # A second frame within 2 s is not relayed; one after it is.
        await typer.typing(team)
        await no_event(bob_socket, within=0.5)
        await asyncio.sleep(2.0)
        await typer.typing(team)
        assert await bob_socket.next_event() == typing_of(team, alice.id)
        assert await carol_socket.next_event() == typing_of(team, alice.id)
        # Another member's typing is counted on its own.
        await bob_socket.typing(team)
        assert await typer.next_event() == typing_of(team, bob.id)
    # Nothing stored: no message, no change to any list.
    assert (await alice.client.chat_list()) == before
    stored = await alice.client.messages(team, after=0)
    assert [(m.seq, m.kind) for m in stored] == [(1, "system")]  # the created notice only


async def test_typing_in_a_private_chat_reaches_the_peer(alice: Account, bob: Account) -> None:
    chat = private(alice, bob)  # not started yet: typing is allowed
    async with await alice.client.connect() as typer, await bob.client.connect() as peer:
        await typer.typing(chat)
        assert await peer.next_event() == typing_of(chat, alice.id)
    assert await bob.client.conversations() == []


async def test_typing_is_refused_to_outsiders(alice: Account, bob: Account, carol: Account) -> None:
    team = await group(bob, carol)
    async with await alice.client.connect() as outsider, await bob.client.connect() as member:
        for conversation, code in (
            (team, "not_member"),
            (private(bob, carol), "not_member"),
            ("g:999999", "not_found"),
            ("p:2-1", "not_found"),
        ):
            answer = await outsider.request({"type": "typing", "conversation": conversation})
            assert answer["type"] == "error" and answer["code"] == code, answer
        answer = await outsider.request({"type": "typing"})
        assert answer["type"] == "error" and answer["code"] == "bad_request"
        await no_event(member)


async def test_typing_follows_membership_changes(
    alice: Account, bob: Account, carol: Account, make_account: AccountFactory
) -> None:
    dave = await make_account("dave", "Dave")
    team = await group(alice, bob, carol)
    group_id = int(team[2:])
    async with (
        await alice.client.connect() as typer,
        await carol.client.connect() as carol_socket,
    ):
        await typer.typing(team)  # the node caches the members now
        assert await carol_socket.next_event() == typing_of(team, alice.id)
        await alice.client.remove_member(group_id, carol.id)
        await alice.client.add_members(group_id, [dave.id])
        assert (await carol_socket.next_event())["type"] == "conversation_removed"
        async with await dave.client.connect() as dave_socket:
            await asyncio.sleep(2.0)
            await typer.typing(team)
            assert await dave_socket.next_event() == typing_of(team, alice.id)
            await no_event(carol_socket)
            # The removed member may no longer type there.
            answer = await carol_socket.request({"type": "typing", "conversation": team})
            assert answer["type"] == "error" and answer["code"] == "not_member"


async def test_typing_crosses_nodes(make_server: ServerFactory, stack: str) -> None:
    if "redis" not in stack:
        pytest.skip("two nodes share events through Redis")
    one, two = await make_server(), await make_server()
    near, far = Client(one.url), Client(two.url)
    try:
        alice = await near.signup("alice", PASSWORD, "Alice")
        bob = await far.signup("bob", PASSWORD, "Bob")
        await near.login("alice", PASSWORD)
        await far.login("bob", PASSWORD)
        team = f"g:{(await near.create_group('Team', [bob.id])).id}"
        async with await near.connect() as typer, await far.connect() as listener:
            await asyncio.sleep(0.1)
            await typer.typing(team)
            assert await listener.next_event() == typing_of(team, alice.id)
    finally:
        await near.close()
        await far.close()


async def test_a_big_group_relays_at_most_ten_typists_per_window(
    alice: Account, make_account: AccountFactory
) -> None:
    """More names than ten say nothing a person reads; each would be written to
    every member's sockets. The one left out is heard in the next window."""
    typists = [await make_account(f"typist{i}", f"Typist {i}") for i in range(11)]
    team = await group(alice, *typists)
    sockets = [await t.client.connect() for t in typists]
    try:
        async with await alice.client.connect() as listener:
            for socket in sockets:
                await socket.typing(team)
            heard = [(await listener.next_event())["user"] for _ in range(10)]
            await no_event(listener, within=0.5)
            assert len(set(heard)) == 10
            (left_out,) = {t.id for t in typists} - set(heard)
            await asyncio.sleep(2.0)
            await sockets[[t.id for t in typists].index(left_out)].typing(team)
            assert await listener.next_event() == typing_of(team, left_out)
    finally:
        for socket in sockets:
            await socket.close()
