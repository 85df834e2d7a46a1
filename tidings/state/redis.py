"""The chat list kept in Redis: the original design's per-user list, made exact.

The original design kept ``message_list:{user}`` and
``message_content:{user}_{type}_{id}`` in Redis and updated them with a
read-modify-write from PHP, which lost counts under concurrency. Here
(scripts and key layout in ``state.lua``):

- a message costs one update of its conversation's head and last message
  plus the sender's read position, whatever the group's size: unread is
  ``last_seq - read_seq``, computed when the list is read, never counted;
- every update is one Lua script per committed batch, applied after the
  commit and before the acks, and only moves positions forward;
- the user's index is the set of fields of one hash; reading a list is
  one script for the index and every conversation's head (one MGET), a
  sort here, and one script for the page's entries, read together, group
  names included (kept like heads: a rename's notice sets it, whichever node
  applies it); then display names from SQL by primary key, in one round trip
  when the page has a private chat (a profile changes them: PROTOCOL-v2 §9).

Redis is derived state, of one database as it is now: the namespace is
the database's identity and generation (``state.binding``), so a copy of
another database, or of this one before a restore, is never read.
Whatever is absent (a new Redis, a FLUSHALL, an expired key) is rebuilt
from SQL when a list is read, guarded by generations so a rebuild never
hides a newer update. Whatever may be
wrong is dropped whole by moving to a new namespace: this node does it
when it failed to update Redis after a commit (and reads SQL until then);
every node does it when another node stops reporting (it may have died
between a commit and its update). Until then the list lags by at most
that node's last batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.exc import SQLAlchemyError

from tidings.chatlist import PLAIN, EntryState, chat_entry, shown_time
from tidings.errors import TidingsError
from tidings.ids import (
    ConversationId,
    GroupRef,
    PrivateRef,
    UserId,
    parse_conversation,
)
from tidings.models import NOTICE_KINDS, ChatList, Conversation, Message, iso_ms
from tidings.nodes import NodeId, decode_report, is_live, registry_key
from tidings.redis_target import RedisTarget
from tidings.state import binding, lua
from tidings.state.claim import claim_prefix
from tidings.state.spread import SpreadCopy
from tidings.store import (
    GroupChange,
    QueuedOutcome,
    QueuedRequest,
    ReadResult,
    RecallRequest,
    SendRequest,
    Store,
    StoredMessage,
)

log = logging.getLogger(__name__)

# A Cluster client's own errors are not RedisErrors.
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
_BIND_FAILURES = (*_FAILURES, SQLAlchemyError)
_PAGE_ENTRY = 8  # values per entry in PAGE's answer
_NAMING_EVENTS = frozenset({"created", "renamed"})  # notices that carry the group's name


class RedisChatList:
    def __init__(
        self,
        target: RedisTarget,
        store: Store,
        *,
        node: NodeId,
        node_ttl: float = 15.0,
        key_ttl: int = 3600,
        timeout: float = 2.0,
    ) -> None:
        # A hung Redis must not hold the writer: every call gives up after
        # ``timeout`` and the cache stops vouching for itself.
        self._redis = target.connect(
            socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=10
        )
        self._store = store
        self._target = target
        # Bound at start to this database's identity and generation
        # (state.binding); until then the copy is neither read nor written.
        self._prefix = ""
        # What every script declares: the namespace's epoch, whose slot on a
        # Cluster holds the whole namespace (they all share its hash tag).
        self._keys: list[str] = []
        self._nodes_key = registry_key(target.shared)
        self._node = node
        self._node_ttl = node_ttl
        self._ttl = key_ttl
        self._apply = self._redis.register_script(lua.APPLY)
        self._invalidate = self._redis.register_script(lua.INVALIDATE)
        self._index = self._redis.register_script(lua.INDEX)
        self._page = self._redis.register_script(lua.PAGE)
        self._uncounted = self._redis.register_script(lua.UNCOUNTED)
        self._install = self._redis.register_script(lua.INSTALL)
        self._fill = self._redis.register_script(lua.FILL)
        self._bump = self._redis.register_script(lua.BUMP)
        self._reap = self._redis.register_script(lua.REAP)
        self._forget = self._redis.register_script(lua.FORGET)
        self._follow = self._redis.register_script(lua.FOLLOW_PRIMARY)
        # On a Cluster the copy spreads over the primaries (state.spread).
        self._spread = SpreadCopy(self._redis, key_ttl) if target.cluster else None  # type: ignore[arg-type]
        # True from a failed update until the namespace has been dropped,
        # and before the namespace is bound.
        self._stale = True
        self._bound = False
        # While the drop is on its way, updates go to Redis again: each lands
        # before it (and is dropped with the rest) or after it (and counts).
        self._dropping = False
        self._failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.rebuilds = 0  # users whose index was rebuilt from SQL (for tests and stats)

    @property
    def vouching(self) -> bool:
        return not self._stale

    async def start(self) -> None:
        try:
            await self._bind()
            self._stale = False  # the copy of this database as it is: kept, not dropped
        except _BIND_FAILURES as exc:
            log.warning("chat list: cannot bind the Redis copy yet (%s); serving from SQL", exc)
        except TidingsError:
            await self._redis.aclose()  # the node does not start: nothing is left open
            raise
        self._task = asyncio.create_task(self._watch(), name="redis-chat-list")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
        await self._redis.aclose()

    # -- updates --------------------------------------------------------------

    async def committed(
        self, requests: Sequence[QueuedRequest], outcomes: Sequence[QueuedOutcome]
    ) -> None:
        if self._stale and not self._dropping:
            return  # the namespace is to be dropped, and Redis may well hang
        heads: dict[str, _HeadUpdate] = {}
        reads: dict[tuple[int, str], list[int]] = {}  # (user, conversation) -> [seq, create]
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, GroupChange):
                # Joiners' and leavers' lists are rebuilt from SQL; the notice
                # moves the conversation's head (no one's read position).
                await self.members_changed([*outcome.joined, *outcome.left])
                if outcome.notice is not None:
                    message = outcome.notice.message
                    changed = heads.setdefault(message.conversation, _HeadUpdate(message.seq))
                    changed.add(message, None)
                    actor = message.system.get("actor") if message.system else None
                    if actor is not None and actor in outcome.notice.recipients:
                        _forward(reads, (actor, message.conversation), message.seq, False)
            elif isinstance(outcome, StoredMessage):
                if not outcome.fresh:
                    continue
                message = outcome.message
                cid = message.conversation
                head = heads.get(cid)
                if head is None:
                    head = heads[cid] = _HeadUpdate(message.seq)
                head.add(message, outcome.target)
                if isinstance(request, RecallRequest) and request.sender is None:
                    continue  # a moderation recall moves nobody's read position
                private = isinstance(parse_conversation(cid), PrivateRef)
                _forward(reads, (message.sender, cid), message.seq, private)
                ref = request.conversation if isinstance(request, SendRequest) else None
                if message.seq == 1 and isinstance(ref, PrivateRef):
                    peer = ref.peer_of(UserId(message.sender))
                    _forward(reads, (peer, cid), 0, True)
            elif isinstance(outcome, ReadResult) and outcome.moved:
                _forward(reads, (outcome.user, outcome.conversation), outcome.read_seq, False)
        if not heads and not reads:
            return
        try:
            if self._spread is not None:
                await self._spread.apply(
                    [[conversation, *head.args()] for conversation, head in heads.items()],
                    [[user, cid, seq, create] for (user, cid), (seq, create) in reads.items()],
                )
                return
            args: list[Any] = [self._prefix, self._ttl, len(heads)]
            for conversation, head in heads.items():
                args += [conversation, *head.args()]
            for (user, conversation), (seq, create) in reads.items():
                args += [user, conversation, seq, create]
            await self._apply(keys=self._keys, args=args)
        except _FAILURES as exc:
            self._lost("updating the chat list after a commit", exc)

    async def members_changed(self, users: Sequence[UserId]) -> None:
        if not users or (self._stale and not self._dropping):
            return
        try:
            if self._spread is not None:
                await self._spread.invalidate(users)
            else:
                await self._invalidate(keys=self._keys, args=[self._prefix, self._ttl, *users])
        except _FAILURES as exc:
            self._lost("dropping the lists of members who joined or left", exc)

    def _lost(self, doing: str, exc: BaseException) -> None:
        if not self._stale:
            log.warning(
                "chat list: Redis failed while %s (%s); serving chat lists from SQL "
                "until the Redis copy is dropped",
                doing,
                exc,
            )
        self._stale = True
        self._failures += 1
        self._wake.set()

    # -- reading ----------------------------------------------------------------

    async def chat_list(
        self,
        user: UserId,
        limit: int,
        states: Awaitable[Mapping[ConversationId, EntryState]],
        *,
        with_hidden: bool = False,
    ) -> ChatList | None:
        if self._stale:
            return None
        try:
            if self._spread is not None:
                return await self._spread_list(self._spread, user, limit, states, with_hidden)
            # At most: rebuild the index, fill its heads, then read (or a
            # change in between makes one more round).
            kept: Mapping[ConversationId, EntryState] | None = None  # awaited once
            for _ in range(4):
                reply = await self._index(keys=self._keys, args=[self._prefix, user, self._ttl])
                epoch, status = reply[0], reply[1]
                if status == b"u":
                    await self._rebuild_index(user, epoch, reply[2])
                elif status == b"c":
                    await self._fill_conversations(epoch, reply[2:])
                else:
                    if kept is None:
                        kept = await states
                    index = _read_index(reply[2], reply[3], limit, kept, with_hidden)
                    page = index.page
                    total = await self._total(epoch, index)
                    if total is None:
                        continue  # the namespace moved: read the index again
                    if not page:
                        return ChatList(conversations=[], total_unread=total)
                    values = await self._page(
                        keys=self._keys, args=[self._prefix, epoch, user, self._ttl, *page]
                    )
                    if values != 0:
                        entries = await self._entries(user, page, values, kept)
                        return ChatList(conversations=entries, total_unread=total)
            return None
        except _FAILURES as exc:
            # Stop asking a Redis that hangs (each read would wait out the
            # timeout); dropping the copy once it answers costs only rebuilds.
            self._lost("reading a chat list", exc)
            return None

    async def _total(self, epoch: bytes, index: _Index) -> int | None:
        """total_unread from the same index the page comes from: last seq less
        read seq of every entry not muted, less the seqs above the read seq
        that do not count, where there are any (one script); None: the
        namespace moved or a conversation was evicted, read it all again."""
        total = index.total
        if not index.asked:
            return total
        counts = await self._uncounted(
            keys=self._keys, args=[self._prefix, epoch, self._ttl, *index.asked]
        )
        if counts == 0:
            return None
        for (gap, marked), uncounted in zip(index.gaps, counts, strict=True):
            unread = gap - int(uncounted)
            total += unread if unread > 0 else int(marked)
        return total

    async def _spread_list(
        self,
        spread: SpreadCopy,
        user: UserId,
        limit: int,
        states: Awaitable[Mapping[ConversationId, EntryState]],
        with_hidden: bool,
    ) -> ChatList | None:
        """``chat_list`` on a Cluster (state.spread), in three rounds as on one
        server: the user's index (and the epoch), every listed head, then the
        page's shown messages, the uncounted seqs and the user's read seqs
        again. An update writes read seqs before heads; reading them after
        the heads means no head is newer than the read seq it is counted
        against (no one sees their own message as unread)."""
        kept: Mapping[ConversationId, EntryState] | None = None  # awaited once
        for _ in range(4):
            epoch, first = await spread.user_index_now(user)
            if first[0] == b"u":
                await self._rebuild_index(user, epoch, first[1])
                continue
            listed = _listed(first[1])
            heads = await spread.heads(epoch, listed)
            if heads[:1] == [b"c"]:
                await self._fill_conversations(epoch, heads[1:])
                continue
            if kept is None:
                kept = await states
            index = _read_index(first[1], heads, limit, kept, with_hidden)
            page = index.page
            asked = index.asked[0::2]
            fields = asked + page
            shown_entries = [
                (cid, index.joins.get(cid, b""), read)
                for cid, read in zip(page, index.page_reads, strict=True)
            ]
            got = await spread.read(epoch, user, shown_entries, index.asked, fields)
            if got is None:
                continue  # something was evicted: read it all again
            shown, above, reads = got
            moved = any(
                entry[0].split(b"|", 1)[0] != head.split(b"|", 1)[0]
                for entry, head in zip(shown, index.page_heads, strict=True)
            )
            if moved:
                # A page head is newer than the heads read before the read
                # seqs were: read those again, after it.
                reads = await spread.read_seqs(epoch, user, fields)
            if None in reads:
                continue  # left a conversation, or the index was dropped
            total = _spread_total(index, above, reads[: len(asked)])
            values = _spread_values(user, page, shown, reads[len(asked) :], index.joins)
            entries = await self._entries(user, page, values, kept) if page else []
            return ChatList(conversations=entries, total_unread=total)
        return None

    async def _rebuild_index(self, user: UserId, epoch: bytes, generation: bytes) -> None:
        self.rebuilds += 1
        fields: list[Any] = []
        for position in await self._store.member_positions(user):
            fields += [position.conversation, position.read_seq]
            if isinstance(parse_conversation(position.conversation), GroupRef):
                joined = f"{position.joined_seq}|{iso_ms(position.joined_at)}"
                fields += [f"j:{position.conversation}", joined]
        if self._spread is not None:
            await self._spread.install(epoch, user, generation, fields)
            return
        args: list[Any] = [self._prefix, epoch, user, generation, self._ttl, *fields]
        await self._install(keys=self._keys, args=args)

    async def _fill_conversations(self, epoch: bytes, missing: list[bytes]) -> None:
        generations = {
            ConversationId(missing[i].decode()): missing[i + 1] for i in range(0, len(missing), 2)
        }
        filled: list[list[Any]] = []
        for head in await self._store.conversation_heads(list(generations)):
            message = (
                b"" if head.last_message is None else msgspec.msgpack.encode(head.last_message)
            )
            sent_at = "" if head.last_sent_at is None else iso_ms(head.last_sent_at)
            # SQL is the state as of last_seq: every edit up to it is applied.
            shown = f"{head.last_seq}|{head.shown_seq}|{head.last_seq}|{sent_at}"
            # The name as of last_seq: read in the same statement as it.
            named = "" if head.group_name is None else f"{head.last_seq}|{head.group_name}"
            filled.append(
                [
                    head.conversation,
                    generations[head.conversation],
                    shown,
                    message,
                    ",".join(str(seq) for seq in head.uncounted),
                    ",".join(f"{seq}:{user}" for seq, user in head.mentions),
                    named,
                ]
            )
        if self._spread is not None:
            await self._spread.fill(epoch, filled)
            return
        args: list[Any] = [self._prefix, epoch, self._ttl]
        for values in filled:
            args += values
        await self._fill(keys=self._keys, args=args)

    async def _entries(
        self,
        user: UserId,
        page: list[bytes],
        values: list[bytes],
        states: Mapping[ConversationId, EntryState],
    ) -> list[Conversation]:
        refs = [parse_conversation(c.decode()) for c in page]
        peers = {r.id: r.peer_of(user) for r in refs if isinstance(r, PrivateRef)}
        # Display names as they are now, from SQL by primary key (none to read
        # on a page of groups only: their names came with PAGE).
        names = await self._store.users(list(peers.values())) if peers else {}
        unknown_reads = [
            (r.id, peers[r.id])
            for i, r in enumerate(refs)
            if isinstance(r, PrivateRef) and not values[i * _PAGE_ENTRY + 4]
        ]
        peer_reads = await self._store.read_seqs(unknown_reads)
        shown: list[Message | None] = []
        for i in range(len(refs)):
            head = _Head.parse(values[i * _PAGE_ENTRY + 2])
            joined_seq, _ = _joined(values[i * _PAGE_ENTRY + 1])
            message_b = values[i * _PAGE_ENTRY + 3]
            visible = head.shown_seq > joined_seq and message_b
            shown.append(msgspec.msgpack.decode(message_b, type=Message) if visible else None)
        shown = await self._fresh_replies(shown)
        entries = []
        for i, ref in enumerate(refs):
            if ref is None:
                continue
            read_b, join_b, head_b, _, peer_read_b, uncounted_b, mentioned_b, named_b = values[
                i * _PAGE_ENTRY : (i + 1) * _PAGE_ENTRY
            ]
            head = _Head.parse(head_b)
            read_seq = int(read_b)
            joined_seq, joined_at = _joined(join_b)
            if isinstance(ref, PrivateRef):
                peer: UserId | None = peers[ref.id]
                found = names.get(peers[ref.id])
                title = "" if found is None else found.display_name
                peer_read = (
                    int(peer_read_b) if peer_read_b else peer_reads.get((ref.id, peers[ref.id]))
                )
                group = None
            else:
                peer, peer_read, group = None, None, ref.group
                title = named_b.decode().split("|", 1)[1]
            entries.append(
                chat_entry(
                    conversation=ref.id,
                    title=title,
                    group_id=group,
                    peer_id=peer,
                    last_seq=head.last_seq,
                    read_seq=read_seq,
                    last_message=shown[i],
                    updated_at=shown_time(head.shown_seq, joined_seq, head.time, joined_at),
                    peer_read_seq=peer_read,
                    uncounted=int(uncounted_b),
                    mentioned=int(mentioned_b),
                    state=states.get(ref.id, PLAIN),
                )
            )
        return entries

    async def _fresh_replies(self, shown: list[Message | None]) -> list[Message | None]:
        """A kept message quotes another as it read then: preview it as it reads now."""
        quoting = [m for m in shown if m is not None and m.reply_to is not None]
        if not quoting:
            return shown
        replies = await self._store.replies(
            [(ConversationId(m.conversation), m.reply_to.seq) for m in quoting if m.reply_to]
        )
        fresh: list[Message | None] = []
        for message in shown:
            if message is not None and message.reply_to is not None:
                key = (ConversationId(message.conversation), message.reply_to.seq)
                message = msgspec.structs.replace(message, reply_to=replies.get(key))
            fresh.append(message)
        return fresh

    # -- recovery ---------------------------------------------------------------

    async def _watch(self) -> None:
        """Drop the namespace after a failure here, or a death elsewhere."""
        backoff = 0.2
        while not self._closed:
            try:
                if not self._bound:
                    # Updates were not applied meanwhile: the stale path below
                    # drops whatever the namespace held.
                    await self._bind()
                    continue
                if self._stale:
                    failures = self._failures
                    self._dropping = True
                    try:
                        await self._bump(keys=self._keys, args=[self._prefix])
                    finally:
                        self._dropping = False
                    # An update that failed meanwhile may have missed the new
                    # namespace: then drop it once more.
                    if self._failures == failures:
                        self._stale = False
                        log.info("chat list: Redis copy dropped; it is rebuilt from SQL as read")
                    continue
                await self._reap_dead_nodes()
                await self._follow_primary()
                if await self._generation_moved():
                    continue
                backoff = 0.2
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._node_ttl / 3)
                except TimeoutError:
                    pass
            except TidingsError as exc:  # the prefix is another deployment's: SQL it is
                log.error("chat list: %s", exc)
                await asyncio.sleep(self._node_ttl)
            except _BIND_FAILURES:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _bind(self) -> None:
        record = self._store.deployment()
        await claim_prefix(
            self._redis,
            self._target.shared,
            (await record.current()).identity,
            node=self._node,
            node_ttl=self._node_ttl,
        )
        self._prefix = await binding.bind(self._redis, self._target, record)
        self._keys = [lua.epoch_key(self._prefix)]
        if self._spread is not None:
            self._spread.bind(self._prefix)
        self._bound = True

    async def _generation_moved(self) -> bool:
        """Another node (or ``tidings restored``) moved the generation on: follow it.

        One primary-key read per node lease third. Until the new namespace
        is bound and dropped once (what this node skipped meanwhile is not
        in it), lists come from SQL.
        """
        current = await self._store.deployment().current()
        if binding.namespace(self._target, current) == self._prefix:
            return False
        log.warning(
            "chat list: the database is at generation %d now (restored?); "
            "the Redis copy of the one before is no longer read",
            current.generation,
        )
        self._stale = True
        self._bound = False
        return True

    async def _reap_dead_nodes(self) -> None:
        now = time.time()
        for node, raw in (await self._redis.hgetall(self._nodes_key)).items():
            report = decode_report(raw)
            if report is None or is_live(report, now, self._node_ttl):
                continue
            name = node.decode() if isinstance(node, bytes) else node
            if name == self._node:
                continue
            # The drop first, then the registry: a crash in between leaves the
            # report there, and the next node to look finds the drop done.
            if await self._reap(keys=self._keys, args=[self._prefix, name, raw]):
                log.warning(
                    "chat list: node %s stopped reporting; Redis copy dropped "
                    "(it is rebuilt from SQL as read)",
                    name,
                )
            await self._forget(keys=[self._nodes_key], args=[name, raw])

    async def _follow_primary(self) -> None:
        """Drop the copy when another Redis primary holds it now (a failover):
        the writes of its last moments may not have reached the replica. On a
        Cluster, any primary: the copy spreads over all of them."""
        if self._spread is not None:
            if await self._spread.failed_over():
                await self._bump(keys=self._keys, args=[self._prefix])
                log.warning(
                    "chat list: a Redis Cluster primary failed over; Redis copy dropped "
                    "(it is rebuilt from SQL as read)"
                )
            return
        if await self._follow(keys=self._keys, args=[self._prefix]):
            log.warning(
                "chat list: Redis failed over to another primary; Redis copy dropped "
                "(it is rebuilt from SQL as read)"
            )


def _spread_total(index: _Index, above: list[list[bytes]], reads: list[bytes]) -> int:
    """total_unread as ``_total`` counts it, from ``S_READ``'s uncounted seqs
    above the first read seqs (and '~') and the read seqs read after the
    heads: for each entry asked, the seqs in (read seq, last seq] that count."""
    total = index.total
    for n, ((gap, marked), seqs, read_b) in enumerate(zip(index.gaps, above, reads, strict=True)):
        last = int(index.asked[2 * n + 1]) + gap
        read = int(read_b)
        unread = last - read
        if len(seqs) > 1:  # not just '~'
            unread -= sum(1 for seq in seqs if seq != b"~" and read < int(seq) <= last)
        total += unread if unread > 0 else int(marked)
    return total


def _spread_values(
    user: UserId,
    page: list[bytes],
    shown: list[Any],
    reads: list[bytes],
    joins: Mapping[bytes, bytes],
) -> list[Any]:
    """PAGE's 8 values per entry from ``S_READ``'s answers and the read seqs
    read after them: uncounted seqs and mentions counted above them; no peer
    read seq (a peer's hash is in another slot: SQL gives it)."""
    me = str(user).encode()
    values: list[Any] = []
    for cid, read_b, (head, message, named, above_x, above_n) in zip(
        page, reads, shown, strict=True
    ):
        read = int(read_b)
        uncounted = {seq for seq in above_x if seq != b"~" and int(seq) > read}
        mentioned = 0
        for mention in above_n:
            seq, _, who = mention.partition(b":")
            if seq != b"~" and int(seq) > read and who in (me, b"0") and seq not in uncounted:
                mentioned += 1
        values += [read_b, joins.get(cid, b""), head, message, b""]
        values += [len(uncounted), mentioned, named]
    return values


def _listed(flat: list[bytes]) -> list[bytes]:
    """The conversations of an index hash's fields, in the hash's order."""
    return [f for f in flat[::2] if f != b"~" and f[:2] != b"j:"]


def _joined(join: bytes) -> tuple[int, str]:
    """``joined_seq|joined_at`` of a group member; private chats have none."""
    if not join:
        return 0, ""
    seq, _, at = join.decode().partition("|")
    return int(seq), at


class _Index(NamedTuple):
    """One pass over a user's index and its heads: the first page in the
    list's order, and the parts of total_unread (PROTOCOL-v2 §5)."""

    page: list[bytes]
    total: int  # entries not muted that are settled: marked ones with nothing above read
    asked: list[Any]  # (conversation, read seq) of entries not muted with seqs above read
    gaps: list[tuple[int, bool]]  # their last seq - read seq, and whether marked unread
    page_reads: list[bytes]  # the page's read seqs, heads and joins, as read
    page_heads: list[bytes]
    joins: dict[bytes, bytes]


def _read_index(
    flat: list[bytes],
    heads: list[bytes],
    limit: int,
    states: Mapping[ConversationId, EntryState],
    with_hidden: bool,
) -> _Index:
    """The page as SQL orders it (pinned first, then by the later of the
    entry's time and its draft's, then by id; hidden ones only
    ``with_hidden``), and what the total needs. Heads and times stay bytes
    (ISO times compare as bytes as they do as text): a list of 1,000 is
    1,000 turns of this loop on every read."""
    kept = {cid.encode(): state for cid, state in states.items()}
    joins: dict[bytes, bytes] = {}
    reads: list[tuple[bytes, bytes]] = []
    for i in range(0, len(flat), 2):
        field = flat[i]
        if field[:2] == b"j:":
            joins[field[2:]] = flat[i + 1]
        elif field != b"~":
            reads.append((field, flat[i + 1]))
    keyed: list[tuple[bool, bytes, bytes, bytes, bytes]] = []
    total = 0
    asked: list[Any] = []
    gaps: list[tuple[int, bool]] = []
    for (cid, read_b), raw in zip(reads, heads, strict=True):
        last_b, shown_b, _, at = raw.split(b"|", 3)
        state = kept.get(cid, PLAIN)
        if not state.muted:
            gap = int(last_b) - int(read_b)
            if gap > 0:
                asked += [cid, read_b]
                gaps.append((gap, state.marked_unread))
            elif state.marked_unread:
                total += 1
        if state.hidden and not with_hidden:
            continue
        join = joins.get(cid)
        if join is not None:
            joined_b, _, joined_at = join.partition(b"|")
            if int(shown_b) <= int(joined_b):
                at = joined_at  # nothing visible since joining: the join's time
        if state.draft is not None:
            drafted = state.draft.updated_at.encode()
            if drafted > at:
                at = drafted
        keyed.append((not state.pinned, at, cid, read_b, raw))
    keyed.sort(key=lambda row: row[2])
    keyed.sort(key=lambda row: row[1], reverse=True)
    keyed.sort(key=lambda row: row[0])
    first = keyed[:limit]
    page = [row[2] for row in first]
    return _Index(page, total, asked, gaps, [r[3] for r in first], [r[4] for r in first], joins)


class _Head(NamedTuple):
    """A conversation's head key: ``{last seq}|{shown seq}|{version}|{time}``."""

    last_seq: int
    shown_seq: int
    time: str

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        last, shown, _, time = raw.decode().split("|", 3)
        return cls(int(last), int(shown), time)


class _HeadUpdate:
    """What one batch changes of a conversation's head, x and n (``lua.APPLY``)."""

    def __init__(self, seq: int) -> None:
        self.last_seq = seq
        # The candidate for the shown entry: (shown seq, version, time, message).
        self.shown: tuple[int, int, str, Message] | None = None
        self.uncounted: list[int] = []
        self.mentions: list[str] = []
        self.named: tuple[int, str] | None = None  # the newest notice naming the group

    def add(self, message: Message, target: Message | None) -> None:
        self.last_seq = max(self.last_seq, message.seq)
        candidate = None
        if message.kind != "edit":
            candidate = (message.seq, message.seq, message.sent_at, message)
        elif target is not None:  # the edited message, should it be the shown one
            candidate = (target.seq, message.seq, target.sent_at, target)
        if candidate is not None and (self.shown is None or candidate[:2] > self.shown[:2]):
            self.shown = candidate
        if message.kind in NOTICE_KINDS:
            self.uncounted.append(message.seq)
            system = message.system or {}
            name = system.get("name")
            naming = system.get("event") in _NAMING_EVENTS and isinstance(name, str)
            if naming and (self.named is None or message.seq > self.named[0]):
                self.named = (message.seq, str(name))
            if message.kind == "recall" and message.target_seq is not None:
                self.uncounted.append(message.target_seq)
        elif message.mention_all:
            self.mentions.append(f"{message.seq}:0")
        else:
            self.mentions += [f"{message.seq}:{u}" for u in message.mentions if u != message.sender]

    def args(self) -> list[Any]:
        if self.shown is None:
            shown: list[Any] = [self.last_seq, 0, 0, "", b""]
        else:
            seq, version, at, message = self.shown
            shown = [self.last_seq, seq, version, at, msgspec.msgpack.encode(message)]
        named = "" if self.named is None else f"{self.named[0]}|{self.named[1]}"
        return [*shown, ",".join(map(str, self.uncounted)), ",".join(self.mentions), named]


def _forward(
    reads: dict[tuple[int, str], list[int]], key: tuple[int, str], seq: int, create: bool
) -> None:
    found = reads.get(key)
    if found is None:
        reads[key] = [seq, int(create)]
    else:
        found[0] = max(found[0], seq)
        found[1] |= int(create)
