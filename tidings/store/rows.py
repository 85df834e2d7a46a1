"""Rows to values: the message columns, the history pages and the chat-list query.

The chat list is one indexed query per user, joining the user's
memberships with each conversation's position, its last message (only if
the member may see it: it came after the member joined), the peer's name
and read position, or the group's name. Unread is ``last_seq - read_seq``,
computed here, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import (
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from tidings.chatlist import PLAIN, EntryState, chat_entry
from tidings.ids import MAX_BIGINT
from tidings.models import (
    Conversation,
    Draft,
    ForwardedFrom,
    Message,
    ReplyTo,
    User,
    iso_ms,
    message_id,
)
from tidings.store.schema import (
    conversations,
    groups,
    members,
    mentions,
    messages,
    uncounted,
    users,
)

MESSAGE_COLUMNS = (
    messages.c.conversation_id,
    messages.c.seq,
    messages.c.sender_id,
    messages.c.body,
    messages.c.client_msg_id,
    messages.c.sent_at,
    messages.c.time_separator,
    messages.c.kind,
    messages.c.reply_seq,
    messages.c.forward_conversation,
    messages.c.forward_seq,
    messages.c.forward_sender,
    messages.c.mentions,
    messages.c.mention_all,
    messages.c.target_seq,
    messages.c.recall_seq,
    messages.c.edited_at,
    messages.c.system,
    messages.c.file_id,
    messages.c.attachment,
)
REPLY_SEQ = 8  # the index of reply_seq in MESSAGE_COLUMNS
FILE_ID, ATTACHMENT = 18, 19  # the file a message carries, and its file object as JSON
PREVIEW_CHARS = 100


def message_from_row(row: Any, reply_to: ReplyTo | None = None) -> Message:
    """A Message from a row (or tuple) in ``MESSAGE_COLUMNS`` order, as it reads now."""
    conversation, seq = row[0], row[1]
    recalled = row[15] is not None
    forwarded = None if row[9] is None else ForwardedFrom(row[9], row[10], row[11])
    return Message(
        id=message_id(conversation, seq),
        conversation=conversation,
        seq=seq,
        sender=row[2],
        body=None if recalled else row[3],
        client_msg_id=row[4],
        sent_at=iso_ms(row[5]),
        time_separator=bool(row[6]),
        kind=row[7],
        reply_to=reply_to,
        forwarded_from=forwarded,
        mentions=decode_ids(row[12]),
        mention_all=bool(row[13]),
        target_seq=row[14],
        recalled=recalled,
        edited_at=None if row[16] is None else iso_ms(row[16]),
        system=None if row[17] is None else msgspec.json.decode(row[17]),
        # PROTOCOL-v2 §1: a recalled message's attachment is null, like its body.
        attachment=None if recalled or row[19] is None else msgspec.json.decode(row[19]),
    )


def reply_from_row(row: Any) -> ReplyTo:
    """What a reply shows of the message at ``row`` (``MESSAGE_COLUMNS`` order)."""
    recalled = row[15] is not None
    shown = None if recalled else preview(row[7], row[3], attachment_name(row[19]))
    return ReplyTo(seq=row[1], sender=row[2], kind=row[7], preview=shown)


def preview(kind: str, body: str | None, file_name: str | None = None) -> str | None:
    """PROTOCOL-v2 §1: the first 100 characters, or what stands for a file."""
    if kind == "image":
        return "[Image]"
    if kind == "voice":
        return "[Voice]"
    if kind == "file":
        return "[File]" if not file_name else f"[File] {file_name}"[:PREVIEW_CHARS]
    return None if body is None else body[:PREVIEW_CHARS]


def attachment_name(attachment: str | None) -> str | None:
    """The file name in a message's attachment (its JSON), if it has one."""
    if attachment is None:
        return None
    name = msgspec.json.decode(attachment).get("name")
    return name if isinstance(name, str) else None


def encode_ids(ids: Sequence[int]) -> str | None:
    return ",".join(str(i) for i in ids) if ids else None


