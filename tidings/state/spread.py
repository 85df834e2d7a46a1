"""The chat-list copy spread over a Redis Cluster's primaries (docs/redis-cluster-plan.md §6).

On one Redis server the copy of a database lives under one namespace and
every operation is one script (``state.lua``). On a Cluster that would put
the whole copy, and every list read's work, on the one primary owning the
namespace's slot. Here each conversation's keys carry its own hash tag and
each user's theirs (``lua._SPREAD``), so the copy spreads over the primaries:

- the epoch stays one key in the namespace's slot; every operation GETs it
  first and names it in its scripts' arguments;
- an operation's keys are grouped by the primary that owns their slots (the
  client's slot map) and each group is one script call on that primary
  (``allow-cross-slot-keys``), all groups at once: a batch of 500 chats costs
  three calls on three primaries, not a thousand (one per slot);
- an update goes users first, then conversations, and a list read reads
  heads first, then the user's read seqs: whatever a reader sees between
  the two halves of an update, a head is never newer than the read seq it
  is counted against, so no one sees their own message as unread.

A call that fails (a primary down, a slot moving, a stale slot map) raises:
the caller treats it as any failed update (drop the copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError

from tidings.redis_target import FAILED_OVER
from tidings.state import lua

if TYPE_CHECKING:
    from redis.asyncio.cluster import ClusterNode, RedisCluster


class SpreadCopy:
    """The ``lua.S_*`` scripts, one call per primary, and the copy's epoch."""

    def __init__(self, redis: RedisCluster, ttl: int) -> None:
        self._redis = redis
        self._ttl = ttl
        self._plain = ""
        self._epoch_key = ""
        # The epoch as last read: a list read GETs it beside its first call,
        # made with this one, instead of before it (one round trip less).
        self._epoch: bytes | None = None
        # Each conversation's and user's primary by name, for as long as the client's
        # slot map is the one it was looked up in (``_by_primary``).
        self._primary_of: dict[tuple[str, bytes | str | int], str] = {}
        self._nodes: dict[str, ClusterNode] = {}
        self._owners_seen: object = None

    def bind(self, namespace: str) -> None:
        """``namespace``: the one-slot form, ``{<plain>}:``; the epoch key stays in it."""
        self._plain = plain_of(namespace)
        self._epoch_key = lua.epoch_key(namespace)
        self._epoch = None
        self._primary_of.clear()

    # -- names -------------------------------------------------------------------

    def conversation_key(self, family: str, conversation: str | bytes, epoch: bytes) -> str:
        return conversation_key(self._plain, family, conversation, epoch)

    def user_key(self, family: str, user: int | str | bytes, epoch: bytes) -> str:
        return f"{{{self._plain}u:{_text(user)}}}{_text(epoch)}:{family}"

    # -- the epoch ----------------------------------------------------------------

    async def epoch(self) -> bytes:
        """The namespace in use; a fresh or flushed Redis gets a new one."""
        found = await self._redis.get(self._epoch_key)
        if found is None:
            await self._redis.set(self._epoch_key, str(time.time_ns() // 1000), nx=True)
            found = await self._redis.get(self._epoch_key)
        if found is None:
            raise ConnectionError("the chat list's epoch vanished as it was set")
        epoch = found.encode() if isinstance(found, str) else found
        self._epoch = epoch
        return epoch

    async def user_index_now(self, user: int) -> tuple[bytes, list[Any]]:
        """The epoch and ``user_index`` in it. The epoch is read beside the
        index, which is read in the epoch last seen; when that one is gone,
        the index is read again in the new one. Either way the epoch was read
        after the call began, as when it is read first."""
        guess = self._epoch
        if guess is not None:
            epoch, found = await asyncio.gather(self.epoch(), self.user_index(guess, user))
            if epoch == guess:
                return epoch, found
        epoch = await self.epoch()
        return epoch, await self.user_index(epoch, user)

    # -- updates ------------------------------------------------------------------

    async def apply(self, heads: Sequence[list[Any]], reads: Sequence[list[Any]]) -> None:
        """One committed batch: ``reads`` (user, conversation, seq, create) first,
        then ``heads`` (APPLY's 9 values per conversation).

        The epoch is read beside the user half, which goes to the epoch last
        seen; when that one is gone, the user half goes again to the new one
        (an update applied twice changes nothing: seqs only move up). Either
        way both halves land in an epoch read after the commit."""
        guess = self._epoch
        if reads and guess is not None:
            epoch, _ = await asyncio.gather(self.epoch(), self._apply_reads(guess, reads))
            if epoch != guess:
                await self._apply_reads(epoch, reads)
        else:
            epoch = await self.epoch()
            if reads:
                await self._apply_reads(epoch, reads)
        if heads:
            await self._each(lua.S_APPLY_HEADS, epoch, self._groups(heads, epoch))

    async def _apply_reads(self, epoch: bytes, reads: Sequence[list[Any]]) -> None:
        await self._each(lua.S_APPLY_READS, epoch, self._groups(reads, epoch, users=True))

    async def invalidate(self, users: Sequence[int]) -> None:
        epoch = await self.epoch()
        groups = self._groups([[u] for u in users], epoch, users=True)
        await self._each(lua.S_INVALIDATE, epoch, groups)

    # -- reading ------------------------------------------------------------------

    async def user_index(self, epoch: bytes, user: int) -> list[Any]:
        """[b'u', generation] when the user's index is absent, else [b'ok', fields]."""
        key = self.user_key("u", user, epoch)
        answer: list[Any] = await self._call(
            lua.S_USER_INDEX, self._owner(key), key, [self._plain, epoch, self._ttl, user]
        )
        return answer

    async def install(self, epoch: bytes, user: int, generation: bytes, fields: list[Any]) -> None:
        key = self.user_key("u", user, epoch)
        args = [self._plain, epoch, self._ttl, user, generation, *fields]
        await self._call(lua.S_INSTALL, self._owner(key), key, args)

    async def heads(self, epoch: bytes, conversations: Sequence[bytes]) -> list[Any]:
        """Each conversation's head in order, or [b'c', conversation, generation, ...]
        for those absent."""
        groups = self._by_primary(conversations)
        calls = [
            self._call(
                lua.S_HEADS,
                node,
                self.conversation_key("h", conversations[at[0]], epoch),
                [self._plain, epoch, self._ttl, b" ".join([conversations[i] for i in at])],
            )
            for node, at in groups
        ]
        answers = await asyncio.gather(*calls)
        missing: list[Any] = [b"c"]
        heads: list[Any] = [None] * len(conversations)
        for (_, at), answer in zip(groups, answers, strict=True):
            if answer[0] == b"c":
                missing += answer[1:]
            else:
                for i, head in zip(at, answer[1:], strict=True):
                    heads[i] = head
        return missing if len(missing) > 1 else heads

    async def fill(self, epoch: bytes, conversations: Sequence[list[Any]]) -> None:
        """FILL's 7 values per conversation."""
        await self._each(lua.S_FILL, epoch, self._groups(conversations, epoch))

    async def read(
        self,
        epoch: bytes,
        user: int,
        page: Sequence[tuple[bytes, bytes, bytes]],
        asked: Sequence[bytes],
        fields: Sequence[bytes],
    ) -> tuple[list[Any], list[Any], list[Any]] | None:
        """One round, all at once: ``S_READ`` on every primary concerned, for
        the ``page`` entries (conversation, join, read seq) and the ``asked``
        pairs (flat: conversation, read seq, ...), and the user's read seqs of
        ``fields`` (by the call to the user's primary when there is one).
        Each answer in its input's order; None when a call answered 0
        (something was evicted: read again)."""
        pairs = len(asked) // 2
        cids = [entry[0] for entry in page] + [asked[2 * n] for n in range(pairs)]
        groups = self._by_primary(cids)
        index_key = self.user_key("u", user, epoch)
        index_node = self._owner(index_key).name
        calls = []
        reads_by = -1  # the call that reads the read seqs
        for n, (node, at) in enumerate(groups):
            args: list[Any] = [self._plain, epoch, self._ttl, 0]
            above: list[bytes] = []
            for i in at:
                if i < len(page):
                    args += page[i]
                    args[3] += 1
                else:
                    m = 2 * (i - len(page))
                    above += asked[m : m + 2]
            args.append(b" ".join(above))
            if node.name == index_node and fields:
                args += [user, b" ".join(fields)]
                reads_by = n
            key = self.conversation_key("h", cids[at[0]], epoch)
            calls.append(self._call(lua.S_READ, node, key, args))
        if reads_by < 0:
            calls.append(self.read_seqs(epoch, user, fields))
        answers = await asyncio.gather(*calls)
        found: list[Any] = [None] * len(cids)
        for (_, at), answer in zip(groups, answers[: len(groups)], strict=True):
            if answer == 0:
                return None
            for i, value in zip(at, [*answer[0], *answer[1]], strict=True):
                found[i] = value
        reads = answers[reads_by][2] if reads_by >= 0 else answers[-1]
        return found[: len(page)], found[len(page) :], reads

    async def read_seqs(self, epoch: bytes, user: int, fields: Sequence[bytes]) -> list[Any]:
        """The user's index values of ``fields`` (None where absent)."""
        if not fields:
            return []
        key = self.user_key("u", user, epoch)
        answer: list[Any] = await self._call(
            lua.S_READ_SEQS, self._owner(key), key, [b" ".join(fields)]
        )
        return answer

    # -- failover -----------------------------------------------------------------

    async def failed_over(self) -> bool:
        """Whether any primary is another one than at the last look (a replica
        took over and may lack its primary's last writes). Each primary keeps
        the id it answered with last time in a key of a slot it owns; the keys
        go by their slots, so a moved slot sends the look to its new owner
        (and the client learns the new map on the way)."""
        keys = {}
        for node in self._redis.get_primaries():
            key = self._watch_key(node.name)
            if key is not None:
                keys[key] = node.name
        changed = False
        for key in keys:
            answer = await self._redis.eval(FAILED_OVER, 1, key, "primary")
            changed = changed or bool(answer)
        return changed

    def _watch_key(self, node: str) -> str | None:
        for n in range(4096):
            key = f"{{{self._plain}watch:{n}}}primary"
            if self._owner(key).name == node:
                return key
        return None

    # -- calls --------------------------------------------------------------------

    def _by_primary(
        self, names: Sequence[bytes | str | int], *, users: bool = False
    ) -> list[tuple[ClusterNode, list[int]]]:
        """The positions of conversations (or ``users``) grouped by the
        primary owning their slot, by the client's slot map. A list read
        groups a thousand conversations twice, a batch of sends hundreds: each
        one's primary is remembered for as long as redis-py keeps its slot map
        (``nodes_manager.slots_cache``, public since 4.1; a refresh replaces
        it), as the CRC of the tag, and building a key to compute it, cost
        more than all the rest."""
        owners = self._redis.nodes_manager.slots_cache
        if owners is not self._owners_seen:
            self._owners_seen = owners
            self._primary_of.clear()
        primary_of = self._primary_of
        family = "u" if users else "h"
        nodes: dict[str, ClusterNode] = {}
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            remembered = (family, name)
            primary = primary_of.get(remembered)
            if primary is None:
                if len(primary_of) >= _PRIMARIES_KEPT:
                    primary_of.clear()
                key = self._key(family, name, b"")
                found = owners.get(key_slot(key.encode()))
                if not found:
                    raise ConnectionError(f"no primary serves the slot of {key!r}")
                primary = primary_of[remembered] = found[0].name
                self._nodes[primary] = found[0]
            at = groups.get(primary)
            if at is None:
                at = groups[primary] = []
                nodes[primary] = self._nodes[primary]
            at.append(i)
        return [(nodes[primary], at) for primary, at in groups.items()]

    def _key(self, family: str, name: bytes | str | int, epoch: bytes) -> str:
        """A user's index (u) or a conversation's head (h): a call's routing key."""
        if family == "u":
            return self.user_key("u", name, epoch)
        return self.conversation_key("h", _text(name), epoch)

    def _owner(self, key: str) -> ClusterNode:
        node = self._redis.get_node_from_key(key)
        if node is None:
            raise ConnectionError(f"no primary serves the slot of {key!r}")
        return node

    def _groups(
        self, items: Sequence[list[Any]], epoch: bytes, *, users: bool = False
    ) -> list[_Group]:
        """The items (a conversation, or a user, first) by the primary owning
        its slot; each group's first key routes its call."""
        family = "u" if users else "h"
        return [
            _Group(node, self._key(family, items[at[0]][0], epoch), [items[i] for i in at])
            for node, at in self._by_primary([item[0] for item in items], users=users)
        ]

    async def _each(self, script: str, epoch: bytes, groups: list[_Group]) -> list[Any]:
        """One call of ``script`` per group, all at once; the answers in order."""
        calls = []
        for group in groups:
            args: list[Any] = [self._plain, epoch, self._ttl]
            for item in group.items:
                args += item
            calls.append(self._call(script, group.node, group.key, args))
        return list(await asyncio.gather(*calls))

    async def _call(self, script: str, node: ClusterNode, key: str, args: list[Any]) -> Any:
        """``script`` on ``node``, which owns ``key``'s slot by the client's map.

        Sent to the node itself, so the client follows no MOVED answer and
        learns no new map: when the call fails, a read of ``key`` by its slot
        does that (a failover, a slot moved), and the failure goes up."""
        sha = _sha(script)
        try:
            try:
                return await self._redis.execute_command(
                    "EVALSHA", sha, 1, key, *args, target_nodes=node
                )
            except NoScriptError:
                await self._redis.execute_command("SCRIPT", "LOAD", script, target_nodes=node)
                return await self._redis.execute_command(
                    "EVALSHA", sha, 1, key, *args, target_nodes=node
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._redis.exists(key)
            raise


def plain_of(namespace: str) -> str:
    """The namespace without the braces it has as one slot: ``{x}:`` -> ``x:``."""
    return namespace.removeprefix("{").removesuffix("}:") + ":"


def conversation_key(plain: str, family: str, conversation: str | bytes, epoch: bytes | str) -> str:
    """A conversation's key of ``family`` (h, m, x, n, t, cg) in its own slot."""
    return f"{{{plain}c:{_text(conversation)}}}{_text(epoch)}:{family}"


def conversation_of_head(plain: str, key: str) -> str:
    """The conversation a head key (``conversation_key(plain, 'h', …)``) names."""
    return key.removeprefix(f"{{{plain}c:").rpartition("}")[0]


@dataclass(slots=True)
class _Group:
    """One call's worth: the primary, the key that routes the call there, the items."""

    node: ClusterNode
    key: str
    items: list[list[Any]] = field(default_factory=list)


# Conversations and users whose primary a copy remembers (a few MB at most).
_PRIMARIES_KEPT = 100_000

_SHAS: dict[str, str] = {}


def _sha(script: str) -> str:
    found = _SHAS.get(script)
    if found is None:
        found = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return found


def _text(value: int | str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
