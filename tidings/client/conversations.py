"""Conversation ids and message frames: the contract's shapes a client builds and reads,
kept apart so the HTTP calls, the socket and the stream agree on them."""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from tidings.models import Message

Frame = dict[str, object]


def private_conversation(a: int, b: int) -> str:
    """The id of the private conversation of users ``a`` and ``b``: ``p:{low}-{high}``."""
    return f"p:{min(a, b)}-{max(a, b)}"


def group_conversation(group_id: int) -> str:
    """The id of the conversation of group ``group_id``: ``g:{group_id}``."""
    return f"g:{group_id}"


def message_of(event: Frame) -> Message:
    """The Message of a ``message`` event (or of an ack of a send), as a Struct."""
    return msgspec.convert(event.get("message"), type=Message)


def conversation_path(conversation: str, base: str = "/api/v1/conversations/") -> str:
    """The path of a conversation under ``base``, its id quoted (``:`` kept)."""
    return base + quote(conversation, safe=":")
