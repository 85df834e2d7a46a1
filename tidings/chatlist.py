"""A chat-list entry by the contract's rules, whoever builds it.

The store builds entries from SQL rows, the Redis copy from its hashes, the
service for events and for a private chat before its first message: all
through ``chat_entry``, so unread, the entry's time and what a group or a
private entry carries are decided here once. (The SQL twin of
``shown_time`` is ``store/rows.UPDATED_AT``, which the chat-list query
orders by.)
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from tidings.models import Conversation, Draft, Message

Stamp = TypeVar("Stamp")


def shown_time(last_seq: int, joined_seq: int, last_sent_at: Stamp, joined_at: Stamp) -> Stamp:
    """An entry's time: its last message's, if the member can see it; else when they joined."""
    return last_sent_at if last_seq > joined_seq else joined_at


class EntryState(NamedTuple):
    """What one user keeps on one entry (PROTOCOL-v2 §5); the default reads as v1."""

    pinned: bool = False
    muted: bool = False
    marked_unread: bool = False
    hidden: bool = False
    draft: Draft | None = None


PLAIN = EntryState()


class EntryChange(NamedTuple):
    """A user's change to one entry (``PATCH /api/v1/conversations/{id}``):
    None leaves a field as it is; ``draft`` counts only with ``set_draft``
    (then None or an empty string clears it)."""

    at: int  # milliseconds since the epoch: the draft's time
    pinned: bool | None = None
    muted: bool | None = None
    marked_unread: bool | None = None
    hidden: bool | None = None
    set_draft: bool = False
    draft: str | None = None

    def empty(self) -> bool:
        fields = (self.pinned, self.muted, self.marked_unread, self.hidden)
        return all(value is None for value in fields) and not self.set_draft


def chat_entry(
    *,
    conversation: str,
    title: str,
    group_id: int | None,
    peer_id: int | None,
    last_seq: int,
    read_seq: int,
    last_message: Message | None,
    updated_at: str,
    peer_read_seq: int | None = None,
    uncounted: int = 0,
    mentioned: int = 0,
    state: EntryState = PLAIN,
) -> Conversation:
    """One entry: a group's when ``group_id`` is given, else a private chat with ``peer_id``.

    Unread is a difference of positions (never a counter) less the
    ``uncounted`` seqs between them (notices, recalled messages), never
    negative; ``mentioned`` is counted the same way (docs/architecture.md).
    """
    is_group = group_id is not None
    return Conversation(
        id=conversation,
        type="group" if is_group else "private",
        title=title,
        peer_id=None if is_group else peer_id,
        group_id=group_id,
        unread=max(0, last_seq - read_seq - uncounted),
        last_seq=last_seq,
        read_seq=read_seq,
        last_message=last_message,
        updated_at=updated_at,
        peer_read_seq=None if is_group else peer_read_seq,
        mentioned=mentioned,
        pinned=state.pinned,
        muted=state.muted,
        marked_unread=state.marked_unread,
        draft=state.draft,
        hidden=state.hidden,
    )
