"""``tidings restored``: what the restore procedure runs before nodes start again.

A restored database is this database gone back in time: the Redis copy of
its chat lists (and any other derived copy) is ahead of it. This moves the
database's generation on, so no node reads that copy again (it is rebuilt
from SQL as lists are read; the old keys expire), and says, from the old
copy, which conversations lost messages and how many. Those conversations'
seqs move on past the copy's (``binding.lost_seqs``), so the next message
sent there gets a seq no client has seen: a lost seq is never given to
another message (docs/operations.md says what clients see).

``--sign-out`` ends every session, so every client logs in again: a client
that keeps history only for a session (the web client) then drops what it
had of the messages the restore lost.

``--new-identity`` is for a database copied to make another deployment
(staging from production's backup): it gets an identity of its own, so
the two never share a copy even on one Redis with one prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete

from tidings.redis_target import RedisTarget
from tidings.state.binding import lost_seqs, namespace
from tidings.store import Deployment, SeqsLost
from tidings.store.deployment import SqlDeployment
from tidings.store.engines import create_engines
from tidings.store.migrate import upgrade
from tidings.store.schema import sessions


@dataclass(frozen=True, slots=True)
class Restored:
    before: Deployment
    after: Deployment
    went_back: list[SeqsLost]
    signed_out: int


async def restored(
    database_url: str,
    redis: RedisTarget | None,
    *,
    new_identity: bool = False,
    sign_out: bool = False,
    pg_partitions: int = 16,
) -> Restored:
    engines = create_engines(database_url, search_index=False)  # no search here
    try:
        # A dump from an older version: its schema first (this makes the
        # identity of a database from before the deployment row).
        await upgrade(engines.writer, pg_partitions=pg_partitions)
        record = SqlDeployment(engines.writer)
        before = await record.current()
        went_back = [] if redis is None else await _went_back(redis, before, record)
        await record.skip_lost_seqs(went_back)
        after = await record.next_generation(before, new_identity=new_identity)
        signed_out = 0
        if sign_out:
            async with engines.writer.begin() as conn:
                signed_out = (await conn.execute(delete(sessions))).rowcount
    finally:
        await engines.dispose()
    return Restored(before, after, went_back, signed_out)


async def _went_back(
    target: RedisTarget, deployment: Deployment, record: SqlDeployment
) -> list[SeqsLost]:
    redis = target.connect()
    try:
        space = namespace(target, deployment)
        return await lost_seqs(redis, space, record, spread=target.cluster)
    finally:
        await redis.aclose()
