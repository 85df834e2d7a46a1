"""Who hears what: the recipients of the service's message and read events, chosen here.

The broker carries these events to the nodes and each node's hub hands them
to its own connections; neither chooses a recipient.
"""

from __future__ import annotations

from tidings.events import MessageCreated, ReadMoved
from tidings.ids import ConversationId, UserId
from tidings.store import ReadResult, Store, StoredMessage


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
