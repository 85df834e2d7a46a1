"""What happened, and to whom it must be told: the events the service publishes.

The service (``service/recipients.py``) chooses every event's recipients; the
broker carries events to the nodes, and each node's hub hands them to its
own connections. ``origin`` names the connection that caused an event,
which gets an ack instead of the event. Events are tagged msgspec Structs
so a broker between nodes can encode and decode them exactly.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from tidings.ids import ConversationId, UserId
from tidings.models import Conversation, Message


class MessageCreated(msgspec.Struct, frozen=True, tag="message"):
    message: Message
    recipients: tuple[UserId, ...]
    origin: int | None


class ReadMoved(msgspec.Struct, frozen=True, tag="read"):
    conversation: ConversationId
    user: UserId
    seq: int
    recipients: tuple[UserId, ...]
    origin: int | None


class ConversationAdded(msgspec.Struct, frozen=True, tag="conversation"):
    """A ``conversation`` event: a chat list gained an entry without a message (a
    group join), or what an entry shows changed (the peer's new display name)."""

    user: UserId
    conversation: Conversation


class EntryChanged(msgspec.Struct, frozen=True, tag="entry"):
    """A user changed an entry of their own list (PROTOCOL-v2 §5): their other
    connections (all but ``origin``) get it as a ``conversation`` event."""

    user: UserId
    conversation: Conversation
    origin: int | None


class TypingStarted(msgspec.Struct, frozen=True, tag="typing"):
    """A member is typing (PROTOCOL-v2 §5): told to the other members, never stored."""

    conversation: ConversationId
    user: UserId
    recipients: tuple[UserId, ...]


class ConversationRemoved(msgspec.Struct, frozen=True, tag="conversation_removed"):
    """A chat list lost a conversation: its user left or was removed."""

    user: UserId
    conversation: ConversationId


class SessionRevoked(msgspec.Struct, frozen=True, tag="session_revoked"):
    """A token was logged out: the sockets opened with it close (4003)."""

    token_hash: str


class Pushed(msgspec.Struct, frozen=True, tag="push"):
    """A business backend's event for users' open connections (``Gateway::sendToUid``).

    ``payload`` is the event already encoded as JSON, so every node sends
    the same bytes; ``users`` None means every connected user.
    """

    users: tuple[UserId, ...] | None
    payload: bytes


Event = (
    MessageCreated
    | ReadMoved
    | ConversationAdded
    | EntryChanged
    | ConversationRemoved
    | SessionRevoked
    | Pushed
    | TypingStarted
)


class Publisher(Protocol):
    """Where the service sends its events (the broker, and webhooks on the committing node)."""

    def publish(self, event: Event) -> None: ...
