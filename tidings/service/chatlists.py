"""The chat list as its user keeps it (PROTOCOL-v2 §5): the list, its total,
and the per-user state of each entry (pinned, muted, hidden, marked unread,
a draft), the same on every device and node.

The state lives in SQL beside the member's read position; a change answers
with the entry and tells the user's other connections with a
``conversation`` event. A send clears its sender's draft and a read clears a
mark in the write batch itself (``store/batch.py``), so those need no event
of their own: the other devices get the message or the read.
"""

from __future__ import annotations

import asyncio

from tidings.chatlist import EntryChange
from tidings.errors import ErrorCode, TidingsError, bad_request, not_found, not_member
from tidings.events import EntryChanged, Publisher
from tidings.ids import ConversationRef, PrivateRef, UserId, parse_conversation
from tidings.models import ChatList, Conversation
from tidings.service.text import without_nul
from tidings.state import ChatListState
from tidings.store import Store

DEFAULT_CHAT_LIST = 100
MAX_CHAT_LIST = 1000
MAX_DRAFT_CHARS = 4000


class ChatLists:
    def __init__(self, store: Store, broker: Publisher, state: ChatListState | None = None) -> None:
        self._store = store
        self._broker = broker
        self._state = state

    async def chat_list(
        self, user: UserId, limit: int | None = None, *, with_hidden: bool = False
    ) -> ChatList:
        """The user's first ``limit`` entries in the list's order, and ``total_unread``."""
        if limit is not None and limit < 1:
            raise bad_request("limit: a positive integer")
        size = min(limit or DEFAULT_CHAT_LIST, MAX_CHAT_LIST)
        if self._state is not None:
            # The Redis copy keeps positions, not what each user keeps on an
            # entry: those few rows come from SQL while the copy's index is read.
            states = asyncio.ensure_future(self._store.entry_states(user))
            try:
                cached = await self._state.chat_list(user, size, states, with_hidden=with_hidden)
                if cached is not None:
                    return cached
            finally:
                if not states.done():
                    states.cancel()
                elif not states.cancelled():
                    states.exception()  # retrieved: the fallback below reports its own
        return await self._store.chat_list(user, size, with_hidden=with_hidden)

    async def update_entry(
        self, user: UserId, conversation: str, change: EntryChange, *, origin: int | None = None
    ) -> Conversation:
        """Apply ``change`` to the user's entry; the entry as it is now.

        The user's other connections (``origin`` excluded) get it as a
        ``conversation`` event. A private chat has an entry from its first
        message: before that there is nothing to keep state on (404).
        """
        ref = _conversation(conversation)
        if change.set_draft and change.draft:
            if len(change.draft) > MAX_DRAFT_CHARS:
                raise TidingsError(
                    ErrorCode.TOO_LARGE, f"draft: at most {MAX_DRAFT_CHARS} characters"
                )
            without_nul(change.draft, "draft")
        if isinstance(ref, PrivateRef) and not ref.has(user):
            raise not_member(ref.id)
        if not await self._store.update_entry(user, ref.id, change):
            raise await self._missing(user, ref)
        entry = await self._store.chat_entry(user, ref.id)
        if entry is None:  # left the group between the two statements
            raise await self._missing(user, ref)
        if not change.empty():
            self._broker.publish(EntryChanged(user, entry, origin))
        return entry

    async def _missing(self, user: UserId, ref: ConversationRef) -> TidingsError:
        """Why the user has no entry for ``ref``."""
        if isinstance(ref, PrivateRef):
            if await self._store.user(ref.peer_of(user)) is None:
                return not_found(f"no user {ref.peer_of(user)}")
            return not_found(f"{ref.id} has no message yet: its entry starts with the first one")
        if await self._store.group(ref.group) is None:
            return not_found(f"no group {ref.group}")
        return not_member(ref.id)


def _conversation(conversation: str) -> ConversationRef:
    ref = parse_conversation(conversation)
    if ref is None:
        raise not_found(
            f"no conversation {conversation!r}: use p:{{a}}-{{b}} with a < b, or g:{{group}}"
        )
    return ref
