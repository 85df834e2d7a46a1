"""The HTTP calls of one user (account, groups, chat list, history, send, read);
:class:`~tidings.client.Client` adds the WebSocket side on top."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from tidings.client.conversations import conversation_path, send_fields, with_client_msg_id
from tidings.client.groups import GroupRunning
from tidings.models import (
    ChatList,
    Conversation,
    File,
    Group,
    Message,
    ReadBy,
    SearchResults,
    Session,
    User,
)


class Unset:
    """A parameter not given (where None means "clear it")."""


UNSET = Unset()


class _Messages(msgspec.Struct):
    messages: list[Message]


class Limits(msgspec.Struct, frozen=True):
    """``GET /api/v1/limits``."""

    max_body_chars: int
    max_mentions: int
    recall_seconds: float
    edit_seconds: float


class _VapidKey(msgspec.Struct):
    key: str


class UserCalls(GroupRunning):
    """The user's HTTP calls: the base of :class:`~tidings.client.Client`."""

    async def signup(self, username: str, password: str, display_name: str | None = None) -> User:
        """Create an account (it does not log in: call :meth:`login` next)."""
        body: dict[str, str] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        return await self._fetch(User, "POST", "/api/v1/users", body)

    async def login(self, username: str, password: str) -> Session:
        """Log in and use the new token for every later call and :meth:`connect`."""
        body = {"username": username, "password": password}
        session = await self._fetch(Session, "POST", "/api/v1/sessions", body)
        self.token = session.token
        return session

    async def logout(self) -> None:
        """Revoke the current token. ``self.token`` is kept (now useless); reset it if you like."""
        await self._call("DELETE", "/api/v1/sessions/current")

    async def me(self) -> User:
        return await self._fetch(User, "GET", "/api/v1/me")

    async def set_display_name(self, display_name: str) -> User:
        """Rename the caller (1 to 64 characters, trimmed); peers online hear of it."""
        body = {"display_name": display_name}
        return await self._fetch(User, "PATCH", "/api/v1/me", body)

    async def change_password(self, current: str, new: str) -> None:
        """Set a new password; every other session is revoked, this client's token stays."""
        await self._call("POST", "/api/v1/me/password", {"current": current, "new": new})

    async def user(self, user_id: int) -> User:
        return await self._fetch(User, "GET", f"/api/v1/users/{user_id}")

    async def create_group(self, name: str, member_ids: list[int]) -> Group:
        """Create a group owned by the caller, who is a member whether listed or not."""
        body = {"name": name, "member_ids": member_ids}
        return await self._fetch(Group, "POST", "/api/v1/groups", body)

    async def group(self, group_id: int) -> Group:
        return await self._fetch(Group, "GET", f"/api/v1/groups/{group_id}")

    async def add_members(self, group_id: int, user_ids: list[int]) -> Group:
        """Add users to a group (owner and admins) and return the group as it is now."""
        path = f"/api/v1/groups/{group_id}/members"
        return await self._fetch(Group, "POST", path, {"user_ids": user_ids})

    async def remove_member(self, group_id: int, user_id: int) -> None:
        """Remove a member (the owner anyone, admins plain members; your own id: leave)."""
        await self._call("DELETE", f"/api/v1/groups/{group_id}/members/{user_id}")

    async def dissolve_group(self, group_id: int) -> None:
        """Dissolve the group (owner only): its history stays, nobody can send."""
        await self._call("DELETE", f"/api/v1/groups/{group_id}")

    async def conversations(
        self, limit: int | None = None, *, hidden: bool = False
    ) -> list[Conversation]:
        """The caller's chat list: pinned first, then newest first (server
        default: 100 entries); hidden entries too with ``hidden=True``."""
        return (await self.chat_list(limit, hidden=hidden)).conversations

    async def chat_list(self, limit: int | None = None, *, hidden: bool = False) -> ChatList:
        """The chat list with ``total_unread`` (PROTOCOL-v2 §5)."""
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(limit)
        if hidden:
            params["hidden"] = "true"
        return await self._fetch(ChatList, "GET", "/api/v1/conversations", None, params or None)

    async def update_conversation(
        self,
        conversation: str,
        *,
        pinned: bool | None = None,
        muted: bool | None = None,
        hidden: bool | None = None,
        marked_unread: bool | None = None,
        draft: str | None | Unset = UNSET,
    ) -> Conversation:
        """Change what the caller keeps on an entry (None: leave it; ``draft=None``
        clears the draft); the caller's other connections get the entry."""
        body: dict[str, object] = {}
        for name, value in (
            ("pinned", pinned),
            ("muted", muted),
            ("hidden", hidden),
            ("marked_unread", marked_unread),
        ):
            if value is not None:
                body[name] = value
        if not isinstance(draft, Unset):
            body["draft"] = draft
        return await self._fetch(Conversation, "PATCH", conversation_path(conversation), body)

    async def conversation(self, conversation: str) -> Conversation:
        """One entry of the chat list, by conversation id."""
        return await self._fetch(Conversation, "GET", conversation_path(conversation))

    async def messages(
        self,
        conversation: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """A page of history, ascending by seq: the latest by default, else just
        ``before`` or ``after`` a seq. To catch up after a reconnect, pass
        ``after=<last seen seq>`` and repeat until a page comes back short."""
        given = {"before": before, "after": after, "limit": limit}
        params = {key: str(value) for key, value in given.items() if value is not None}
        path = conversation_path(conversation) + "/messages"
        return (await self._fetch(_Messages, "GET", path, None, params)).messages

    async def vapid_key(self) -> str:
        """The server's VAPID application server key (base64url), for
        ``pushManager.subscribe({applicationServerKey})`` (PROTOCOL-v2 §8)."""
        found = await self._fetch(_VapidKey, "GET", "/api/v1/push/vapid-key")
        return found.key

    async def subscribe_push(self, subscription: Mapping[str, object]) -> None:
        """Register a browser's ``PushSubscription`` JSON (``endpoint``, ``keys``:
        ``p256dh`` and ``auth``, ``expirationTime``) for pushes while offline.
        The same endpoint again replaces it."""
        await self._call("POST", "/api/v1/push/subscriptions", dict(subscription))

    async def unsubscribe_push(self, endpoint: str) -> None:
        """Stop pushes to the subscription at ``endpoint`` (none there is not an error)."""
        await self._call("DELETE", "/api/v1/push/subscriptions", {"endpoint": endpoint})

    async def search_messages(
        self,
        q: str,
        conversation: str | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> SearchResults:
        """Messages the caller can see whose current text holds ``q`` (1 to 100
        characters, any case), newest first; in one conversation if given. For
        the next page pass ``before=results.next_before``; None means no more."""
        given = {"q": q, "conversation": conversation, "before": before, "limit": limit}
        params = {key: str(value) for key, value in given.items() if value is not None}
        return await self._fetch(SearchResults, "GET", "/api/v1/search/messages", None, params)

    async def send(
        self,
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
        """Send a message. Give a ``client_msg_id`` to retry safely: a repeat
        returns the original message instead of storing a second one.

        ``reply_to``: a seq of this conversation to quote; ``forward``:
        ``(conversation, seq)`` of a message to copy (``body`` None then);
        ``mentions``: member ids to @; ``mention_all``: @all (group owner);
        ``kind`` (``image``, ``file``, ``voice``) with ``file_id``: an upload
        of yours (``upload``), ``body`` then an optional caption.
        """
        payload = send_fields(
            body,
            client_msg_id,
            reply_to=reply_to,
            forward=forward,
            mentions=mentions,
            mention_all=mention_all,
            kind=kind,
            file_id=file_id,
        )
        path = conversation_path(conversation) + "/messages"
        return await self._fetch(Message, "POST", path, payload)

    async def upload(
        self,
        content: bytes | str | Path,
        *,
        name: str | None = None,
        duration_ms: int | None = None,
    ) -> File:
        """Upload a file (bytes, or a path streamed from disk): 201 :class:`File`.

        The server tells its type from the bytes; ``name`` defaults to the
        path's. ``duration_ms``: an audio recording's length, kept when its
        container does not say it (a tidings extension). Send it with
        ``send_image``/``send_file``/``send_voice`` or ``send(..., kind=, file_id=)``.
        """
        source = Path(content) if isinstance(content, str) else content
        return await self._upload(File, "/api/v1/files", source, name, duration_ms)

    async def send_image(
        self,
        conversation: str,
        content: bytes | str | Path,
        *,
        name: str | None = None,
        caption: str | None = None,
        client_msg_id: str | None = None,
    ) -> Message:
        """Upload an image and send it (422 ``bad_request`` if it is not one)."""
        uploaded = await self.upload(content, name=name)
        return await self._send_upload(conversation, "image", uploaded, caption, client_msg_id)

    async def send_file(
        self,
        conversation: str,
        content: bytes | str | Path,
        *,
        name: str | None = None,
        caption: str | None = None,
        client_msg_id: str | None = None,
    ) -> Message:
        """Upload any file and send it."""
        uploaded = await self.upload(content, name=name)
        return await self._send_upload(conversation, "file", uploaded, caption, client_msg_id)

    async def send_voice(
        self,
        conversation: str,
        content: bytes | str | Path,
        *,
        name: str | None = None,
        duration_ms: int | None = None,
        client_msg_id: str | None = None,
    ) -> Message:
        """Upload a voice note (audio) and send it; a voice message has no caption.

        ``duration_ms``: the recorded length, for audio whose container does not say it.
        """
        uploaded = await self.upload(content, name=name, duration_ms=duration_ms)
        return await self._send_upload(conversation, "voice", uploaded, None, client_msg_id)

    async def _send_upload(
        self,
        conversation: str,
        kind: str,
        uploaded: File,
        caption: str | None,
        client_msg_id: str | None,
    ) -> Message:
        return await self.send(conversation, caption, client_msg_id, kind=kind, file_id=uploaded.id)

    async def recall(
        self, conversation: str, seq: int, client_msg_id: str | None = None
    ) -> Message:
        """Recall message ``seq``; returns the recall notice (the same one on a repeat)."""
        path = f"{conversation_path(conversation)}/messages/{seq}/recall"
        return await self._fetch(Message, "POST", path, with_client_msg_id({}, client_msg_id))

    async def edit(
        self, conversation: str, seq: int, body: str, client_msg_id: str | None = None
    ) -> Message:
        """Replace the text of message ``seq``; returns the edit notice."""
        path = f"{conversation_path(conversation)}/messages/{seq}/edit"
        payload = with_client_msg_id({"body": body}, client_msg_id)
        return await self._fetch(Message, "POST", path, payload)

    async def read_by(self, conversation: str, seq: int) -> ReadBy:
        """Who read message ``seq`` and who did not (its sender, or a group's owner)."""
        path = f"{conversation_path(conversation)}/messages/{seq}/reads"
        return await self._fetch(ReadBy, "GET", path)

    async def limits(self) -> Limits:
        """The server's limits: body length, mentions, the recall and edit windows."""
        return await self._fetch(Limits, "GET", "/api/v1/limits")

    async def mark_read(self, conversation: str, seq: int) -> Conversation:
        """Mark messages up to ``seq`` read; returns the updated chat-list entry."""
        path = conversation_path(conversation) + "/read"
        return await self._fetch(Conversation, "POST", path, {"seq": seq})
