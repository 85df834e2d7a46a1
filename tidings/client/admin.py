"""AdminClient: the business backend's side, the integration API under ``/api/v1/admin``
with the service token, kept apart from the user's :class:`~tidings.client.Client`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiohttp
import msgspec

from tidings.client.conversations import conversation_path, send_fields, with_client_msg_id
from tidings.client.groups import GroupRunning
from tidings.models import File, Group, GroupOnline, Message, Stats, User


class _Users(msgspec.Struct):
    users: list[User]


class _Token(msgspec.Struct):
    token: str


class _Pushed(msgspec.Struct):
    connections: int


class _Presence(msgspec.Struct):
    online: dict[str, bool]


class AdminClient(GroupRunning):
    """The integration API of a business backend: ``/api/v1/admin/...``.

    ``async with AdminClient(base_url, service_token) as admin: ...``; every
    call sends ``Authorization: Bearer <service_token>`` and raises ApiError on
    a refusal like :class:`Client` does: ``forbidden`` (403) when the server
    has no ``TIDINGS_SERVICE_TOKEN``, ``unauthorized`` (401) for a wrong one,
    ``not_found``, ``username_taken``, ``bad_request``, ...
    ``session`` is shared as in :class:`Client`.
    """

    _BASE = "/api/v1/admin"
    _GROUPS = "/api/v1/admin/groups"

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url, service_token, session=session)

    async def create_user(self, username: str, display_name: str | None = None) -> User:
        """Create a user without a password (the backend logs its users in itself).

        Raises ApiError ``username_taken`` (409) if the name exists, in any case.
        """
        body: dict[str, str] = {"username": username}
        if display_name is not None:
            body["display_name"] = display_name
        return await self._fetch(User, "POST", f"{self._BASE}/users", body)

    async def users(self, after_id: int = 0, limit: int = 100) -> list[User]:
        """One page of users, ascending by id, with ids above ``after_id`` (limit ≤ 1000)."""
        params = {"after_id": str(after_id), "limit": str(limit)}
        return (await self._fetch(_Users, "GET", f"{self._BASE}/users", None, params)).users

    async def iter_users(self, *, page: int = 1000) -> AsyncIterator[User]:
        """Every user, ascending by id, fetched ``page`` at a time."""
        after = 0
        while True:
            found = await self.users(after, page)
            for user in found:
                yield user
            if len(found) < page:
                return
            after = found[-1].id

    async def user(self, user_id: int) -> User:
        return await self._fetch(User, "GET", f"{self._BASE}/users/{user_id}")

    async def set_display_name(self, user_id: int, display_name: str) -> User:
        body = {"display_name": display_name}
        return await self._fetch(User, "PATCH", f"{self._BASE}/users/{user_id}", body)

    async def mint_token(self, user_id: int) -> str:
        """A new token for that user: give it to the user's client (``Client(url, token)``)."""
        path = f"{self._BASE}/users/{user_id}/tokens"
        return (await self._fetch(_Token, "POST", path)).token

    async def upload_as(
        self,
        user_id: int,
        content: bytes | str | Path,
        *,
        name: str | None = None,
        duration_ms: int | None = None,
    ) -> File:
        """Upload a file in that user's name: send it with ``send_as(..., kind=, file_id=)``."""
        source = Path(content) if isinstance(content, str) else content
        path = f"{self._BASE}/users/{user_id}/files"
        return await self._upload(File, path, source, name, duration_ms)

    async def revoke_tokens(self, user_id: int) -> None:
        """Revoke every token of the user; its open sockets close with 4003."""
        await self._call("DELETE", f"{self._BASE}/users/{user_id}/tokens")

    async def push(
        self,
        event: object,
        *,
        user_ids: Iterable[int] | None = None,
        group_id: int | None = None,
        all: bool = False,  # the wire's name
    ) -> int:
        """Send ``{"type": "push", "event": event}`` to every open connection of
        ``user_ids``, of the members of ``group_id``, or of everyone (``all=True``).

        Give exactly one of the three. Returns how many connections it reached.
        """
        body: dict[str, object] = {"event": event}
        if user_ids is not None:
            body["user_ids"] = list(user_ids)
        if group_id is not None:
            body["group_id"] = group_id
        if all:
            body["all"] = True
        if len(body) != 2:
            raise ValueError("push() needs exactly one of user_ids, group_id or all=True")
        return (await self._fetch(_Pushed, "POST", f"{self._BASE}/push", body)).connections

    async def presence(self, user_ids: Iterable[int]) -> dict[int, bool]:
        """Whether each user has an open connection on any node: ``{id: online}``."""
        ids = ",".join(str(user_id) for user_id in user_ids)
        path = f"{self._BASE}/presence"
        found = await self._fetch(_Presence, "GET", path, None, {"user_ids": ids})
        return {int(user_id): online for user_id, online in found.online.items()}

    async def send_as(
        self,
        sender_id: int,
        conversation: str,
        body: str | None,
        client_msg_id: str | None = None,
        *,
        reply_to: int | None = None,
        forward: tuple[str, int] | None = None,
        mentions: Sequence[int] = (),
        mention_all: bool = False,
        kind: str | None = None,
        file_id: str | None = None,
    ) -> Message:
        """Send a message in the name of ``sender_id`` (who must be a member).

        A repeat of the same (sender, ``client_msg_id``) returns the original.
        The keywords are those of a user's own send (PROTOCOL-v2 §2).
        """
        fields = send_fields(
            body,
            client_msg_id,
            reply_to=reply_to,
            forward=forward,
            mentions=mentions,
            mention_all=mention_all,
            kind=kind,
            file_id=file_id,
        )
        payload: dict[str, object] = {"sender_id": sender_id, **fields}
        path = conversation_path(conversation, f"{self._BASE}/conversations/") + "/messages"
        return await self._fetch(Message, "POST", path, payload)

    async def recall(
        self,
        conversation: str,
        seq: int,
        *,
        by: int | None = None,
        client_msg_id: str | None = None,
    ) -> Message:
        """A moderation recall of message ``seq``, at any time; returns the notice.

        ``by``: recall as that member instead, with that member's rights.
        """
        payload: dict[str, object] = with_client_msg_id({}, client_msg_id)
        if by is not None:
            payload["by"] = by
        base = conversation_path(conversation, f"{self._BASE}/conversations/")
        return await self._fetch(Message, "POST", f"{base}/messages/{seq}/recall", payload)

    async def create_group(self, name: str, owner_id: int, member_ids: Iterable[int] = ()) -> Group:
        """Create a group owned by ``owner_id``, who is a member whether listed or not."""
        body = {"name": name, "owner_id": owner_id, "member_ids": list(member_ids)}
        return await self._fetch(Group, "POST", f"{self._BASE}/groups", body)

    async def group(self, group_id: int) -> Group:
        return await self._fetch(Group, "GET", f"{self._BASE}/groups/{group_id}")

    async def set_members(self, group_id: int, member_ids: Iterable[int]) -> Group | None:
        """Make the membership exactly ``member_ids``; returns the group as it is now.

        Added users get a ``conversation`` event, removed ones stop receiving
        it. None when the server answers 204: an empty list deletes the group.
        """
        path = f"{self._BASE}/groups/{group_id}/members"
        data = await self._call("PUT", path, {"member_ids": list(member_ids)})
        return msgspec.json.decode(data, type=Group) if data else None

    async def delete_group(self, group_id: int) -> None:
        await self._call("DELETE", f"{self._BASE}/groups/{group_id}")

    async def dissolve_group(self, group_id: int) -> None:
        """Dissolve the group: its history stays with its members, nobody can send."""
        await self._call("POST", f"{self._BASE}/groups/{group_id}/dissolve")

    async def group_online(self, group_id: int) -> GroupOnline:
        """How many members the group has, how many are online, on how many connections."""
        path = f"{self._BASE}/groups/{group_id}/online"
        return await self._fetch(GroupOnline, "GET", path)

    async def stats(self) -> Stats:
        """Open connections in all and per node, users online, messages per second."""
        return await self._fetch(Stats, "GET", f"{self._BASE}/stats")
