"""Push subscriptions on SQL (``store.PushRecord`` says what each call means)."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tidings.ids import UserId
from tidings.store import PushSubscription
from tidings.store.schema import push_subscriptions

_IN_CHUNK = 500


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


class SqlPush:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        # The push planner asks for subscriptions after every write batch: on
        # the reader's pool that is one statement (PostgreSQL and MySQL run it
        # in autocommit: no BEGIN, no rollback, no pool ping), and it never
        # takes a connection the writer's transactions need.
        self._reader = reader

    async def subscribe(self, subscription: PushSubscription, *, keep: int) -> None:
        key = endpoint_hash(subscription.endpoint)
        row = {
            "endpoint_hash": key,
            "user_id": subscription.user,
            "endpoint": subscription.endpoint,
            "p256dh": subscription.p256dh,
            "auth": subscription.auth,
            "expiration_time": subscription.expiration_time,
            "created_at": int(time.time() * 1000),
        }
        # Delete then insert: the same statements on every dialect. Two
        # subscribes of one endpoint at once: the loser's insert fails on the
        # unique hash and is tried once more.
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        delete(push_subscriptions).where(push_subscriptions.c.endpoint_hash == key)
                    )
                    await conn.execute(insert(push_subscriptions).values(**row))
                    await self._trim(conn, subscription.user, keep)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    async def _trim(self, conn: AsyncConnection, user: UserId, keep: int) -> None:
        count = (
            await conn.execute(select(func.count()).where(push_subscriptions.c.user_id == user))
        ).scalar_one()
        if count <= keep:
            return
        oldest = (
            await conn.execute(
                select(push_subscriptions.c.id)
                .where(push_subscriptions.c.user_id == user)
                .order_by(push_subscriptions.c.created_at, push_subscriptions.c.id)
                .limit(int(count) - keep)
            )
        ).scalars()
        ids = list(oldest)
        await conn.execute(delete(push_subscriptions).where(push_subscriptions.c.id.in_(ids)))

    async def unsubscribe(self, user: UserId, endpoint: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(push_subscriptions).where(
                    push_subscriptions.c.endpoint_hash == endpoint_hash(endpoint),
                    push_subscriptions.c.user_id == user,
                )
            )
        return bool(result.rowcount)

    async def forget(self, endpoint: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(push_subscriptions).where(
                    push_subscriptions.c.endpoint_hash == endpoint_hash(endpoint)
                )
            )

    async def subscriptions(self, users: Sequence[UserId]) -> dict[UserId, list[PushSubscription]]:
        found: dict[UserId, list[PushSubscription]] = defaultdict(list)
        t = push_subscriptions.c
        async with self._reader.connect() as conn:
            for start in range(0, len(users), _IN_CHUNK):
                query = select(t.user_id, t.endpoint, t.p256dh, t.auth, t.expiration_time).where(
                    t.user_id.in_(users[start : start + _IN_CHUNK])
                )
                for row in await conn.execute(query):
                    user = UserId(int(row.user_id))
                    found[user].append(
                        PushSubscription(
                            user, row.endpoint, row.p256dh, row.auth, row.expiration_time
                        )
                    )
        return dict(found)
