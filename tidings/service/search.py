"""Message search (PROTOCOL-v2 §7): the rules of a query, and its opaque cursor.

What a user may find is what the user may read now: the store's query joins
the user's memberships (store/search.py). Here: the query's bounds, the
cursor, and why an empty answer in one conversation is an error.
"""

from __future__ import annotations

import base64
import binascii

from tidings.errors import bad_request, not_found, not_member
from tidings.ids import MAX_BIGINT, ConversationId, GroupRef, PrivateRef, UserId, parse_conversation
from tidings.models import SearchResults
from tidings.service.text import without_nul
from tidings.store import SearchPosition, Store

MAX_QUERY_CHARS = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 50


class Search:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def messages(
        self,
        user: UserId,
        q: str | None,
        *,
        conversation: str | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> SearchResults:
        """A page of the countable messages the user can see now whose current
        text holds ``q`` (trimmed) in any case, newest first."""
        text = search_text(q)
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise bad_request(f"limit: 1 to {MAX_LIMIT}")
        position = None if before is None else decode_cursor(before)
        ref = None
        if conversation is not None:
            ref = parse_conversation(conversation)
            if ref is None:
                raise not_found(f"no conversation {conversation!r}")
            if isinstance(ref, PrivateRef) and not ref.has(user):
                raise not_member(ref.id)
        page = await self._store.search_messages(
            user,
            text,
            conversation=None if ref is None else ref.id,
            before=position,
            limit=limit or DEFAULT_LIMIT,
        )
        if ref is not None and not page.messages:
            # As history answers: only an empty page asks whether the user may look.
            await self._check_member(user, ref)
        cursor = None if page.next_before is None else encode_cursor(page.next_before)
        return SearchResults(messages=page.messages, next_before=cursor)

    async def _check_member(self, user: UserId, ref: PrivateRef | GroupRef) -> None:
        if await self._store.membership(ref.id, user) is not None:
            return
        if isinstance(ref, PrivateRef):
            # Not started yet: nothing to find, but only with a user who exists.
            if await self._store.user(ref.peer_of(user)) is None:
                raise not_found(f"no user {ref.peer_of(user)}")
            return
        if await self._store.group(ref.group) is None:
            raise not_found(f"no group {ref.group}")
        raise not_member(ref.id)


def search_text(q: str | None) -> str:
    """The query as matched: trimmed of white space at both ends, then 1 to 100
    characters (a search box's stray spaces find nothing more or less)."""
    text = (q or "").strip()
    if not text or len(text) > MAX_QUERY_CHARS:
        raise bad_request(f"q: 1 to {MAX_QUERY_CHARS} characters (white space at the ends aside)")
    if any("\ud800" <= c <= "\udfff" for c in text):
        # No database stores half a character; say so rather than fail there.
        raise bad_request("q: a lone surrogate is not text")
    return without_nul(text, "q")


# The cursor is a position in the results' order, (sent_at, conversation,
# seq), in base64url: opaque to clients, checked when it comes back. It
# grants nothing: the next page is filtered by what the user may see then,
# like the first, so a made-up or foreign cursor only moves where a page starts.


def encode_cursor(position: SearchPosition) -> str:
    raw = f"{position.sent_at}.{position.seq}.{position.conversation}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SearchPosition:
    refused = bad_request("before: give a next_before of an earlier search")
    if not cursor or len(cursor) > 200:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise refused from None
    sent_at, _, rest = raw.partition(".")
    seq, _, conversation = rest.partition(".")
    if not (sent_at.isascii() and sent_at.isdigit() and seq.isascii() and seq.isdigit()):
        raise refused
    ref = parse_conversation(conversation)
    if ref is None or int(sent_at) > MAX_BIGINT or int(seq) > MAX_BIGINT:
        raise refused
    return SearchPosition(int(sent_at), ConversationId(ref.id), int(seq))
