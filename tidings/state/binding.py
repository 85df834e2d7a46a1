"""Which Redis namespace holds this database's chat-list copy.

The copy lives under ``{prefix}cl:{identity}.{generation}:``, the
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
"""

from __future__ import annotations

import logging

from redis import asyncio as aioredis

from tidings.store import Deployment, DeploymentRecord

log = logging.getLogger(__name__)

# How many of the most recently active conversations are checked at start.
CHECKED_AT_START = 1000


def namespace(prefix: str, deployment: Deployment) -> str:
    return f"{prefix}cl:{deployment.name}:"


async def bind(
    redis: aioredis.Redis, prefix: str, record: DeploymentRecord, *, checked: int = CHECKED_AT_START
) -> str:
    """The namespace of this database's copy, past any generation the database fell behind."""
    deployment = await record.current()
    while True:
        ahead = await _copy_ahead(redis, namespace(prefix, deployment), record, checked)
        if not ahead:
            return namespace(prefix, deployment)
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
        deployment = await record.next_generation(deployment)


async def _copy_ahead(
    redis: aioredis.Redis, space: str, record: DeploymentRecord, checked: int
) -> tuple[str, int, int] | None:
    """One conversation whose copied head is past the database's last seq, if any."""
    epoch = await redis.get(f"{space}epoch")
    if epoch is None:
        return None  # no copy in this namespace
    recent = await record.recently_sent(checked)
    if not recent:
        return None
    base = f"{space}{as_text(epoch)}:h:"
    heads = await redis.mget([base + c for c in recent])
    last_seqs = await record.last_seqs(recent)  # after the copy: see the module's note
    for conversation, head in zip(recent, heads, strict=True):
        if head is None:
            continue
        copy_seq = int(as_text(head).partition("|")[0])
        sql_seq = last_seqs.get(conversation, 0)
        if copy_seq > sql_seq:
            return conversation, copy_seq, sql_seq
    return None


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
