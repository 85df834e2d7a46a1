"""Who hears what: the recipients of the service's message and read events, chosen here.

The broker carries these events to the nodes and each node's hub hands them
to its own connections; neither chooses a recipient.
"""

from __future__ import annotations

from tidings.chatlist import chat_entry
from tidings.events import (
    ConversationAdded,
    ConversationRemoved,
    Event,
    MessageCreated,
    ReadMoved,
)
from tidings.ids import ConversationId, GroupId, UserId, group_conversation
from tidings.store import GroupChange, ReadResult, Store, StoredMessage


def message_created(stored: StoredMessage, origin: int | None) -> MessageCreated:
    """Every member at commit time; the sending connection is skipped by ``origin``."""
    return MessageCreated(stored.message, stored.recipients, origin)


def read_moved(result: ReadResult, peer: UserId | None, origin: int | None) -> ReadMoved:
    """The reader's other devices, and in a private chat the peer (a read receipt)."""
    recipients = (result.user,) if peer is None else (result.user, peer)
    return ReadMoved(result.conversation, result.user, result.read_seq, recipients, origin)


async def missed_messages(
    store: Store,
    conversation: ConversationId,
    after: int,
    before: int,
    recipients: tuple[UserId, ...],
) -> list[MessageCreated]:
    """The messages between ``after`` and ``before`` as events, for a node that lost them
    in transit: each goes to those of ``recipients`` who were members when it was sent."""
    limit = max(1, min(before - after - 1, 200))
    found = await store.history(conversation, None, before=None, after=after, limit=limit)
    joined = await store.joined_seqs(conversation)
    return [
        MessageCreated(m, tuple(u for u in recipients if joined.get(u, m.seq) < m.seq), None)
        for m in found
        if m.seq < before
    ]


def group_events(change: GroupChange, origin: int | None) -> list[Event]:
    """A group change's events, in this order: each joiner's new chat-list
    entry (``conversation``, showing the notice that added it), the notice to
    every member after the change, and ``conversation_removed`` to a leaver."""
    events: list[Event] = []
    group, notice = change.group, change.notice
    if group is not None and notice is not None and change.joined:
        message = notice.message
        entry = chat_entry(
            conversation=group_conversation(GroupId(group.id)),
            title=group.name,
            group_id=group.id,
            peer_id=None,
            last_seq=message.seq,
            read_seq=message.seq,
            last_message=message,
            updated_at=message.sent_at,
        )
        events += [ConversationAdded(user, entry) for user in change.joined]
    if notice is not None:
        events.append(message_created(notice, origin))
    events += [ConversationRemoved(user, change.conversation) for user in change.left]
    return events