def decode_ids(text: str | None) -> list[int]:
    return [int(part) for part in text.split(",")] if text else []


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
_VISIBLE = conversations.c.shown_seq > members.c.joined_seq
UPDATED_AT = case((_VISIBLE, conversations.c.last_sent_at), else_=members.c.joined_at)
_PEER = members.alias("peer")
# The seqs above the member's read position that do not count: notices and
# recalled messages. One index range each; few rows (docs/architecture.md).
_UNCOUNTED = (
    select(func.count())
    .where(
        uncounted.c.conversation_id == members.c.conversation_id,
        uncounted.c.seq > members.c.read_seq,
    )
    .scalar_subquery()
)
_MENTIONED = (
    select(func.count())
    .where(
        mentions.c.conversation_id == members.c.conversation_id,
        or_(mentions.c.user_id == members.c.user_id, mentions.c.user_id == 0),
        mentions.c.seq > members.c.read_seq,
    )
    .scalar_subquery()
)


# PROTOCOL-v2 §5. An entry is hidden while no countable entry lies above the
# seq it was hidden at (notices and recalled messages do not bring it back).
_UNCOUNTED_SINCE_HIDDEN = (
    select(func.count())
    .where(
        uncounted.c.conversation_id == members.c.conversation_id,
        uncounted.c.seq > members.c.hidden_seq,
    )
    .scalar_subquery()
)
HIDDEN = case(
    (members.c.hidden_seq.is_(None), 0),
    (conversations.c.last_seq - members.c.hidden_seq > _UNCOUNTED_SINCE_HIDDEN, 0),
    else_=1,
)
# The list's order within the pinned and the rest: the later of the entry's
# time and its draft's.
ORDER_AT = case((members.c.draft_at > UPDATED_AT, members.c.draft_at), else_=UPDATED_AT)
_HAS_STATE = or_(
    members.c.pinned == true(),
    members.c.muted == true(),
    members.c.marked_unread == true(),
    members.c.hidden_seq.is_not(None),
    members.c.draft_at.is_not(None),
)
STATE_COLUMNS = (
    members.c.pinned,
    members.c.muted,
    members.c.marked_unread,
    HIDDEN.label("hidden"),
    members.c.draft,
    members.c.draft_at,
)


def state_from_row(row: Any) -> EntryState:
    """The entry state of a row that has ``STATE_COLUMNS`` by name."""
    if not (row.pinned or row.muted or row.marked_unread or row.hidden or row.draft_at):
        return PLAIN  # most entries: nothing kept
    draft = None
    if row.draft is not None and row.draft_at is not None:
        draft = Draft(body=row.draft, updated_at=iso_ms(row.draft_at))
    return EntryState(
        pinned=bool(row.pinned),
        muted=bool(row.muted),
        marked_unread=bool(row.marked_unread),
        hidden=bool(row.hidden),
        draft=draft,
    )


def entry_states(user: int) -> Select[Any]:
    """The user's entries that keep any state (few: most entries keep none)."""
    return (
        select(members.c.conversation_id, *STATE_COLUMNS)
        .select_from(members.join(conversations, conversations.c.id == members.c.conversation_id))
        .where(members.c.user_id == user, _HAS_STATE)
    )


class _Greatest(FunctionElement[Any]):
    """GREATEST(a, b); SQLite's two-argument scalar max() is the same function."""

    inherit_cache = True
    name = "greatest"


@compiles(_Greatest, "sqlite")
def _greatest_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(_Greatest)
def _greatest(element: Any, compiler: Any, **kw: Any) -> str:
    return f"greatest({compiler.process(element.clauses, **kw)})"


_MARKED = cast(members.c.marked_unread, Integer)
# What one entry adds to PROTOCOL-v2 §5's total_unread: nothing if muted;
# else its unread, or 1 if it is marked unread with none. Unread can't be
# below 0 (the uncounted seqs above read_seq lie between it and last_seq),
# so the greater of unread and the mark is exactly that rule. Only entries
# with seqs above the read position look into ``uncounted`` (a lazy CASE).
COUNTED = case(
    (members.c.muted == true(), 0),
    (
        conversations.c.last_seq > members.c.read_seq,
        _Greatest(conversations.c.last_seq - members.c.read_seq - _UNCOUNTED, _MARKED),
    ),
    else_=_MARKED,
)


