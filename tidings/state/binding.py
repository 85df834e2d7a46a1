"""Which Redis namespace holds this database's chat-list copy.

The copy lives under ``{prefix}cl2:{identity}.{generation}:``, the
database's own deployment row (``store.deployment``): another database
(a replaced one, a staging one pointed at production's Redis) has another
identity, and a restored one has a new generation once ``tidings restored``
has run, so a copy of anything else is never read. Nothing is deleted: the
old namespace's keys expire with their TTL.

A restore that skipped ``tidings restored`` is caught here at start, as
well as it can be: the conversations with the newest messages in SQL are
compared with the copy's heads, and a copy ahead of the database (a seq
SQL has not got) means the database went back in time: the generation
moves on. The copy is read before SQL (each head is written after its
commit), so traffic from running nodes cannot look like a restore.

Either way, before the old copy is left behind, every conversation it
shows further than the database (``lost_seqs``) has its seqs moved on past
what clients saw (``DeploymentRecord.skip_lost_seqs``): a seq, and so a
message id, is never given to two messages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tidings.ids import ConversationId
from tidings.redis_target import RedisTarget
from tidings.state.spread import conversation_key, conversation_of_head, plain_of
from tidings.store import Deployment, DeploymentRecord, SeqsLost

if TYPE_CHECKING:
    from tidings.redis_target import AnyRedis

log = logging.getLogger(__name__)

# How many of the most recently active conversations are checked at start.
CHECKED_AT_START = 1000


def namespace(target: RedisTarget, deployment: Deployment) -> str:
    """The copy's key prefix: one hash tag on a Cluster, so its scripts touch one slot."""
    return target.own_slot(f"{target.prefix}cl2:{deployment.name}") + ":"


async def bind(
    redis: AnyRedis,
    target: RedisTarget,
    record: DeploymentRecord,
    *,
    checked: int = CHECKED_AT_START,
) -> str:
    """The namespace of this database's copy, past any generation the database fell behind."""
    deployment = await record.current()
    spread = target.cluster
    while True:
        ahead = await _copy_ahead(redis, namespace(target, deployment), record, checked, spread)
        if not ahead:
            return namespace(target, deployment)
        conversation, copy_seq, sql_seq = ahead
        log.warning(
            "chat list: the Redis copy has seq %d of %s, the database only %d: the database "
            "went back in time (restored without `tidings restored`?); "
            "the copy of generation %d is dropped",
            copy_seq,
            conversation,
            sql_seq,
            deployment.generation,
        )
        space = namespace(target, deployment)
        await record.skip_lost_seqs(await lost_seqs(redis, space, record, spread=spread))
        deployment = await record.next_generation(deployment)


async def _copy_ahead(
    redis: AnyRedis, space: str, record: DeploymentRecord, checked: int, spread: bool
) -> tuple[str, int, int] | None:
    """One conversation whose copied head is past the database's last seq, if any."""
    epoch = await redis.get(f"{space}epoch")
    if epoch is None:
        return None  # no copy in this namespace
    recent = await record.recently_sent(checked)
    if not recent:
        return None
    heads = await _heads(redis, space, as_text(epoch), recent, spread)
    last_seqs = await record.last_seqs(recent)  # after the copy: see the module's note
    for conversation, head in zip(recent, heads, strict=True):
        if head is None:
            continue
        copy_seq = int(as_text(head).partition("|")[0])
        sql_seq = last_seqs.get(conversation, 0)
        if copy_seq > sql_seq:
            return conversation, copy_seq, sql_seq
    return None


async def lost_seqs(
    redis: AnyRedis, space: str, record: DeploymentRecord, *, spread: bool = False
) -> list[SeqsLost]:
    """Every conversation whose copied head in ``space`` is past the database's last seq.

    ``spread``: the copy is laid out over a Cluster's slots (state.spread)."""
    epoch = await redis.get(f"{space}epoch")
    if epoch is None:
        return []
    plain = plain_of(space)
    if spread:
        pattern = conversation_key(plain, "h", "*", as_text(epoch))
    else:
        pattern = f"{space}{as_text(epoch)}:h:*"
    keys = sorted({as_text(key) async for key in redis.scan_iter(pattern, count=1000)})
    if spread:
        conversations = [conversation_of_head(plain, key) for key in keys]
    else:
        conversations = [key.removeprefix(f"{space}{as_text(epoch)}:h:") for key in keys]
    copied: dict[ConversationId, int] = {}
    for start in range(0, len(keys), 1000):
        chunk = conversations[start : start + 1000]
        heads = await _heads(redis, space, as_text(epoch), chunk, spread)
        for conversation, head in zip(chunk, heads, strict=True):
            if head is not None:
                copied[ConversationId(conversation)] = int(as_text(head).partition("|")[0])
    in_sql = await record.last_seqs(list(copied))  # after the copy: see the module's note
    return sorted(
        (
            SeqsLost(conversation, in_sql.get(conversation, 0), seq)
            for conversation, seq in copied.items()
            if seq > in_sql.get(conversation, 0)
        ),
        key=lambda lost: lost.conversation,
    )


async def _heads(
    redis: AnyRedis, space: str, epoch: str, conversations: Sequence[str], spread: bool
) -> list[Any]:
    """The copied heads of ``conversations`` (None where there is none)."""
    if not spread:
        return list(await redis.mget([f"{space}{epoch}:h:{c}" for c in conversations]))
    keys = [conversation_key(plain_of(space), "h", c, epoch) for c in conversations]
    return list(await redis.mget_nonatomic(keys))  # type: ignore[union-attr]


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
