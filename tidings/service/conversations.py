"""Messages, history, read state and the chat list: the rules of a conversation.

Who may do what: a private conversation ``p:a-b`` belongs to a and b (it
starts with its first message); a group conversation to the group's
current members, each seeing what was sent after it joined. Sends and
reads go through the group-commit writer; everything else reads the store.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tidings.chatlist import chat_entry
from tidings.config import Settings
from tidings.errors import (
    ErrorCode,
    TidingsError,
    bad_request,
    forbidden,
    not_found,
    not_member,
)
from tidings.events import EntryChanged, Publisher
from tidings.ids import (
    MAX_BIGINT,
    ConversationId,
    ConversationRef,
    GroupRef,
    PrivateRef,
    UserId,
    parse_conversation,
)
from tidings.metrics import Metrics
from tidings.models import Conversation, Message, ReadBy, iso_ms, now_ms
from tidings.ratelimit import TokenBucket
from tidings.service.archive import Archiver
from tidings.service.recipients import group_events, message_created, read_moved
from tidings.service.text import without_nul
from tidings.service.writer import GroupCommitWriter, OnFailed, OnStored, PendingWrite
from tidings.state import ChatListState
from tidings.store import (
    EditRequest,
    EntryRequest,
    Forward,
    GroupChange,
    QueuedOutcome,
    ReadRequest,
    ReadResult,
    RecallRequest,
    SendRequest,
    Store,
    StoredMessage,
)

log = logging.getLogger(__name__)

MAX_CLIENT_MSG_ID = 64
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_MENTIONS = 50
# PROTOCOL-v2 §2: the kinds a send with a file_id may have.
FILE_KINDS = frozenset({"image", "file", "voice"})


@dataclass(frozen=True, slots=True)
class Extras:
    """What a send may carry beside its body (PROTOCOL-v2 §2)."""

    kind: str | None = None
    reply_to: int | None = None
    forward: tuple[str, int] | None = None  # (conversation, seq)
    mentions: tuple[int, ...] = ()
    mention_all: bool = False
    file_id: str | None = None

    @staticmethod
    def of(
        kind: str | None,
        reply_to: int | None,
        forward: tuple[str, int] | None,
        mentions: Sequence[int],
        mention_all: bool,
        file_id: str | None = None,
    ) -> Extras:
        """The extras of a send as an edge decoded them; ``PLAIN`` for a v1 send."""
        plain = kind is None and reply_to is None and forward is None and file_id is None
        if plain and not mentions and not mention_all:
            return PLAIN
        return Extras(kind, reply_to, forward, tuple(mentions), mention_all, file_id)


PLAIN = Extras()


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
        self._archiver: Archiver | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self.writer = GroupCommitWriter(
            store,
            self._publish,
            separator_gap_ms=int(settings.time_separator_seconds * 1000),
            max_batch=settings.largest_batch,
            metrics=metrics,
            mirror=None if state is None else state.committed,
        )

    # -- sending ------------------------------------------------------------

    def queue(
        self,
        request: EntryRequest,
        *,
        on_stored: OnStored,
        on_failed: OnFailed,
        origin: int | None = None,
    ) -> None:
        """Queue a checked send, recall or edit; the callbacks answer it after the commit.

        Check it first (``send_request``, ``recall_request``, ``edit_request``:
        they raise ``TidingsError`` at once for what can be refused without
        the store). ``on_stored`` runs right after the commit, in commit
        order: the WebSocket edge queues its ack there so it keeps its place
        among events.
        """
        if self._archiver is not None and _archived_references(request):
            on_failed = self._unarchiving(request, on_stored, on_failed, origin)
        self.writer.enqueue(request, on_stored=on_stored, on_failed=on_failed, origin=origin)

    def use_archive(self, archiver: Archiver) -> None:
        """Writes that name an archived message bring its segment back and run again."""
        self._archiver = archiver

    def _unarchiving(
        self,
        request: EntryRequest,
        on_stored: OnStored,
        on_failed: OnFailed,
        origin: int | None,
    ) -> OnFailed:
        """``on_failed`` for a write that names older messages: when it failed for
        want of one, restore those that are archived and queue it once more."""

        def failed(error: TidingsError) -> None:
            if error.code not in (ErrorCode.NOT_FOUND, ErrorCode.BAD_REQUEST):
                on_failed(error)
                return
            task = asyncio.create_task(retry(error))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

        async def retry(error: TidingsError) -> None:
            brought = await self._bring_back(request)
            if not brought:
                on_failed(error)
                return
            self.writer.enqueue(request, on_stored=on_stored, on_failed=on_failed, origin=origin)

        return failed

    async def _bring_back(self, request: EntryRequest) -> bool:
        """Restore the archived messages the write names; whether any came back.
        A failure here answers the write with its first refusal, never hangs it."""
        archiver = self._archiver
        if archiver is None:
            return False
        brought = False
        try:
            for conversation, seq in _archived_references(request):
                brought = await archiver.bring_back(conversation, seq) or brought
        except Exception:
            log.exception("could not bring archived messages back for a write")
            return False
        return brought

    def send_request(
        self,
        sender: UserId,
        conversation: str,
        body: str | None,
        client_msg_id: str | None,
        extras: Extras = PLAIN,
    ) -> SendRequest:
        """A send checked as far as it can be without the store.

        Who may @all (the group's owner) is checked by the store, in the batch.
        """
        ref = self._conversation(conversation)
        key = _client_msg_id(client_msg_id)
        if isinstance(ref, PrivateRef) and not ref.has(sender):
            raise not_member(ref.id)
        if extras is PLAIN:
            self._rate_limit(sender)
            return SendRequest(sender, ref, self._body(body), key)
        forward = None
        kind = "text"
        if extras.forward is not None:
            if body is not None or extras.kind is not None or extras.file_id is not None:
                raise bad_request("forward: no body, file_id or kind beside it")
            source, seq = extras.forward
            source_ref = self._conversation(source)
            if isinstance(source_ref, PrivateRef) and not source_ref.has(sender):
                raise not_member(source_ref.id)
            forward = Forward(source_ref.id, _seq(seq, "forward.seq"))
            text = ""
        elif extras.file_id is not None:
            # PROTOCOL-v2 §2: whose file it is and whether the kind fits it is
            # checked in the commit, where the file's row is locked.
            kind = "file" if extras.kind is None else extras.kind
            if kind not in FILE_KINDS:
                raise bad_request(f"kind: {kind!r} carries no file; use image, file or voice")
            if not isinstance(extras.file_id, str) or not 1 <= len(extras.file_id) <= 32:
                raise not_found(f"file_id: no file {extras.file_id!r} uploaded by you")
            if kind == "voice" and body:
                raise bad_request("body: a voice message has no caption")
            text = "" if not body else self._body(body)
        else:
            if extras.kind not in (None, "text"):
                raise bad_request(f"kind: {extras.kind!r} needs an uploaded file (file_id)")
            text = self._body(body)
        reply_to = None if extras.reply_to is None else _seq(extras.reply_to, "reply_to")
        mentions = tuple(dict.fromkeys(extras.mentions))
        if isinstance(ref, PrivateRef) and (mentions or extras.mention_all):
            raise bad_request("mentions: only in a group")
        if len(mentions) > MAX_MENTIONS:
            raise bad_request(f"mentions: at most {MAX_MENTIONS} distinct user ids")
        if any(not 0 < m <= MAX_BIGINT for m in mentions):
            raise bad_request("mentions: user ids, positive integers")
        self._rate_limit(sender)
        return SendRequest(
            sender,
            ref,
            text,
            key,
            reply_to=reply_to,
            forward=forward,
            mentions=tuple(UserId(m) for m in mentions),
            mention_all=extras.mention_all,
            kind=kind,
            file_id=extras.file_id if kind in FILE_KINDS else None,
        )

    async def send(
        self,
        sender: UserId,
        conversation: str,
        body: str | None,
        client_msg_id: str | None = None,
        extras: Extras = PLAIN,
    ) -> StoredMessage:
        request = self.send_request(sender, conversation, body, client_msg_id, extras)
        return await self.submit(request)

    async def submit(self, request: EntryRequest) -> StoredMessage:
        try:
            outcome = await self.writer.submit(request)
        except TidingsError as exc:
            # A reply, forward, recall or edit of an archived message: bring it
            # back into the live table and run the write once more.
            if exc.code not in (ErrorCode.NOT_FOUND, ErrorCode.BAD_REQUEST):
                raise
            if not _archived_references(request) or not await self._bring_back(request):
                raise
            outcome = await self.writer.submit(request)
        assert isinstance(outcome, StoredMessage)
        return outcome

    def limits(self) -> dict[str, float | int]:
        """``GET /api/v1/limits``: what a client checks before it offers an action."""
        settings = self._settings
        return {
            "max_body_chars": settings.max_body_chars,
            "max_mentions": MAX_MENTIONS,
            "recall_seconds": settings.recall_seconds,
            "edit_seconds": settings.edit_seconds,
        }

    # -- recall and edit ----------------------------------------------------

    def recall_request(
        self,
        actor: UserId | None,
        conversation: str,
        seq: int,
        client_msg_id: str | None = None,
    ) -> RecallRequest:
        """A recall by ``actor`` (None: the business backend, a moderation recall).

        Who may recall what (its sender within the window, a group's owner
        any time) is checked by the store, in the batch, with the names.
        """
        ref = self._conversation(conversation)
        target = _seq(seq, "seq")
        key = _client_msg_id(client_msg_id)
        window_ms = int(self._settings.recall_seconds * 1000)
        if actor is None:
            return RecallRequest(None, ref, target, None, "A message was recalled", window_ms)
        if isinstance(ref, PrivateRef) and not ref.has(actor):
            raise not_member(ref.id)
        self._rate_limit(actor)
        return RecallRequest(actor, ref, target, key, "{name} recalled a message", window_ms)

    async def recall(
        self, actor: UserId | None, conversation: str, seq: int, client_msg_id: str | None = None
    ) -> StoredMessage:
        return await self.submit(self.recall_request(actor, conversation, seq, client_msg_id))

    def edit_request(
        self,
        actor: UserId,
        conversation: str,
        seq: int,
        body: str | None,
        client_msg_id: str | None = None,
    ) -> EditRequest:
        ref = self._conversation(conversation)
        target = _seq(seq, "seq")
        key = _client_msg_id(client_msg_id)
        if isinstance(ref, PrivateRef) and not ref.has(actor):
            raise not_member(ref.id)
        text = self._body(body)
        self._rate_limit(actor)
        window_ms = int(self._settings.edit_seconds * 1000)
        return EditRequest(actor, ref, target, text, key, window_ms)

    async def edit(
        self,
        actor: UserId,
        conversation: str,
        seq: int,
        body: str | None,
        client_msg_id: str | None = None,
    ) -> StoredMessage:
        return await self.submit(self.edit_request(actor, conversation, seq, body, client_msg_id))

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
        entry = await self.entry(user, ref)
        if outcome.unmarked:
            # Nothing moved, so no read event: the other devices learn of the
            # cleared mark from the entry (PROTOCOL-v2 §5).
            self._broker.publish(EntryChanged(user, entry, origin))
        return entry

    async def entry(self, user: UserId, ref: ConversationRef) -> Conversation:
        """The user's chat-list entry for one conversation."""
        found = await self._store.chat_entry(user, ref.id)
        if found is not None:
            return found
        if isinstance(ref, PrivateRef) and ref.has(user):
            return await self._unstarted(user, ref)
        raise await self._refusal(ref)

    async def read_by(self, user: UserId, conversation: str, seq: int) -> ReadBy:
        """PROTOCOL-v2 §6's read-by of message ``seq``: for its sender, and in
        a group for the owner (and, with roles, its admins); 403 otherwise.

        The members who could see it (joined before it) and still belong,
        the sender left out, split by ``read_seq >= seq``: read from SQL in
        one query, so exact as of the answer.
        """
        ref = self._conversation(conversation)
        if not 0 < seq <= MAX_BIGINT:
            raise bad_request("seq: a positive integer")
        if isinstance(ref, PrivateRef) and not ref.has(user):
            raise not_member(ref.id)
        found = await self._store.readers(ConversationId(ref.id), seq)
        if found is None or not _holds(found.read_ids, user) and not _holds(found.unread_ids, user):
            await self._check_readable(user, ref)  # not a member: 403 or 404
            raise not_found(f"no message {seq} in {ref.id}")  # none, or before one joined
        admin = isinstance(ref, GroupRef) and await self._store.is_admin(ref.group, user)
        if user != found.sender and user != found.owner and not admin:
            raise forbidden("only its sender (or a group's owner and admins) sees who read it")
        read_ids = [int(u) for u in found.read_ids if u != found.sender]
        unread_ids = [int(u) for u in found.unread_ids if u != found.sender]
        return ReadBy(
            seq=seq,
            read=len(read_ids),
            unread=len(unread_ids),
            read_ids=read_ids,
            unread_ids=unread_ids,
        )

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

    # -- rules --------------------------------------------------------------

    def _conversation(self, conversation: str) -> ConversationRef:
        ref = parse_conversation(conversation) if isinstance(conversation, str) else None
        if ref is None:
            raise not_found(
                f"no conversation {conversation!r}: use p:{{a}}-{{b}} with a < b, or g:{{group}}"
            )
        return ref

    def _body(self, body: str | None) -> str:
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

    def _publish(self, pending: PendingWrite, outcome: QueuedOutcome) -> None:
        """Runs right after each commit, in commit order (see the writer)."""
        if isinstance(outcome, GroupChange):
            for event in group_events(outcome, pending.origin):
                self._broker.publish(event)
        elif isinstance(outcome, StoredMessage):
            if outcome.fresh:
                self._broker.publish(message_created(outcome, pending.origin))
        elif isinstance(outcome, ReadResult) and outcome.moved:
            assert isinstance(pending.request, ReadRequest)
            ref = pending.request.conversation
            peer = ref.peer_of(outcome.user) if isinstance(ref, PrivateRef) else None
            self._broker.publish(read_moved(outcome, peer, pending.origin))


def _holds(ascending: list[UserId], user: UserId) -> bool:
    """Whether ``user`` is in an ascending list (a group's 5,000 ids: bisected)."""
    at = bisect.bisect_left(ascending, user)
    return at < len(ascending) and ascending[at] == user


def _seq(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BIGINT:
        raise bad_request(f"{name}: a positive integer (a message's seq)")
    return value


def _client_msg_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_CLIENT_MSG_ID:
        raise bad_request(f"client_msg_id: a string of 1 to {MAX_CLIENT_MSG_ID} characters")
    return without_nul(value, "client_msg_id")


def _archived_references(request: EntryRequest) -> list[tuple[ConversationId, int]]:
    """The older messages a write names, which may be archived."""
    if isinstance(request, SendRequest):
        named = []
        if request.reply_to is not None:
            named.append((ConversationId(request.conversation.id), request.reply_to))
        if request.forward is not None:
            named.append((request.forward.conversation, request.forward.seq))
        return named
    return [(ConversationId(request.conversation.id), request.target)]
