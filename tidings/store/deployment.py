"""The deployment row on SQL (``store.Deployment`` says what it means)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.ids import ConversationId
from tidings.store import Deployment, SeqsLost
from tidings.store.schema import conversations, deployment, members

_ROW = 1
_IN_CHUNK = 500


class SqlDeployment:
    """The deployment row, and the positions a copy is checked against."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def current(self) -> Deployment:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(deployment.c.identity, deployment.c.generation).where(
                        deployment.c.id == _ROW
                    )
                )
            ).one()
        return Deployment(row.identity, int(row.generation))

    async def next_generation(self, seen: Deployment, *, new_identity: bool = False) -> Deployment:
        """Move past ``seen`` (once, however many nodes ask at once); the row as it is after."""
        values: dict[str, object] = {
            "generation": seen.generation + 1,
            "changed_at": int(time.time() * 1000),
        }
        if new_identity:
            values["identity"] = secrets.token_hex(8)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(deployment)
                .where(deployment.c.id == _ROW, deployment.c.generation == seen.generation)
                .values(**values)
            )
        return await self.current()

    async def recently_sent(self, limit: int) -> list[ConversationId]:
        """The ``limit`` conversations with the newest messages: the likeliest to show a restore."""
        query = (
            select(conversations.c.id)
            .where(conversations.c.last_sent_at.is_not(None))
            .order_by(conversations.c.last_sent_at.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [ConversationId(row.id) for row in await conn.execute(query)]

    async def last_seqs(self, ids: Sequence[ConversationId]) -> dict[ConversationId, int]:
        found: dict[ConversationId, int] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                query = select(conversations.c.id, conversations.c.last_seq).where(
                    conversations.c.id.in_(ids[start : start + _IN_CHUNK])
                )
                for row in await conn.execute(query):
                    found[ConversationId(row.id)] = int(row.last_seq)
        return found

    async def skip_lost_seqs(self, lost: Sequence[SeqsLost]) -> None:
        async with self._engine.begin() as conn:
            for gap in lost:
                await conn.execute(
                    update(conversations)
                    .where(
                        conversations.c.id == gap.conversation,
                        conversations.c.last_seq < gap.copy_seq,
                    )
                    .values(last_seq=gap.copy_seq)
                )
                await conn.execute(
                    update(members)
                    .where(
                        members.c.conversation_id == gap.conversation,
                        members.c.read_seq >= gap.database_seq,
                        members.c.read_seq < gap.copy_seq,
                    )
                    .values(read_seq=gap.copy_seq)
                )
