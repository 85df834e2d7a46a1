"""Messages, history, read state and the chat list: the rules of a conversation.

Who may do what: a private conversation ``p:a-b`` belongs to a and b (it
starts with its first message); a group conversation to the group's
current members, each seeing what was sent after it joined. Sends and
reads go through the group-commit writer; everything else reads the store.
"""

from __future__ import annotations

from tidings.chatlist import chat_entry
from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError, bad_request, not_found, not_member
from tidings.events import Publisher
from tidings.ids import (
    MAX_BIGINT,
    ConversationRef,
    GroupRef,
    PrivateRef,
    UserId,
    parse_conversation,
)
from tidings.metrics import Metrics
from tidings.models import Conversation, Message, iso_ms, now_ms
from tidings.ratelimit import TokenBucket
from tidings.service.recipients import message_created, read_moved
from tidings.service.text import without_nul
from tidings.service.writer import GroupCommitWriter, OnFailed, OnStored, PendingWrite
from tidings.state import ChatListState
from tidings.store import ReadRequest, ReadResult, SendRequest, Store, StoredMessage, WriteOutcome

MAX_CLIENT_MSG_ID = 64
DEFAULT_PAGE = 50
MAX_PAGE = 200
DEFAULT_CHAT_LIST = 100
MAX_CHAT_LIST = 1000


