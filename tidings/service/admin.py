"""The integration API's rules: what a business backend may do with the service token.

The backend keeps its own users and logic and uses tidings the way the
original design used GatewayWorker: ``sendToUid`` is ``push``,
``isUidOnline`` is ``presence``, ``getClientIdCountByGroup`` is
``group_online``. It acts as any user (``send_as``) and owns every group,
so the owner checks of the user API do not apply; every other rule does
(a sender must be a member, bodies have their limits, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tidings.config import Settings
from tidings.errors import bad_request, not_found
from tidings.events import Publisher, Pushed, SessionRevoked
from tidings.ids import GroupId, UserId
from tidings.models import Group, GroupOnline, NodeStats, User
from tidings.presence import Presence
from tidings.service.accounts import Accounts
from tidings.service.conversations import PLAIN, Conversations, Extras
from tidings.service.groups import Groups
from tidings.store import Store, StoredMessage

MAX_USER_PAGE = 1000
MAX_PUSH_BYTES = 64 * 1024

_encode = msgspec.json.Encoder().encode


class Admin:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        conversations: Conversations,
        groups: Groups,
        presence: Presence,
        publisher: Publisher,
        settings: Settings,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._conversations = conversations
        self._groups = groups
        self._presence = presence
        self._publisher = publisher
        self._settings = settings

    # -- users --------------------------------------------------------------

    async def create_user(self, username: str, display_name: str | None) -> User:
        return await self._accounts.create_user(username, display_name)

    async def users(self, after_id: int, limit: int) -> list[User]:
        if limit < 1:
            raise bad_request("limit: a positive integer")
        return await self._store.list_users(max(0, after_id), min(limit, MAX_USER_PAGE))

    async def user(self, user_id: UserId) -> User:
        return await self._accounts.user(user_id)

    async def set_display_name(self, user_id: UserId, display_name: str) -> User:
        """As the user's own rename: its online peers hear of it."""
        return await self._accounts.set_display_name(user_id, display_name)

    async def mint_token(self, user_id: UserId) -> str:
        await self._accounts.user(user_id)
        return await self._accounts.issue_token(user_id)

    async def revoke_tokens(self, user_id: UserId) -> None:
        """Every token of the user stops working; its sockets close with 4003."""
        await self._accounts.user(user_id)
        for token_hash in await self._store.delete_sessions_of(user_id):
            self._publisher.publish(SessionRevoked(token_hash))

    # -- pushes and presence --------------------------------------------------

    async def push(
        self,
        event: object,
        *,
        user_ids: Sequence[UserId] | None = None,
        group: GroupId | None = None,
        everyone: bool = False,
    ) -> int:
        """Send ``event`` to every open connection of the targets; how many there were."""
        if sum((user_ids is not None, group is not None, everyone)) != 1:
            raise bad_request('give exactly one of "user_ids", "group_id" or "all": true')
        payload = _encode(event)
        if len(payload) > MAX_PUSH_BYTES:
            raise bad_request(f"event: at most {MAX_PUSH_BYTES} bytes of JSON")
        targets: tuple[UserId, ...] | None
        if everyone:
            targets = None
            count = sum(node.connections for node in await self._presence.nodes())
        else:
            if group is not None:
                found = await self._store.group(group)
                if found is None:
                    raise not_found(f"no group {group}")
                user_ids = [UserId(u) for u in found.member_ids]
            assert user_ids is not None
            targets = tuple(dict.fromkeys(user_ids))
            count = sum((await self._presence.connections(targets)).values())
        self._publisher.publish(Pushed(targets, payload))
        return count

    async def presence(self, user_ids: Sequence[UserId]) -> dict[UserId, bool]:
        counts = await self._presence.connections(list(dict.fromkeys(user_ids)))
        return {user: count > 0 for user, count in counts.items()}

    async def group_online(self, gid: GroupId) -> GroupOnline:
        group = await self._group(gid)
        counts = await self._presence.connections([UserId(u) for u in group.member_ids])
        return GroupOnline(
            members=len(group.member_ids),
            online=sum(1 for n in counts.values() if n),
            connections=sum(counts.values()),
        )

    async def stats(self) -> list[NodeStats]:
        return await self._presence.nodes()

    # -- messages and groups on a user's behalf -------------------------------

    async def send_as(
        self,
        sender: UserId,
        conversation: str,
        body: str | None,
        client_msg_id: str | None,
        extras: Extras = PLAIN,
    ) -> StoredMessage:
        await self._accounts.user(sender)
        return await self._conversations.send(sender, conversation, body, client_msg_id, extras)

    async def recall(
        self, by: UserId | None, conversation: str, seq: int, client_msg_id: str | None
    ) -> StoredMessage:
        """Recall as the business backend (any message, any time) or as member ``by``."""
        if by is not None:
            await self._accounts.user(by)
        return await self._conversations.recall(by, conversation, seq, client_msg_id)

    async def create_group(self, owner: UserId, name: str, member_ids: Sequence[UserId]) -> Group:
        await self._accounts.user(owner)
        return await self._groups.create(owner, name, member_ids)

    async def group(self, gid: GroupId) -> Group:
        return await self._group(gid)

    async def set_members(self, gid: GroupId, member_ids: Sequence[UserId]) -> Group | None:
        """Make the membership exactly ``member_ids``: add the missing, remove the rest.

        Removing everyone deletes the group (None). Removing the owner hands
        the group to its longest-standing remaining member.
        """
        group = await self._group(gid)
        wanted = list(dict.fromkeys(member_ids))
        if len(wanted) > self._settings.max_group_members:
            raise bad_request(f"a group has at most {self._settings.max_group_members} members")
        missing = [u for u in wanted if u not in group.member_ids]
        if missing:
            await self._groups.add(None, gid, missing)
        for user in group.member_ids:
            if user not in wanted:
                await self._groups.remove(None, gid, UserId(user))
        return await self._store.group(gid)

    async def delete_group(self, gid: GroupId) -> None:
        """Every member removed at once (each gets ``conversation_removed``) and
        the group deleted with its history, in one transaction."""
        await self._groups.delete(gid)

    async def _group(self, gid: GroupId) -> Group:
        group = await self._store.group(gid)
        if group is None:
            raise not_found(f"no group {gid}")
        return group
