"""The values of the wire contract, as frozen msgspec Structs.

These are what the server encodes and what ``tidings.client`` decodes, so
a field added here reaches both sides at once. Times travel as ISO 8601
strings with milliseconds and a ``Z``; inside the server they are integer
milliseconds since the epoch.
"""

from __future__ import annotations

import functools
import time
from datetime import date, timedelta
from typing import Any

import msgspec


class User(msgspec.Struct, frozen=True):
    id: int
    username: str
    display_name: str


class Announcement(msgspec.Struct, frozen=True):
    text: str
    updated_at: str
    by: int | None  # None: set by the business backend


class Group(msgspec.Struct, frozen=True):
    id: int
    name: str
    owner_id: int
    member_ids: list[int]
    # PROTOCOL-v2 §6; the defaults read as a v1 group.
    admin_ids: list[int] = msgspec.field(default_factory=list)
    announcement: Announcement | None = None
    muted_all: bool = False
    muted_ids: list[int] = msgspec.field(default_factory=list)
    # Extensions: until when each of muted_ids is muted; whether it was dissolved.
    mutes: dict[str, str] = msgspec.field(default_factory=dict)
    dissolved: bool = False


# PROTOCOL-v2 §1: text, image, file and voice count as unread; notices never do.
COUNTABLE_KINDS = frozenset({"text", "image", "file", "voice"})
NOTICE_KINDS = frozenset({"recall", "edit", "system"})


class ReplyTo(msgspec.Struct, frozen=True):
    """The quoted message as it reads now: ``preview`` is None once it is recalled."""

    seq: int
    sender: int
    kind: str
    preview: str | None


class ForwardedFrom(msgspec.Struct, frozen=True):
    conversation: str
    seq: int
    sender: int


class File(msgspec.Struct, frozen=True):
    """PROTOCOL-v2 §3's file object: an upload, and what a message's ``attachment`` holds.

    ``url`` and ``thumbnail_url`` are signed paths (relative to the server)
    that work without a token until they expire; fetch the message again for
    fresh ones. ``thumbnail_url`` is None for what is not an image.
    """

    id: str
    name: str
    size: int
    content_type: str
    width: int | None
    height: int | None
    duration_ms: int | None
    url: str
    thumbnail_url: str | None


class Message(msgspec.Struct, frozen=True):
    id: str
    conversation: str
    seq: int
    sender: int
    # None once the message is recalled.
    body: str | None
    client_msg_id: str | None
    sent_at: str
    time_separator: bool
    # v2 fields; their defaults read as a v1 text message.
    kind: str = "text"
    attachment: dict[str, Any] | None = None
    reply_to: ReplyTo | None = None
    forwarded_from: ForwardedFrom | None = None
    mentions: list[int] = msgspec.field(default_factory=list)
    mention_all: bool = False
    target_seq: int | None = None
    recalled: bool = False
    edited_at: str | None = None
    system: dict[str, Any] | None = None

    @property
    def countable(self) -> bool:
        return self.kind in COUNTABLE_KINDS

    @property
    def file(self) -> File | None:
        """The attachment as a typed :class:`File` (None for a message without one)."""
        if self.attachment is None:
            return None
        return msgspec.convert(self.attachment, File)


class Draft(msgspec.Struct, frozen=True):
    """A half-written message kept on the server, so every device of its user has it."""

    body: str
    updated_at: str


class Conversation(msgspec.Struct, frozen=True):
    """One entry of a user's chat list."""

    id: str
    type: str
    title: str
    peer_id: int | None
    group_id: int | None
    unread: int
    last_seq: int
    read_seq: int
    last_message: Message | None
    updated_at: str
    # An extension for read receipts: in a private chat, how far the peer has read.
    peer_read_seq: int | None = None
    # PROTOCOL-v2 §1: how many of the unread messages mention this user or all.
    mentioned: int = 0
    # PROTOCOL-v2 §5: the entry as this user keeps it, the same on every device.
    pinned: bool = False
    muted: bool = False
    marked_unread: bool = False
    draft: Draft | None = None
    # An extension: whether the entry is hidden now (listed only with ?hidden=true).
    hidden: bool = False


class ReadBy(msgspec.Struct, frozen=True):
    """PROTOCOL-v2 §6's read-by of one message: the members who could see it and
    still belong, its sender left out, split by whether they read up to it."""

    seq: int
    read: int
    unread: int
    read_ids: list[int]
    unread_ids: list[int]


class SearchResults(msgspec.Struct, frozen=True):
    """PROTOCOL-v2 §7's ``GET /api/v1/search/messages``: a page of matches, newest
    first, and the cursor of the next page (None on the last)."""

    messages: list[Message]
    next_before: str | None


class ChatList(msgspec.Struct, frozen=True):
    """``GET /api/v1/conversations``: the entries, and PROTOCOL-v2 §5's total."""

    conversations: list[Conversation]
    total_unread: int = 0


class GroupOnline(msgspec.Struct, frozen=True):
    """``GET /api/v1/admin/groups/{id}/online``: members, those online, their connections."""

    members: int
    online: int
    connections: int


class NodeStats(msgspec.Struct, frozen=True):
    """One server process's figures, as ``GET /api/v1/admin/stats`` lists them."""

    node: str
    connections: int
    users_online: int
    messages_per_second: float
    pending_writes: int = 0


class Stats(msgspec.Struct, frozen=True):
    """``GET /api/v1/admin/stats``: open connections in all, and per node."""

    connections: int
    nodes: list[NodeStats]


class Session(msgspec.Struct, frozen=True):
    token: str
    user: User


def iso_ms(millis: int) -> str:
    """``1764168103123`` -> ``"2025-11-26T14:41:43.123Z"``."""
    seconds, ms = divmod(millis, 1000)
    return f"{_iso_second(seconds)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    # Messages sent together share their second; strftime was a hot spot, and
    # a history page has a new second on every row, so a miss is arithmetic.
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, second = divmod(rest, 60)
    return f"{_iso_day(days)}T{hours:02d}:{minutes:02d}:{second:02d}"


@functools.lru_cache(maxsize=1024)
def _iso_day(days: int) -> str:
    return (_EPOCH_DAY + timedelta(days=days)).isoformat()


_EPOCH_DAY = date(1970, 1, 1)


def message_id(conversation: str, seq: int) -> str:
    """The opaque id of a message: unique because (conversation, seq) is."""
    return f"{conversation}#{seq}"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch, the unit of every stored time."""
    return time.time_ns() // 1_000_000