class Conversations:
    def __init__(
        self,
        store: Store,
        broker: Publisher,
        settings: Settings,
        metrics: Metrics | None = None,
        state: ChatListState | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._broker = broker
        self._settings = settings
        self._user_buckets: dict[UserId, TokenBucket] = {}
        self.writer = GroupCommitWriter(
            store,
            self._publish,
            separator_gap_ms=int(settings.time_separator_seconds * 1000),
            max_batch=settings.write_batch_max,
            metrics=metrics,
            mirror=None if state is None else state.committed,
        )

    # -- sending ------------------------------------------------------------

    def queue_send(
        self,
        sender: UserId,
        conversation: str,
        body: str,
        client_msg_id: str | None,
        *,
        on_stored: OnStored,
        on_failed: OnFailed,
        origin: int | None = None,
    ) -> None:
        """Check a send and queue it; the callbacks answer it after the commit.

        Raises ``TidingsError`` at once for what can be refused without the
        store (bad fields, a private conversation of others, the rate limit).
        ``on_stored`` runs right after the commit, in commit order: the
        WebSocket edge queues its ack there so it keeps its place among events.
        """
        request = self._send_request(sender, conversation, body, client_msg_id)
        self.writer.enqueue(request, on_stored=on_stored, on_failed=on_failed, origin=origin)

    def _send_request(
        self, sender: UserId, conversation: str, body: str, client_msg_id: str | None
    ) -> SendRequest:
        ref = self._conversation(conversation)
        text = self._body(body)
        key = _client_msg_id(client_msg_id)
        if isinstance(ref, PrivateRef) and not ref.has(sender):
            raise not_member(ref.id)
        self._rate_limit(sender)
        return SendRequest(sender, ref, text, key)

    async def send(
        self, sender: UserId, conversation: str, body: str, client_msg_id: str | None = None
    ) -> StoredMessage:
        request = self._send_request(sender, conversation, body, client_msg_id)
        outcome = await self.writer.submit(request)
        assert isinstance(outcome, StoredMessage)
        return outcome

    # -- reading ------------------------------------------------------------

    async def mark_read(
        self, user: UserId, conversation: str, seq: int, *, origin: int | None = None
    ) -> Conversation:
        """Move the user's read_seq forward to ``seq`` (clamped to last_seq)."""
        ref = self._conversation(conversation)
        if not 0 <= seq <= MAX_BIGINT:
            raise bad_request("seq: a non-negative integer")
        if isinstance(ref, PrivateRef) and not ref.has(user):
            raise not_member(ref.id)
        outcome = await self.writer.submit(ReadRequest(user, ref, seq), origin=origin)
        assert isinstance(outcome, ReadResult)
        return await self.entry(user, ref)

    async def entry(self, user: UserId, ref: ConversationRef) -> Conversation:
        """The user's chat-list entry for one conversation."""
        found = await self._store.chat_entry(user, ref.id)
        if found is not None:
            return found
        if isinstance(ref, PrivateRef) and ref.has(user):
            return await self._unstarted(user, ref)
        raise await self._refusal(ref)

    async def history(
        self,
        user: UserId,
        conversation: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        ref = self._conversation(conversation)
        if before is not None and after is not None:
            raise bad_request("give before or after, not both")
        for name, value in (("before", before), ("after", after)):
            if value is not None and value < 0:
                raise bad_request(f"{name}: a non-negative integer")
        if limit is not None and limit < 1:
            raise bad_request("limit: a positive integer")
        size = min(limit or DEFAULT_PAGE, MAX_PAGE)
        if isinstance(ref, PrivateRef) and not ref.has(user):
            raise not_member(ref.id)
        # One query for a member's page; only an empty page needs to ask why
        # (not a member, no such group or user, or simply nothing there).
        found = await self._store.history(ref.id, user, before=before, after=after, limit=size)
        if not found:
            await self._check_readable(user, ref)
        return found

    async def chat_list(self, user: UserId, limit: int | None = None) -> list[Conversation]:
        if limit is not None and limit < 1:
            raise bad_request("limit: a positive integer")
        size = min(limit or DEFAULT_CHAT_LIST, MAX_CHAT_LIST)
        if self._state is not None:
            cached = await self._state.chat_list(user, size)
            if cached is not None:
                return cached
        return await self._store.chat_list(user, size)

    # -- rules --------------------------------------------------------------

    def _conversation(self, conversation: str) -> ConversationRef:
        ref = parse_conversation(conversation) if isinstance(conversation, str) else None
        if ref is None:
            raise not_found(
                f"no conversation {conversation!r}: use p:{{a}}-{{b}} with a < b, or g:{{group}}"
            )
        return ref

    def _body(self, body: str) -> str:
        if not body:
            raise bad_request("body: a non-empty string")
        if len(body) > self._settings.max_body_chars:
            raise TidingsError(
                ErrorCode.TOO_LARGE, f"body: at most {self._settings.max_body_chars} characters"
            )
        return without_nul(body, "body")

    def _rate_limit(self, user: UserId) -> None:
        rate = self._settings.rate_limit_user
        if rate <= 0:
            return
        bucket = self._user_buckets.get(user)
        if bucket is None:
            if len(self._user_buckets) > 10_000:
                self._user_buckets = {u: b for u, b in self._user_buckets.items() if not b.idle()}
            bucket = self._user_buckets[user] = TokenBucket(rate)
        if not bucket.take():
            raise TidingsError(ErrorCode.RATE_LIMITED, f"at most {rate:g} messages per second")

    async def _check_readable(self, user: UserId, ref: ConversationRef) -> None:
        """Raise why the user may not read the conversation, if it may not."""
        if isinstance(ref, PrivateRef) and not ref.has(user):
            raise not_member(ref.id)
        membership = await self._store.membership(ref.id, user)
        if isinstance(ref, PrivateRef):
            # Not started yet: empty, but only between two users who exist.
            if membership is None and await self._store.user(ref.peer_of(user)) is None:
                raise not_found(f"no user {ref.peer_of(user)}")
        elif membership is None:
            raise await self._refusal(ref)

    async def _refusal(self, ref: ConversationRef) -> TidingsError:
        if isinstance(ref, GroupRef) and await self._store.group(ref.group) is None:
            return not_found(f"no group {ref.group}")
        return not_member(ref.id)

    async def _unstarted(self, user: UserId, ref: PrivateRef) -> Conversation:
        """A private conversation before its first message: empty, not listed."""
        peer = await self._store.user(ref.peer_of(user))
        if peer is None:
            raise not_found(f"no user {ref.peer_of(user)}")
        return chat_entry(
            conversation=ref.id,
            title=peer.display_name,
            group_id=None,
            peer_id=peer.id,
            last_seq=0,
            read_seq=0,
            last_message=None,
            updated_at=iso_ms(now_ms()),
            peer_read_seq=0,
        )

    def _publish(self, pending: PendingWrite, outcome: WriteOutcome) -> None:
        """Runs right after each commit, in commit order (see the writer)."""
        if isinstance(outcome, StoredMessage):
            if outcome.fresh:
                self._broker.publish(message_created(outcome, pending.origin))
        elif isinstance(outcome, ReadResult) and outcome.moved:
            ref = pending.request.conversation
            peer = ref.peer_of(outcome.user) if isinstance(ref, PrivateRef) else None
            self._broker.publish(read_moved(outcome, peer, pending.origin))


def _client_msg_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_CLIENT_MSG_ID:
        raise bad_request(f"client_msg_id: a string of 1 to {MAX_CLIENT_MSG_ID} characters")
    return without_nul(value, "client_msg_id")
