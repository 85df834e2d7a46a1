"""Groups: create, look up, add and remove members, and who may do which.

The membership rules (the owner adds and removes others, anyone may leave,
the size limit) are here; the store runs them under the group's lock.

A member added (at creation or later) gets a ``conversation`` event with
its new chat-list entry; a member removed gets ``conversation_removed``.
The store applies each change under the conversation's lock, so a send
racing with it either reaches the member or does not, never in between.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.chatlist import chat_entry
from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError, bad_request, not_found, not_member
from tidings.events import ConversationAdded, ConversationRemoved, Publisher
from tidings.ids import GroupId, UserId, group_conversation
from tidings.models import Group, iso_ms
from tidings.service.text import without_nul
from tidings.state import ChatListState
from tidings.store import GroupChange, Roster, Store

MAX_GROUP_NAME = 100


class Groups:
    def __init__(
        self,
        store: Store,
        broker: Publisher,
        settings: Settings,
        state: ChatListState | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._broker = broker
        self._settings = settings

    async def create(self, owner: UserId, name: str, member_ids: Sequence[UserId]) -> Group:
        title = _group_name(name)
        self._check_size(len(set(member_ids) | {owner}))
        return await self._joined(await self._store.create_group(owner, title, member_ids))

    async def get(self, user: UserId, gid: GroupId) -> Group:
        group = await self._store.group(gid)
        if group is None:
            raise not_found(f"no group {gid}")
        if user not in group.member_ids:
            raise not_member(group_conversation(gid))
        return group

    async def add(self, actor: UserId | None, gid: GroupId, user_ids: Sequence[UserId]) -> Group:
        def rule(roster: Roster, joining: Sequence[UserId]) -> None:
            if actor is not None:
                if actor not in roster.ranks:
                    raise not_member(roster.conversation)
                if actor != roster.owner:
                    raise TidingsError(ErrorCode.FORBIDDEN, "only the group's owner adds members")
            self._check_size(len(roster.ranks) + len(joining))

        return await self._joined(await self._store.add_members(gid, user_ids, rule))

    async def remove(self, actor: UserId | None, gid: GroupId, user: UserId) -> None:
        def rule(roster: Roster, _leaving: Sequence[UserId]) -> None:
            if actor is not None and actor not in roster.ranks:
                raise not_member(roster.conversation)
            if user not in roster.ranks:
                raise not_found(f"user {user} is not a member of {roster.conversation}")
            if actor is not None and actor != user and actor != roster.owner:
                raise TidingsError(
                    ErrorCode.FORBIDDEN, "only the group's owner removes other members"
                )

        change = await self._store.remove_member(gid, user, rule)
        await self._changed(change)
        for left in change.left:
            self._broker.publish(ConversationRemoved(left, group_conversation(gid)))

    def _check_size(self, members: int) -> None:
        limit = self._settings.max_group_members
        if members > limit:
            raise bad_request(f"a group has at most {limit} members")

    async def _joined(self, change: GroupChange) -> Group:
        """After members joined: the chat lists first, then the events."""
        await self._changed(change)
        self._announce(change)
        assert change.group is not None
        return change.group

    async def _changed(self, change: GroupChange) -> None:
        """Before the events: who gets one must find the change in its chat list."""
        if self._state is not None:
            await self._state.members_changed([*change.joined, *change.left])

    def _announce(self, change: GroupChange) -> None:
        """A ``conversation`` event for each joiner: an entry with nothing unread yet."""
        group = change.group
        if group is None or not change.joined:
            return
        entry = chat_entry(
            conversation=group_conversation(GroupId(group.id)),
            title=group.name,
            group_id=group.id,
            peer_id=None,
            last_seq=change.joined_seq,
            read_seq=change.joined_seq,
            last_message=None,
            updated_at=iso_ms(change.joined_at),
        )
        for user in change.joined:
            self._broker.publish(ConversationAdded(user, entry))


def _group_name(name: str) -> str:
    if not 1 <= len(name.strip()) <= MAX_GROUP_NAME:
        raise bad_request(f"name: 1 to {MAX_GROUP_NAME} characters")
    return without_nul(name.strip(), "name")
