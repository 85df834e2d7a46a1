"""The broker's routing (broker/route.py): which nodes get which events of a batch."""

from __future__ import annotations

import secrets
import typing
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis import asyncio as aioredis

from tests.backends import redis_url
from tidings.broker.route import (
    ROUTE,
    audience,
    batch_users,
    route_arguments,
    route_keys,
    split,
)
from tidings.events import (
    ConversationAdded,
    ConversationRemoved,
    EntryChanged,
    Event,
    MessageCreated,
    Pushed,
    ReadMoved,
    SessionRevoked,
    TypingStarted,
)
from tidings.ids import ConversationId, UserId
from tidings.models import Conversation, Message
from tidings.nodes import (
    ROUTED_FIELD,
    presence_key,
    registry_key,
    routes_key,
    routing_since_key,
)

U1, U2, U3, U4 = (UserId(n) for n in (1, 2, 3, 4))


def message(seq: int, *recipients: UserId) -> MessageCreated:
    body = Message(f"p:1-2#{seq}", "p:1-2", seq, 1, "hi", None, "2026-12-04T00:00:00.000Z", False)
    return MessageCreated(body, recipients, None)


def entry(group_id: int | None) -> Conversation:
    return msgspec.convert(
        {
            "id": "g:7" if group_id else "p:1-2",
            "type": "group" if group_id else "private",
            "peer_id": None if group_id else 2,
            "group_id": group_id,
            "title": "x",
            "unread": 0,
            "last_seq": 0,
            "read_seq": 0,
            "last_message": None,
            "updated_at": "2026-12-04T00:00:00.000Z",
        },
        Conversation,
    )


def test_every_event_type_has_a_routing_rule() -> None:
    """A new event type without a rule fails here, not silently in production."""
    samples: dict[type, Event] = {
        MessageCreated: message(1, U1, U2),
        ReadMoved: ReadMoved(ConversationId("p:1-2"), U1, 3, (U1, U2), None),
        ConversationAdded: ConversationAdded(U3, entry(None)),
        EntryChanged: EntryChanged(U1, entry(None), None),
        TypingStarted: TypingStarted(ConversationId("p:1-2"), U1, (U2,)),
        ConversationRemoved: ConversationRemoved(U1, ConversationId("g:7")),
        SessionRevoked: SessionRevoked("hash"),
        Pushed: Pushed((U4,), b"{}"),
    }
    assert set(samples) == set(typing.get_args(Event))
    assert audience(samples[MessageCreated]) == (U1, U2)
    assert audience(samples[ConversationAdded]) == (U3,)
    # Every node's caches listen to these: a revoked token, a group's members.
    assert audience(samples[SessionRevoked]) is None
    assert audience(samples[ConversationRemoved]) is None
    assert audience(ConversationAdded(U3, entry(7))) is None
    assert audience(Pushed(None, b"{}")) is None


def test_a_batch_is_split_by_node_in_publish_order_and_everyone_events_go_to_all() -> None:
    events: list[Event] = [
        message(1, U1, U2),
        message(2, U3),
        SessionRevoked("h"),
        message(3, U4),
    ]
    users = batch_users(events)
    assert users == [U1, U2, U3, U4]
    # Node "b" holds U2, node "c" holds U3 and U2, node "d" holds nobody here.
    answer: list[object] = [1, b"b", [0, 1, 0, 0], b"c", [0, 1, 1, 0], b"d", [0, 0, 0, 0]]
    assert split(events, users, answer) == {"b": [0, 2], "c": [0, 1, 2], "d": [2]}
    assert split(events, users, [0]) is None  # the shared channel, for all of it
    assert split(events, users, [1]) == {}  # no other node


@pytest.fixture
async def redis() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    async with redis_url() as url:
        client = aioredis.Redis.from_url(url)
        prefix = f"tidings_t_{secrets.token_hex(6)}:"
        yield client, prefix
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_the_script_finds_each_live_nodes_users_and_falls_back_when_unsure(
    redis: tuple[aioredis.Redis, str],
) -> None:
    client, prefix = redis
    route = client.register_script(ROUTE)
    users = [UserId(n) for n in range(1, 10_001)]  # more than Lua's unpack() takes at once

    async def ask(*asked: int, warm_up: int = 10) -> list[typing.Any]:
        arguments = route_arguments(prefix, "me", warm_up, [UserId(u) for u in asked])
        return typing.cast(list[typing.Any], await route(keys=route_keys(prefix), args=arguments))

    # A new table: everything on the shared channel while every node writes its hash.
    assert await ask(1) == [0]
    assert await ask(1) == [0]
    assert await ask(1, warm_up=0) == [1]  # no other node

    await client.hset(registry_key(prefix), mapping={"me": b"r", "b": b"r", "gone": b"r"})
    await client.hset(presence_key(prefix, "b"), mapping={ROUTED_FIELD: 1, "2": 1, "9999": 2})
    await client.sadd(routes_key(prefix, "b"), 2, 9999)
    answer = await ask(*users, warm_up=0)
    assert answer[:2] == [1, b"b"]
    found = answer[2]
    assert len(found) == len(users) and sum(found) == 2
    assert found[1] == 1 and found[9998] == 1
    assert len(answer) == 3  # "gone" has no hash (its lease ran out): not a target
    assert (await ask(warm_up=0))[:3] == [1, b"b", []]  # a batch for nobody

    # A node of an earlier version (no marker) holding a recipient: all goes shared.
    await client.hset(presence_key(prefix, "old"), "5", 1)
    await client.hset(registry_key(prefix), "old", b"r")
    assert await ask(5, warm_up=0) == [0]
    assert (await ask(2, warm_up=0))[:2] == [1, b"b"]  # it holds none of these

    # Redis lost the table (FLUSHALL): warm up again.
    await client.delete(routing_since_key(prefix))
    assert await ask(2) == [0]
