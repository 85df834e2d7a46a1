"""Rows to values: the message columns, the history pages and the chat-list query.

The chat list is one indexed query per user, joining the user's
memberships with each conversation's position, its last message (only if
the member may see it: it came after the member joined), the peer's name
and read position, or the group's name. Unread is ``last_seq - read_seq``,
computed here, never stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, case, select

from tidings.chatlist import chat_entry
from tidings.ids import MAX_BIGINT
from tidings.models import Conversation, Message, User, iso_ms, message_id
from tidings.store.schema import conversations, groups, members, messages, users

MESSAGE_COLUMNS = (
    messages.c.conversation_id,
    messages.c.seq,
    messages.c.sender_id,
    messages.c.body,
    messages.c.client_msg_id,
    messages.c.sent_at,
    messages.c.time_separator,
)


def message_from_row(row: Any) -> Message:
    """A Message from a row (or tuple) in ``MESSAGE_COLUMNS`` order."""
    conversation, seq = row[0], row[1]
    return Message(
        id=message_id(conversation, seq),
        conversation=conversation,
        seq=seq,
        sender=row[2],
        body=row[3],
        client_msg_id=row[4],
        sent_at=iso_ms(row[5]),
        time_separator=bool(row[6]),
    )


def _history_page(member_only: bool, newest_first: bool) -> Select[Any]:
    """Messages of ``:conversation`` with ``:low < seq < :high``, ``:limit`` of them.

    ``member_only`` joins the reader's membership: only messages after it
    joined, and none at all for a non-member, in the same round trip.
    Built once at import, so a request pays no statement building or cache
    key; bounds are parameters (``NO_END`` when open-ended).
    """
    query = select(*MESSAGE_COLUMNS).where(
        messages.c.conversation_id == bindparam("conversation"),
        messages.c.seq > bindparam("low"),
        messages.c.seq < bindparam("high"),
    )
    if member_only:
        query = query.join(
            members,
            and_(
                members.c.conversation_id == messages.c.conversation_id,
                members.c.user_id == bindparam("member"),
            ),
        ).where(messages.c.seq > members.c.joined_seq)
    order = messages.c.seq.desc() if newest_first else messages.c.seq.asc()
    return query.order_by(order).limit(bindparam("limit"))


NO_END = MAX_BIGINT  # above every seq
NEWEST_FIRST, OLDEST_FIRST = True, False
HISTORY_PAGES = {
    (member_only, newest_first): _history_page(member_only, newest_first)
    for member_only in (True, False)
    for newest_first in (NEWEST_FIRST, OLDEST_FIRST)
}


def user_from_row(row: Row[Any]) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name)


# chatlist.shown_time in SQL: the chat-list query orders by it.
_VISIBLE = conversations.c.last_seq > members.c.joined_seq
UPDATED_AT = case((_VISIBLE, conversations.c.last_sent_at), else_=members.c.joined_at)
_PEER = members.alias("peer")
CHAT_LIST = select(
    members.c.conversation_id,
    conversations.c.kind,
    conversations.c.group_id,
    members.c.peer_id,
    members.c.read_seq,
    members.c.joined_at,
    conversations.c.last_seq,
    UPDATED_AT.label("updated_at"),
    messages.c.sender_id,
    messages.c.body,
    messages.c.client_msg_id,
    messages.c.sent_at,
    messages.c.time_separator,
    users.c.display_name.label("peer_name"),
    groups.c.name.label("group_name"),
    _PEER.c.read_seq.label("peer_read_seq"),
).select_from(
    members.join(conversations, conversations.c.id == members.c.conversation_id)
    .outerjoin(
        messages,
        and_(
            messages.c.conversation_id == conversations.c.id,
            messages.c.seq == conversations.c.last_seq,
            _VISIBLE,
        ),
    )
    .outerjoin(users, users.c.id == members.c.peer_id)
    .outerjoin(groups, groups.c.id == conversations.c.group_id)
    .outerjoin(
        _PEER,
        and_(
            _PEER.c.conversation_id == members.c.conversation_id,
            _PEER.c.user_id == members.c.peer_id,
        ),
    )
)


def entry_from_row(row: Row[Any]) -> Conversation:
    last = None
    if row.sender_id is not None:
        last = message_from_row(
            (
                row.conversation_id,
                row.last_seq,
                row.sender_id,
                row.body,
                row.client_msg_id,
                row.sent_at,
                row.time_separator,
            )
        )
    is_group = row.kind == "group"
    return chat_entry(
        conversation=row.conversation_id,
        title=(row.group_name if is_group else row.peer_name) or "",
        group_id=row.group_id if is_group else None,
        peer_id=row.peer_id,
        last_seq=row.last_seq,
        read_seq=row.read_seq,
        last_message=last,
        updated_at=iso_ms(row.updated_at),
        peer_read_seq=row.peer_read_seq,
    )
