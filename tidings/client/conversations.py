"""Conversation ids and message frames: the contract's shapes a client builds and reads,
kept apart so the HTTP calls, the socket and the stream agree on them."""

from __future__ import annotations

from collections.abc import Sequence
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


def send_fields(
    body: str | None,
    client_msg_id: str | None,
    *,
    reply_to: int | None = None,
    forward: tuple[str, int] | None = None,
    mentions: Sequence[int] = (),
    mention_all: bool = False,
    kind: str | None = None,
    file_id: str | None = None,
) -> Frame:
    """The fields of a send (PROTOCOL-v2 §2), the same in a frame and an HTTP body.

    A field left at its default is left out, so a plain send is a v1 send.
    """
    fields: Frame = {}
    if body is not None:
        fields["body"] = body
    if client_msg_id is not None:
        fields["client_msg_id"] = client_msg_id
    if reply_to is not None:
        fields["reply_to"] = reply_to
    if forward is not None:
        fields["forward"] = {"conversation": forward[0], "seq": forward[1]}
    if mentions:
        fields["mentions"] = list(mentions)
    if mention_all:
        fields["mention_all"] = True
    if kind is not None:
        fields["kind"] = kind
    if file_id is not None:
        fields["file_id"] = file_id
    return fields


def with_client_msg_id(fields: Frame, client_msg_id: str | None) -> Frame:
    if client_msg_id is not None:
        fields["client_msg_id"] = client_msg_id
    return fields
