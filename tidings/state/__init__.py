"""The chat-list state port: a cache of every user's chat list beside the store.

The store (SQL) is the truth and can always answer the chat list itself
(one indexed query per user); that is what one node on the embedded
default does, and what every stack falls back to. An adapter here keeps
the list's moving parts where reading them is cheaper, and must keep
these promises:

- ``committed`` runs after each commit and before its acks, so a client
  that got an ack (or a read's answer) sees it in its next chat list.
- ``members_changed`` runs after a membership change commits, before its
  events go out.
- ``chat_list`` answers exactly what the store would (same entries, same
  positions, newest first), or None when it cannot vouch for its copy:
  the caller then asks the store. Never a stale count.
- No method raises for a failure of the cache's own backend: the write is
  committed and stays acked; the cache stops vouching until it is rebuilt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol

from tidings.chatlist import EntryState
from tidings.ids import ConversationId, UserId
from tidings.models import ChatList
from tidings.store import QueuedOutcome, QueuedRequest


class ChatListState(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def committed(
        self, requests: Sequence[QueuedRequest], outcomes: Sequence[QueuedOutcome]
    ) -> None:
        """Take in one committed batch: new last messages and read positions;
        for a group change, its notice and whose lists to rebuild."""

    async def members_changed(self, users: Sequence[UserId]) -> None:
        """These users joined or left conversations: their lists are rebuilt."""

    async def chat_list(
        self,
        user: UserId,
        limit: int,
        states: Awaitable[Mapping[ConversationId, EntryState]],
        *,
        with_hidden: bool = False,
    ) -> ChatList | None:
        """The user's first ``limit`` entries in the list's order and the
        total, or None: ask the store. ``states``: the store's
        ``entry_states`` on its way while the copy is read (the copy keeps
        positions only, not what each user keeps on an entry); awaited when
        the order needs them."""
