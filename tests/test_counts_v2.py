"""Every count of the chat list, recomputed from full history after a random mix
of sends, replies, mentions, @all, recalls, edits and reads, from several
devices on two nodes at once (PROTOCOL-v2 §1's rules, checked from outside).

On the Redis stack the nodes answer from the Redis chat list, and a third
server on the same database with the Redis copy turned off must answer the
very same entries: the two lists are two ways to one set of numbers.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field

from tests.conftest import PASSWORD, RunningServer, ServerFactory
from tidings.client import ApiError, Client, Conversation, Message

COUNTABLE = {"text", "image", "file", "voice"}
STEPS = int(os.environ.get("TIDINGS_COUNT_STEPS", "160"))


@dataclass
class Person:
    id: int
    devices: list[Client]
    # conversation -> seqs of this person's own sends: what an edit mostly aims at
    # (a random seq is often a notice or another's message, both refused).
    sent: dict[str, list[int]] = field(default_factory=dict)

    def any_device(self, rng: random.Random) -> Client:
        return rng.choice(self.devices)


def expected_entry(user: int, messages: list[Message], read_seq: int) -> dict[str, object]:
    """What section 1 says the entry shows, from the user's full history."""
    unread = [
        m
        for m in messages
        if m.kind in COUNTABLE and m.seq > read_seq and m.sender != user and not m.recalled
    ]
    shown = [m for m in messages if m.kind != "edit"]
    last = shown[-1] if shown else None
    return {
        "unread": len(unread),
        "mentioned": sum(1 for m in unread if m.mention_all or user in m.mentions),
        "last_seq": messages[-1].seq if messages else 0,
        "last_message": last,
    }


async def full_history(client: Client, conversation: str) -> list[Message]:
    found: list[Message] = []
    while True:
        after = found[-1].seq if found else 0
        page = await client.messages(conversation, after=after, limit=200)
        if not page:
            return found
        found.extend(page)


async def act(rng: random.Random, people: list[Person], chats: dict[str, list[int]]) -> None:
    """One random action; a refusal the contract allows (an expired or foreign
    recall, a notice as target, ...) is a fine outcome, a server error is not."""
    conversation = rng.choice(list(chats))
    members = chats[conversation]
    chosen = rng.choice(members)
    person = next(p for p in people if p.id == chosen)
    device = person.any_device(rng)
    last = (await device.conversation(conversation)).last_seq
    roll = rng.random()
    try:
        if roll < 0.45 or last == 0:
            others = [m for m in members if m != person.id]
            group = conversation.startswith("g:")
            mentions = rng.sample(others, rng.randint(0, len(others))) if group else []
            sent = await device.send(
                conversation,
                f"m{rng.randrange(10**6)}",
                reply_to=rng.randint(1, last) if last and rng.random() < 0.2 else None,
                mentions=mentions if rng.random() < 0.4 else [],
                mention_all=group and person.id == members[0] and rng.random() < 0.15,
            )
            person.sent.setdefault(conversation, []).append(sent.seq)
        elif roll < 0.6:
            await device.recall(conversation, rng.randint(1, last))
        elif roll < 0.7:
            own = person.sent.get(conversation)
            target = rng.choice(own) if own and rng.random() < 0.7 else rng.randint(1, last)
            await device.edit(conversation, target, f"e{rng.randrange(10**6)}")
        else:
            await device.mark_read(conversation, rng.randint(0, last))
    except ApiError as refused:
        assert refused.status is not None and refused.status < 500, refused
        assert refused.code in {"forbidden", "not_found", "bad_request", "recall_expired"}, refused


async def check_every_count(
    people: list[Person], chats: dict[str, list[int]], oracle: RunningServer | None
) -> None:
    for person in people:
        device = person.devices[0]
        whole = await device.chat_list()
        listed = {entry.id: entry for entry in whole.conversations}
        # Nothing muted or marked here: the total is the sum of the entries' unread.
        assert whole.total_unread == sum(e.unread for e in whole.conversations), person.id
        for conversation, members in chats.items():
            if person.id not in members or conversation not in listed:
                continue
            entry: Conversation = listed[conversation]
            messages = await full_history(device, conversation)
            want = expected_entry(person.id, messages, entry.read_seq)
            got = {
                "unread": entry.unread,
                "mentioned": entry.mentioned,
                "last_seq": entry.last_seq,
                "last_message": entry.last_message,
            }
            assert got == want, (person.id, conversation)
            if entry.last_message is not None:
                assert entry.updated_at == entry.last_message.sent_at
            for device_ in person.devices[1:]:  # the other node agrees
                assert await device_.conversation(conversation) == entry
        if oracle is not None:
            async with Client(oracle.url, token=device.token) as sql:
                assert await sql.chat_list() == whole, person.id


async def test_every_count_is_a_function_of_history_after_a_random_mix(
    make_server: ServerFactory, stack: str
) -> None:
    seed = int(os.environ.get("TIDINGS_TEST_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"seed {seed} (TIDINGS_TEST_SEED={seed} repeats its choices)")  # noqa: T201
    nodes = [await make_server(recall_seconds=3600), await make_server(recall_seconds=3600)]
    oracle = await make_server(redis_chat_list=False) if "redis" in stack else None
    people: list[Person] = []
    try:
        for index in range(4):
            name = f"user{index}"
            first = Client(nodes[0].url)
            user = await first.signup(name, PASSWORD)
            await first.login(name, PASSWORD)
            second = Client(nodes[1].url)  # the same person's second device, on the other node
            await second.login(name, PASSWORD)
            people.append(Person(user.id, [first, second]))
        ids = [p.id for p in people]
        owner = people[0].devices[0]
        team = f"g:{(await owner.create_group('Team', ids[1:])).id}"
        pair = f"g:{(await owner.create_group('Pair', ids[1:2])).id}"
        low, high = sorted(ids[1:3])
        chats = {team: ids, pair: ids[:2], f"p:{low}-{high}": [low, high]}
        for round_ in range(0, STEPS, 8):
            await asyncio.gather(*(act(rng, people, chats) for _ in range(8)))
            if round_ % 40 == 0:
                await check_every_count(people, chats, oracle)
        await check_every_count(people, chats, oracle)
        kinds = {m.kind for c in chats for m in await full_history(people[1].devices[0], c)}
        assert {"text", "recall", "edit"} <= kinds  # the mix did mix
    finally:
        for person in people:
            for device in person.devices:
                await device.close()
