"""The soak's population: users signed up and logged in over HTTP, groups, private pairs.

Everything is created through the public API, as real clients would, so
the soak needs nothing but URLs. Groups are created before any message,
so every member may see a group's whole history (join at seq 0); that
keeps the expected set of every client exact.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass, field

import aiohttp

from tidings.client import Client, group_conversation, private_conversation

PASSWORD = "soak-password"
#: Sign-ups in flight at once: argon2 runs in the server's thread pool.
SETUP_CONCURRENCY = 8


@dataclass
class Member:
    index: int
    id: int
    username: str
    token: str


@dataclass
class World:
    members: list[Member]
    groups: dict[str, list[int]]  # conversation -> member user ids
    pairs: list[tuple[int, int]]
    conversations_of: dict[int, list[str]] = field(default_factory=dict)
    #: Who may read each conversation (for fetching its full history at the end).
    reader_of: dict[str, int] = field(default_factory=dict)

    def token_of(self, user_id: int) -> str:
        return next(m.token for m in self.members if m.id == user_id)


async def build_world(
    http: aiohttp.ClientSession, url: str, clients: int, rng: random.Random
) -> World:
    """Sign up ``clients`` users, create about one group per four users and two
    private peers per user, and index who belongs where."""
    tag = secrets.token_hex(3)
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def sign_up(index: int) -> Member:
        name = f"soak{tag}_{index}"
        async with gate:
            client = Client(url, session=http)
            user = await client.signup(name, PASSWORD, f"Soak {index}")
            session = await client.login(name, PASSWORD)
        return Member(index, user.id, name, session.token)

    members = list(await asyncio.gather(*(sign_up(i) for i in range(clients))))
    ids = [m.id for m in members]
    groups: dict[str, list[int]] = {}
    for n in range(max(1, clients // 4)):
        size = rng.randint(min(2, clients), min(clients, 8))
        chosen = rng.sample(members, size)
        owner = Client(url, chosen[0].token, session=http)
        group = await owner.create_group(f"soak {tag} {n}", [m.id for m in chosen[1:]])
        groups[group_conversation(group.id)] = sorted(group.member_ids)
    pairs: set[tuple[int, int]] = set()
    if clients > 1:
        for member in members:
            for peer in rng.sample([i for i in ids if i != member.id], min(2, clients - 1)):
                low, high = sorted((member.id, peer))
                pairs.add((low, high))
    world = World(members, groups, sorted(pairs))
    for member in members:
        mine = [c for c, users in groups.items() if member.id in users]
        mine += [private_conversation(a, b) for a, b in world.pairs if member.id in (a, b)]
        world.conversations_of[member.id] = mine
    for conversation, users in groups.items():
        world.reader_of[conversation] = users[0]
    for a, b in world.pairs:
        world.reader_of[private_conversation(a, b)] = a
    return world
