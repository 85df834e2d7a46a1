"""Typing (PROTOCOL-v2 §5): "Alice is typing…" relayed to the other members'
connections on every node, at most once per user and conversation every
2 seconds, never stored.

A typing frame must cost next to nothing, since a busy group types far
more than it sends: the rate check is a dict look-up, and a group's
members come from a per-node cache, not a query per frame. And a relay is
written to every other member's sockets, so in a big group where many
type at once, at most ``MAX_TYPISTS`` different typists are relayed per
conversation and 2-second window on a node: more names than that say
nothing a person reads ("several people are typing"), and 1,000 typists
in a group of 500 would otherwise cost 250,000 frames a second. The cache is
dropped for a group whenever its membership changes (the ``conversation``
and ``conversation_removed`` events every node hears), with a version per
group so a read racing a change is never installed, and entries expire
after a minute whatever happens.
"""

from __future__ import annotations

import time

from tidings.errors import not_found, not_member
from tidings.events import (
    ConversationAdded,
    ConversationRemoved,
    Event,
    Publisher,
    TypingStarted,
)
from tidings.ids import ConversationId, GroupRef, PrivateRef, UserId, parse_conversation
from tidings.store import Store

TYPING_INTERVAL = 2.0  # seconds between two relays of one user in one conversation
MAX_TYPISTS = 10  # relayed per conversation and window on one node
MEMBERS_TTL = 60.0
MAX_CACHED = 10_000


class Typing:
    def __init__(self, store: Store, broker: Publisher) -> None:
        self._store = store
        self._broker = broker
        self._relayed: dict[tuple[UserId, str], float] = {}
        self._members: dict[str, tuple[float, frozenset[UserId]]] = {}
        self._versions: dict[str, int] = {}
        # conversation -> (start of its current window, typists relayed in it)
        self._windows: dict[str, tuple[float, int]] = {}

    async def typing(self, user: UserId, conversation: str) -> None:
        """Relay that ``user`` types in ``conversation`` (or drop it: too soon)."""
        ref = parse_conversation(conversation)
        if ref is None:
            raise not_found(f"no conversation {conversation!r}")
        if isinstance(ref, PrivateRef):
            if not ref.has(user):
                raise not_member(ref.id)
            recipients: tuple[UserId, ...] = (ref.peer_of(user),)
        else:
            members = await self._members_of(ref)
            if user not in members:
                if await self._store.group(ref.group) is None:
                    raise not_found(f"no group {ref.group}")
                raise not_member(ref.id)
            recipients = tuple(m for m in members if m != user)
        now = time.monotonic()
        key = (user, ref.id)
        if now - self._relayed.get(key, -TYPING_INTERVAL) < TYPING_INTERVAL:
            return
        started, relayed = self._windows.get(ref.id, (now, 0))
        if now - started >= TYPING_INTERVAL:
            started, relayed = now, 0
        if relayed >= MAX_TYPISTS:
            return  # enough names for this window; this typist may be heard in the next
        if len(self._relayed) > MAX_CACHED:
            self._relayed = {k: t for k, t in self._relayed.items() if now - t < TYPING_INTERVAL}
            self._windows = {c: w for c, w in self._windows.items() if now - w[0] < TYPING_INTERVAL}
        self._relayed[key] = now
        self._windows[ref.id] = (started, relayed + 1)
        if recipients:
            self._broker.publish(TypingStarted(ConversationId(ref.id), user, recipients))

    def hear(self, event: Event) -> None:
        """The broker's subscriber: a group whose members changed leaves the cache."""
        if isinstance(event, ConversationAdded) and event.conversation.group_id is not None:
            self._forget(event.conversation.id)
        elif isinstance(event, ConversationRemoved):
            self._forget(event.conversation)

    def _forget(self, conversation: str) -> None:
        self._members.pop(conversation, None)
        self._versions[conversation] = self._versions.get(conversation, 0) + 1

    async def _members_of(self, ref: GroupRef) -> frozenset[UserId]:
        now = time.monotonic()
        cached = self._members.get(ref.id)
        if cached is not None and now - cached[0] < MEMBERS_TTL:
            return cached[1]
        version = self._versions.get(ref.id, 0)
        members = frozenset((await self._store.joined_seqs(ConversationId(ref.id))).keys())
        if self._versions.get(ref.id, 0) == version:  # no change while we read
            if len(self._members) > MAX_CACHED:
                self._members.clear()
                self._versions.clear()
            self._members[ref.id] = (now, members)
        return members