def total_unread(user: int) -> Select[Any]:
    """PROTOCOL-v2 §5's ``total_unread`` over all the user's entries, alone
    (the chat-list page carries it too, from the pass that picks the page)."""
    return (
        select(func.coalesce(func.sum(COUNTED), 0).label("total"))
        .select_from(members.join(conversations, conversations.c.id == members.c.conversation_id))
        .where(members.c.user_id == user)
    )


def _chat_list(source: Any) -> Select[Any]:
    """The chat-list columns for the member rows of ``source`` (``members`` or a join with it)."""
    return select(
        members.c.conversation_id,
        conversations.c.kind.label("conversation_kind"),
        conversations.c.group_id,
        members.c.peer_id,
        members.c.read_seq,
        members.c.joined_at,
        conversations.c.last_seq,
        UPDATED_AT.label("updated_at"),
        _PEER.c.read_seq.label("peer_read_seq"),
        users.c.display_name.label("peer_name"),
        groups.c.name.label("group_name"),
        _UNCOUNTED.label("uncounted"),
        _MENTIONED.label("mentioned"),
        *STATE_COLUMNS,
        *MESSAGE_COLUMNS,
    ).select_from(
        source.join(conversations, conversations.c.id == members.c.conversation_id)
        .outerjoin(
            messages,
            and_(
                messages.c.conversation_id == conversations.c.id,
                messages.c.seq == conversations.c.shown_seq,
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


CHAT_LIST = _chat_list(members)


def chat_list_page(user: int, limit: int, *, with_hidden: bool = False) -> Select[Any]:
    """A user's chat list, newest first: the page is chosen first, on narrow rows,
    and only its entries get their last message, names and counts.

    (SQLite computes every selected column of every candidate row before it
    sorts: with the whole list in one query, a user in 1,000 conversations
    paid 1,000 last messages and 2,000 count lookups for a page of 100.) A
    derived table, not ``IN (... LIMIT)``, which MySQL refuses. Pinned
    entries first (PROTOCOL-v2 §5); hidden ones only ``with_hidden``.
    """
    page = (
        select(
            members.c.conversation_id.label("cid"),
            members.c.pinned.label("pin"),
            ORDER_AT.label("at"),
        )
        .select_from(members.join(conversations, conversations.c.id == members.c.conversation_id))
        .where(members.c.user_id == user)
    )
    if not with_hidden:
        page = page.where(HIDDEN == 0)
    page = page.order_by(members.c.pinned.desc(), ORDER_AT.desc(), members.c.conversation_id).limit(
        limit
    )
    paged = page.subquery("page")
    source = paged.join(
        members, and_(members.c.conversation_id == paged.c.cid, members.c.user_id == user)
    )
    # The total rides along: an uncorrelated subquery, computed once per
    # statement (a window over the page's own pass cost more on SQLite).
    return (
        _chat_list(source)
        .add_columns(total_unread(user).scalar_subquery().label("total_unread"))
        .order_by(paged.c.pin.desc(), paged.c.at.desc(), paged.c.cid)
    )


CHAT_LIST_MESSAGE = 19  # where MESSAGE_COLUMNS start in a CHAT_LIST row


def entry_from_row(row: Row[Any], replies: Mapping[Any, ReplyTo]) -> Conversation:
    """A chat-list entry from a ``CHAT_LIST`` row; ``replies`` previews what it quotes."""
    values = tuple(row)
    message_row = values[CHAT_LIST_MESSAGE : CHAT_LIST_MESSAGE + len(MESSAGE_COLUMNS)]
    last = None
    if message_row[2] is not None:  # its sender: there is a visible shown entry
        reply_seq = message_row[REPLY_SEQ]
        reply = None if reply_seq is None else replies.get((message_row[0], reply_seq))
        last = message_from_row(message_row, reply)
    is_group = row.conversation_kind == "group"
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
        uncounted=row.uncounted,
        mentioned=row.mentioned,
        state=state_from_row(row),
    )


def wanted_replies(rows: Sequence[Any], offset: int = 0) -> list[tuple[str, int]]:
    """The (conversation, seq) positions that the message rows at ``offset`` quote."""
    wanted = set()
    for row in rows:
        values = tuple(row)
        if values[offset + 2] is not None and values[offset + REPLY_SEQ] is not None:
            wanted.add((values[offset], values[offset + REPLY_SEQ]))
    return sorted(wanted)
