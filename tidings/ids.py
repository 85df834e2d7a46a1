"""Identifiers of the wire contract, parsed once at the edge.

A private conversation between users a < b is ``p:{a}-{b}`` (both
directions share it, the original design's ``chat_identify``); a group
conversation is ``g:{group}``. Anything else names no conversation.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NewType

UserId = NewType("UserId", int)
GroupId = NewType("GroupId", int)
ConversationId = NewType("ConversationId", str)

# The largest id or seq any of the databases stores (a signed BIGINT).
MAX_BIGINT = 2**63 - 1

_PRIVATE = re.compile(r"p:([1-9][0-9]{0,17})-([1-9][0-9]{0,17})")
_GROUP = re.compile(r"g:([1-9][0-9]{0,17})")


@dataclass(frozen=True, slots=True)
class PrivateRef:
    """``p:{low}-{high}``: the two users of a private conversation."""

    id: ConversationId
    low: UserId
    high: UserId

    def peer_of(self, user: UserId) -> UserId:
        return self.high if user == self.low else self.low

    def has(self, user: UserId) -> bool:
        return user == self.low or user == self.high


@dataclass(frozen=True, slots=True)
class GroupRef:
    """``g:{group}``: the conversation of one group."""

    id: ConversationId
    group: GroupId


ConversationRef = PrivateRef | GroupRef


def private_conversation(a: UserId, b: UserId) -> ConversationId:
    """The id of the private conversation of users ``a`` and ``b``: ``p:{low}-{high}``."""
    return ConversationId(f"p:{min(a, b)}-{max(a, b)}")


def group_conversation(group: GroupId) -> ConversationId:
    """The id of group ``group``'s conversation: ``g:{group}``."""
    return ConversationId(f"g:{group}")


# Every send parses its conversation; the same few thousand come back again
# and again, and a parse (regex + frozen dataclass) costs ~3 us against
# ~0.1 us for a hit. The refs are immutable, so sharing them is safe; the
# bound keeps a client sending made-up names from growing it.
@functools.lru_cache(maxsize=8192)
def parse_conversation(text: str) -> ConversationRef | None:
    """The conversation ``text`` names, or None when it names none.

    ``p:17-3`` (the larger id first) and ``p:3-3`` name none: the contract
    spells every private conversation with the smaller id first, so there
    is exactly one spelling per conversation.
    """
    match = _PRIVATE.fullmatch(text)
    if match is not None:
        low, high = int(match[1]), int(match[2])
        if low >= high:
            return None
        return PrivateRef(ConversationId(text), UserId(low), UserId(high))
    match = _GROUP.fullmatch(text)
    if match is not None:
        return GroupRef(ConversationId(text), GroupId(int(match[1])))
    return None
