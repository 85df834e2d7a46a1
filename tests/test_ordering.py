"""The per-conversation seq orderer of events from several nodes (gateway/ordering.py)."""

from __future__ import annotations

import asyncio

from tidings.events import MessageCreated
from tidings.gateway.ordering import SeqOrderer
from tidings.ids import UserId
from tidings.models import Message


def event(seq: int) -> MessageCreated:
    message = Message(
        f"g:1#{seq}", "g:1", seq, 1, f"m{seq}", None, "2026-12-03T00:00:00.000Z", False
    )
    return MessageCreated(message, (UserId(1), UserId(2)), None)


async def no_fetch(*_: object) -> list[MessageCreated]:
    return []


async def test_a_seq_that_came_before_an_earlier_one_goes_where_the_earlier_one_goes() -> None:
    """6 reaches this node first, 5 later: a connection opened between the two
    gets 5 live, so it must get 6 live too (else its live stream skips 6)."""
    delivered: list[tuple[int, float]] = []
    orderer = SeqOrderer(
        lambda e, arrived: delivered.append((e.message.seq, arrived)),
        no_fetch,
        first_hold=0.01,
        gap_wait=5,
    )
    orderer.offer(event(4))
    await asyncio.sleep(0.05)  # the first hold ends: 4 is delivered, 5 is next
    orderer.offer(event(6))
    await asyncio.sleep(0.02)
    orderer.offer(event(5))
    assert [seq for seq, _ in delivered] == [4, 5, 6]
    (_, at4), (_, at5), (_, at6) = delivered
    assert at4 < at5 and at6 == at5  # 6 counts as arriving with 5, not before it
