"""The store port: users, sessions, groups, conversations and messages, durably.

Guarantees every adapter gives:

- ``commit_batch`` stores a batch of sends and reads in ONE transaction
  (group commit): when it returns, every outcome it reports is durable, and
  when it raises, none is.
- Seqs are assigned inside that transaction from ``conversations.last_seq``:
  1, 2, 3, ... per conversation with no gap and no repeat, on any number of
  nodes sharing the database.
- A (sender, client_msg_id) is stored at most once; a repeat comes back as
  the original message with ``fresh=False``.
- The sender's read_seq moves to its message's seq in the same commit, and
  no read_seq ever moves backwards.
- Reads after a commit see it (read-your-writes across the store's pool).

The one adapter, ``store.sql.SqlStore``, speaks SQLite, PostgreSQL and
MySQL/MariaDB through SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tidings.chatlist import EntryChange, EntryState
from tidings.errors import TidingsError
from tidings.ids import ConversationId, ConversationRef, GroupId, UserId
from tidings.models import ChatList, Conversation, Group, Message, ReplyTo, User


@dataclass(frozen=True, slots=True)
class Forward:
    """The message a send forwards: its conversation and seq."""

    conversation: ConversationId
    seq: int


@dataclass(frozen=True, slots=True)
class SendRequest:
    sender: UserId
    conversation: ConversationRef
    body: str
    client_msg_id: str | None
    kind: str = "text"
    reply_to: int | None = None
    forward: Forward | None = None
    # Checked against the group's members in the commit; @all is checked by the service.
    mentions: tuple[UserId, ...] = ()
    mention_all: bool = False
    # PROTOCOL-v2 §2: an upload of the sender's; checked and attached in the commit.
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecallRequest:
    """Recall the message at ``target``; answered with the ``recall`` notice.

    ``sender`` None is a moderation recall by the business backend: the
    notice carries the message's own sender and no read position moves.
    A group's owner (and admins) may recall any message at any time, others
    their own within ``window_ms``; the store checks it in the batch. The
    notice's ``body`` is this text with ``{name}`` replaced by the display
    name of who recalls.
    """

    sender: UserId | None
    conversation: ConversationRef
    target: int
    client_msg_id: str | None
    body: str
    window_ms: int


@dataclass(frozen=True, slots=True)
class EditRequest:
    """Replace the text of the sender's own text message at ``target``."""

    sender: UserId
    conversation: ConversationRef
    target: int
    body: str
    client_msg_id: str | None
    window_ms: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An entry's result. ``fresh`` is False for a repeat of (sender, client_msg_id),
    or a recall of a message already recalled (the first recall's notice)."""

    message: Message
    fresh: bool
    # Members at commit time, who get the message event; empty for a repeat.
    recipients: tuple[UserId, ...]
    # For a recall or edit notice: its target as it reads after the notice.
    target: Message | None = None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    user: UserId
    conversation: ConversationRef
    seq: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    user: UserId
    conversation: ConversationId
    read_seq: int
    moved: bool
    # A read that moved nothing but cleared the entry's marked_unread (PROTOCOL-v2 §5).
    unmarked: bool = False


SendOutcome = StoredMessage | TidingsError
ReadOutcome = ReadResult | TidingsError
EntryRequest = SendRequest | RecallRequest | EditRequest
WriteRequest = SendRequest | RecallRequest | EditRequest | ReadRequest
WriteOutcome = StoredMessage | ReadResult | TidingsError


@dataclass(frozen=True, slots=True)
class SearchPosition:
    """Where a page of search results ends: the next page starts below it
    (results are ordered by ``(sent_at, conversation, seq)``, newest first)."""

    sent_at: int
    conversation: ConversationId
    seq: int


@dataclass(frozen=True, slots=True)
class SearchPage:
    messages: list[Message]
    next_before: SearchPosition | None  # None: this is the last page


@dataclass(frozen=True, slots=True)
class Membership:
    joined_seq: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class Readers:
    """A message's sender, its group's owner (None in a private chat), and the
    current members who joined before it, split by whether they read up to
    it (the sender among them, ids ascending)."""

    sender: UserId
    owner: UserId | None
    read_ids: list[UserId]
    unread_ids: list[UserId]


@dataclass(frozen=True, slots=True)
class MemberPosition:
    """Where a member stands in one conversation: what a chat-list cache rebuilds from."""

    conversation: ConversationId
    read_seq: int
    joined_seq: int
    joined_at: int


@dataclass(frozen=True, slots=True)
class ConversationHead:
    """A conversation's newest position and shown message, and what counts above.

    ``uncounted`` and ``mentions`` hold the rows above the lowest read position
    of any member (below it they can count for no one); ``mentions`` as
    (seq, user) with user 0 for @all.
    """

    conversation: ConversationId
    last_seq: int
    last_sent_at: int | None
    last_message: Message | None
    shown_seq: int = 0
    uncounted: tuple[int, ...] = ()
    mentions: tuple[tuple[int, int], ...] = ()
    group_name: str | None = None  # a group's name as of last_seq; None for a private chat


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A group after one change, who joined or left in it, and its ``system`` notice."""

    group: Group | None  # None: the last member left and the group is gone
    conversation: ConversationId = ConversationId("")
    joined: tuple[UserId, ...] = ()
    left: tuple[UserId, ...] = ()
    # The notice committed with the change (None when nothing changed, or the
    # group is gone); its recipients are the members after the change.
    notice: StoredMessage | None = None


@dataclass(frozen=True, slots=True)
class Roster:
    """A group as the store found it under the group's lock.

    What the service's rules decide on (``GroupRule``): the store applies a
    change only after the rule let it through, inside the same transaction,
    so no concurrent change can slip between rule and write.
    """

    conversation: ConversationId
    owner: UserId
    ranks: dict[UserId, int]  # member -> seniority (0 = the first to join)
    admins: frozenset[UserId] = frozenset()
    muted: dict[UserId, int] = field(default_factory=dict)  # member -> muted until (epoch ms)
    muted_all: bool = False
    dissolved: bool = False

    def manages(self, user: UserId | None) -> bool:
        """The owner and admins run the group; None is the business backend."""
        return user is None or user == self.owner or user in self.admins


# Called under the lock with the roster and the users a change concerns (for
# an add: those not in yet); raises TidingsError to refuse the change.
GroupRule = Callable[[Roster, Sequence[UserId]], None]


# What a GroupRequest changes (PROTOCOL-v2 §6); each is one ``system`` notice.
@dataclass(frozen=True, slots=True)
class CreateGroup:
    owner: UserId
    name: str
    member_ids: tuple[UserId, ...]


@dataclass(frozen=True, slots=True)
class AddMembers:
    user_ids: tuple[UserId, ...]


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """A member removed by another, or leaving when it is the actor."""

    user_id: UserId


@dataclass(frozen=True, slots=True)
class Rename:
    name: str


@dataclass(frozen=True, slots=True)
class Announce:
    text: str | None  # None clears the announcement


@dataclass(frozen=True, slots=True)
class MuteAll:
    on: bool


@dataclass(frozen=True, slots=True)
class SetAdmins:
    user_ids: tuple[UserId, ...]


@dataclass(frozen=True, slots=True)
class TransferOwner:
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Mute:
    user_id: UserId
    seconds: int


@dataclass(frozen=True, slots=True)
class Unmute:
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Dissolve:
    pass


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    """The integration API's delete: every member removed at once, the group and
    its history gone; no notice (nobody is left to see one)."""


GroupEdit = (
    CreateGroup
    | AddMembers
    | RemoveMember
    | Rename
    | Announce
    | MuteAll
    | SetAdmins
    | TransferOwner
    | Mute
    | Unmute
    | Dissolve
    | DeleteGroup
)


def _any_change(_roster: Roster, _users: Sequence[UserId]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class GroupRequest:
    """One change of a group, committed in one transaction with its notice.

    The writer commits it alone, between two batches in queue order, so its
    notice's events keep their place among the conversation's messages.
    """

    group: GroupId | None  # None for CreateGroup
    actor: UserId | None  # None: the business backend (integration API)
    edit: GroupEdit
    rule: GroupRule = _any_change


QueuedRequest = WriteRequest | GroupRequest
QueuedOutcome = WriteOutcome | GroupChange


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema to the latest migration."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``TidingsError(unavailable)`` unless the database answers."""

    async def commit_batch(
        self, requests: Sequence[WriteRequest], separator_gap_ms: int
    ) -> list[WriteOutcome]:
        """Apply sends, recalls, edits and reads in order, in one transaction; one
        outcome per request."""

    async def create_user(
        self, username: str, display_name: str, password_hash: str | None
    ) -> User: ...

    async def user(self, user_id: UserId) -> User | None: ...

    async def users(self, user_ids: Sequence[UserId]) -> dict[UserId, User]: ...

    async def credentials(self, username: str) -> tuple[User, str | None] | None:
        """The user with this username (any case) and its password hash."""

    async def create_session(self, token_hash: str, user_id: UserId) -> None: ...

    async def delete_session(self, token_hash: str) -> None: ...

    async def session_user(self, token_hash: str) -> UserId | None: ...

    async def change_group(self, request: GroupRequest, gap_ms: int = 0) -> GroupChange:
        """Apply one group change if its rule lets it, with its ``system`` notice
        at the conversation's next seq, in one transaction. Removing the last
        member deletes the group (no notice); the owner leaving hands the seat
        to the longest-standing member; unknown users are ``bad_request``."""

    async def group(self, group_id: GroupId) -> Group | None: ...

    async def is_admin(self, group_id: GroupId, user: UserId) -> bool:
        """Whether ``user`` is an admin (not the owner) of the group now."""

    async def list_users(self, after_id: int, limit: int) -> list[User]: ...

    async def set_display_name(self, user_id: UserId, display_name: str) -> User | None: ...

    async def delete_sessions_of(self, user_id: UserId) -> list[str]:
        """Revoke every token of a user; returns the hashes of those revoked."""

    async def password_hash(self, user_id: UserId) -> str | None:
        """The user's password hash; None for a user without a password, or no such user."""

    async def set_password_hash(
        self, user_id: UserId, password_hash: str, *, keep_session: str | None = None
    ) -> list[str]:
        """Store a new password hash and, in the same transaction, revoke every
        session of the user but ``keep_session`` (a token hash); returns the
        hashes of those revoked. No session made with the old password outlives
        the change but the one kept."""

    async def private_peers(self, user_id: UserId) -> list[UserId]:
        """The users with whom ``user_id`` has a private conversation."""

    async def peer_entries(
        self, user_id: UserId, peers: Sequence[UserId]
    ) -> dict[UserId, Conversation]:
        """Each of ``peers``' chat-list entry for its private conversation with
        ``user_id`` (those that exist)."""

    async def membership(self, conversation: ConversationId, user: UserId) -> Membership | None: ...

    async def joined_seqs(self, conversation: ConversationId) -> dict[UserId, int]:
        """Each current member's ``joined_seq``: it sees the messages above it."""

    async def readers(self, conversation: ConversationId, seq: int) -> Readers | None:
        """Who could see message ``seq`` and still belongs, with how far each
        has read, in one query (None: no such message). Exact as of the read."""

    async def history(
        self,
        conversation: ConversationId,
        member: UserId | None,
        *,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> list[Message]:
        """A page of messages, oldest first: the newest ``limit`` below ``before``,
        or the oldest above ``after``. With ``member``, only what that member may
        see (after it joined), and nothing if it is not a member."""

    async def search_messages(
        self,
        user: UserId,
        q: str,
        *,
        conversation: ConversationId | None,
        before: SearchPosition | None,
        limit: int,
    ) -> SearchPage:
        """PROTOCOL-v2 §7: up to ``limit`` countable messages the user can see now
        (a member now, after its join, not recalled) whose current text holds
        ``q`` in any case, newest first, below ``before``; in ``conversation``
        only if given (nothing when the user is not in it)."""

    async def chat_list(self, user: UserId, limit: int, *, with_hidden: bool = False) -> ChatList:
        """Pinned entries first, then the rest, newest first by the later of
        the entry's time and its draft's; hidden entries only ``with_hidden``.
        With ``total_unread`` (PROTOCOL-v2 §5): over the user's entries that
        are not muted, hidden or not, the sum of unread, an entry marked
        unread with none counting 1."""

    async def entry_states(self, user: UserId) -> dict[ConversationId, EntryState]:
        """The user's entries that keep any state (pinned, muted, marked unread,
        hidden, a draft): what a copy of the chat list that keeps positions
        only asks of SQL. Few rows: most entries keep none."""

    async def update_entry(
        self, user: UserId, conversation: ConversationId, change: EntryChange
    ) -> bool:
        """Apply ``change`` to the user's entry; False if the user has no such
        entry. Hiding records the conversation's last seq as it is now."""

    async def chat_entry(
        self, user: UserId, conversation: ConversationId
    ) -> Conversation | None: ...

    # The parts of the chat list, for a cache that keeps the list elsewhere.

    async def member_positions(self, user: UserId) -> list[MemberPosition]:
        """Every conversation the user is in, with its read and joined positions."""

    async def conversation_heads(
        self, conversation_ids: Sequence[ConversationId]
    ) -> list[ConversationHead]: ...

    async def replies(
        self, positions: Sequence[tuple[ConversationId, int]]
    ) -> dict[tuple[ConversationId, int], ReplyTo]:
        """What a reply shows of each message at these positions, as it reads now."""

    async def read_seqs(
        self, pairs: Sequence[tuple[ConversationId, UserId]]
    ) -> dict[tuple[ConversationId, UserId], int]:
        """The read_seq of each (conversation, member) pair that exists."""

    def deployment(self) -> DeploymentRecord:
        """Which database this is (identity, generation), for copies kept elsewhere."""

    def files(self) -> FileRecords:
        """The uploads' rows (PROTOCOL-v2 §3); their bytes are in a ``tidings.files`` store."""

    def push(self) -> PushRecord:
        """The users' push subscriptions (PROTOCOL-v2 §8)."""

    def archive(self) -> ArchiveRecord:
        """Archived history's manifest and moves (issue 23 §3, store/archive.py)."""

    def use_archive(self, segments: SegmentRows) -> None:
        """Read history and replies through archived segments from now on."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One upload as the database keeps it (``blob_key``: where its bytes are)."""

    id: str
    uploader: UserId
    name: str
    size: int
    content_type: str
    width: int | None
    height: int | None
    duration_ms: int | None
    blob_key: str
    thumbnail_key: str | None
    thumbnail_type: str | None
    digest: str
    created_at: int
    attached_at: int | None = None
    attach_seq: int = 0


@dataclass(frozen=True, slots=True)
class Orphan:
    """A file the collector found no message for: its row and blob keys."""

    id: str
    blob_key: str
    thumbnail_key: str | None
    # The row's attach_seq when it was found: deleted only if it has not moved.
    attach_seq: int


class FileRecords(Protocol):
    """The rows of uploads. Guarantees:

    - ``delete_orphan`` deletes a row only if, in its own statement, no
      message that is not recalled refers to the file and no send attached
      it since the collector found it (``attach_seq`` unmoved); a send
      attaches a file (``SendRequest.file_id``) by moving that column in the
      send's transaction. So whichever of a send and the collector commits
      first wins: the send then has its file, or fails with ``not_found``; a
      file is never deleted under a message.
    - ``secret`` answers the same value on every node, made once.
    """

    async def add(self, record: FileRecord) -> None: ...

    async def get(self, file_id: str) -> FileRecord | None: ...

    async def visible_to(self, file_id: str, user: UserId) -> bool:
        """Whether a message carrying the file, not recalled, is in a conversation
        ``user`` belongs to, after ``user`` joined it."""

    async def live(self, file_id: str) -> bool:
        """Whether the file may be served by a signed link: some message carries
        it and is not recalled, or none ever did (an upload not yet sent)."""

    async def orphans(self, cutoff: int, limit: int) -> list[Orphan]:
        """Files created and last attached before ``cutoff`` (epoch ms) that no
        message (not recalled) refers to: candidates for ``delete_orphan``."""

    async def delete_orphan(self, orphan: Orphan, cutoff: int) -> bool:
        """Delete the row if it is still that orphan (see above); whether it did."""

    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these blob keys a row names (as its blob or thumbnail)."""

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """The value kept under ``name``, ``make()``-d and stored if there is none."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """Which database this is, and which generation of it.

    The identity is random, made by the migration that created the row, and
    travels with every dump of the database. The generation moves on
    whenever the database may have gone back in time (``tidings restored``,
    or a node that finds a derived copy ahead of the database at start).
    Whatever is derived from the database elsewhere is keyed by both
    (``name``), so a copy of another database, or of this one before a
    restore, is never read again.
    """

    identity: str
    generation: int

    @property
    def name(self) -> str:
        """The part of a derived key namespace that names this database as it is now."""
        return f"{self.identity}.{self.generation}"


@dataclass(frozen=True, slots=True)
class SeqsLost:
    """A conversation a restore took back: clients may have seen up to ``copy_seq``."""

    conversation: ConversationId
    database_seq: int
    copy_seq: int


class DeploymentRecord(Protocol):
    async def current(self) -> Deployment: ...

    async def skip_lost_seqs(self, lost: Sequence[SeqsLost]) -> None:
        """Seqs go on after the highest one clients saw: a lost seq is never given again.

        Each conversation's ``last_seq`` moves up to ``copy_seq``; a member who
        had read all that survived has read up to it too (nothing to count).
        """

    async def next_generation(
        self, seen: Deployment, *, new_identity: bool = False
    ) -> Deployment: ...

    async def recently_sent(self, limit: int) -> list[ConversationId]: ...

    async def last_seqs(self, ids: Sequence[ConversationId]) -> dict[ConversationId, int]: ...


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's ``PushSubscription`` as stored: where to POST, and the keys to encrypt with."""

    user: UserId
    endpoint: str
    p256dh: str
    auth: str
    expiration_time: int | None = None


class PushRecord(Protocol):
    async def subscribe(self, subscription: PushSubscription, *, keep: int) -> None:
        """Store it, replacing any with the same endpoint (whoever's it was); the
        user's oldest go beyond ``keep``."""

    async def unsubscribe(self, user: UserId, endpoint: str) -> bool:
        """Forget the user's subscription at ``endpoint``; whether there was one."""

    async def forget(self, endpoint: str) -> None:
        """Forget the subscription at ``endpoint``, whoever's (the push service said it is gone)."""

    async def subscriptions(self, users: Sequence[UserId]) -> dict[UserId, list[PushSubscription]]:
        """Each of ``users``' subscriptions; users with none are left out."""


# -- the archive (issue 23 §3; store/archive.py is the SQL side) --------------

# A message row as the archive keeps it: every column of ``messages``, in this
# order (store/rows.py's MESSAGE_COLUMNS; store/archive.py checks they agree).
MESSAGE_FIELDS = (
    "conversation_id",
    "seq",
    "sender_id",
    "body",
    "client_msg_id",
    "sent_at",
    "time_separator",
    "kind",
    "reply_seq",
    "forward_conversation",
    "forward_seq",
    "forward_sender",
    "mentions",
    "mention_all",
    "target_seq",
    "recall_seq",
    "edited_at",
    "system",
    "file_id",
    "attachment",
)
SEQ_FIELD = MESSAGE_FIELDS.index("seq")

MessageRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """One archived range of a conversation: seqs ``low_seq``..``high_seq``, in one blob."""

    conversation: ConversationId
    low_seq: int
    high_seq: int
    message_count: int
    first_sent_at: int
    last_sent_at: int
    blob_key: str
    blob_size: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """Rows to archive: the oldest live messages of a conversation, oldest first,
    read after ``seen_last_seq``."""

    conversation: ConversationId
    seen_last_seq: int
    rows: list[MessageRow]


class SegmentRows(Protocol):
    """Reads the rows a segment's blob holds (service/archive.py, Parquet)."""

    async def rows(
        self,
        segment: Segment,
        low: int,
        high: int,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[MessageRow]:
        """The segment's rows with ``low < seq < high`` in ``MESSAGE_FIELDS``
        order, oldest first; with ``limit``, at most that many, the newest of
        them or the oldest. Raises ``LookupError`` if the blob is gone."""
        ...

    async def matching(self, segment: Segment, folded: str, above: int) -> list[MessageRow]:
        """The segment's rows with seq above ``above`` whose body or attachment,
        lower-cased, holds ``folded``: a superset of a search's results there
        (the caller re-checks each). Raises ``LookupError`` if the blob is gone."""
        ...


class ArchiveRecord(Protocol):
    """The archive's manifest and the moves in and out of the live table.

    Guarantees (store/archive.py says how): what is archived is a prefix of
    each conversation, never its newest message; ``commit`` records a
    segment and deletes its rows in one transaction, and refuses (None,
    nothing changed) when the rows changed since ``pending`` read them or
    another archiver recorded that range first; ``restore`` puts the rows of
    the conversation's newest segment back and forgets it in one
    transaction.
    """

    async def conversations_after(self, after: str, limit: int) -> list[ConversationId]: ...

    async def archived_conversations_after(
        self, after: str, limit: int
    ) -> list[ConversationId]: ...

    async def pending(
        self, conversation: ConversationId, cutoff_ms: int, limit: int
    ) -> Pending | None: ...

    async def commit(self, pending: Pending, blob_key: str, blob_size: int) -> Segment | None: ...

    async def segments_of(self, conversation: ConversationId) -> list[Segment]:
        """Newest first."""

    async def restore(self, segment: Segment, rows: Sequence[MessageRow]) -> bool: ...

    async def totals(self) -> tuple[int, int, int]:
        """Segments, messages and bytes in the archive."""
