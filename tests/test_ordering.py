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
        lambda _users, _since: True,
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


def fetch_from(fetched: list[tuple[int, int]]) -> object:
    async def fetch(
        _conversation: str, after: int, before: int, _recipients: object
    ) -> list[MessageCreated]:
        fetched.append((after, before))
        return [event(seq) for seq in range(after + 1, before)]

    return fetch


async def test_a_gap_while_a_recipient_stayed_connected_is_a_loss_and_is_fetched() -> None:
    delivered: list[int] = []
    fetched: list[tuple[int, int]] = []
    orderer = SeqOrderer(
        lambda e, _arrived: delivered.append(e.message.seq),
        fetch_from(fetched),  # type: ignore[arg-type]
        lambda _users, _since: True,  # a connection open since seq 4 was delivered
        first_hold=0.01,
        gap_wait=0.02,
    )
    orderer.offer(event(4))
    await asyncio.sleep(0.05)
    orderer.offer(event(8))
    await asyncio.sleep(0.1)
    assert fetched == [(4, 8)]
    assert delivered == [4, 5, 6, 7, 8]


async def test_a_gap_while_nobody_here_was_a_recipient_is_no_loss_and_starts_afresh() -> None:
    """The broker routes a conversation's events here only while one of its
    recipients is connected here: after a while with none, seqs resume higher.
    Those in between are no loss (nobody here to tell) and must not be sent
    again to the connections that came since (they catch up from history)."""
    delivered: list[int] = []
    fetched: list[tuple[int, int]] = []
    asked: list[tuple[tuple[UserId, ...], float]] = []

    def steady(users: tuple[UserId, ...], since: float) -> bool:
        asked.append((users, since))
        return False

    orderer = SeqOrderer(
        lambda e, _arrived: delivered.append(e.message.seq),
        fetch_from(fetched),  # type: ignore[arg-type]
        steady,
        first_hold=0.01,
        gap_wait=0.02,
    )
    orderer.offer(event(4))
    await asyncio.sleep(0.05)
    orderer.offer(event(21))
    orderer.offer(event(22))
    await asyncio.sleep(0.1)
    assert fetched == []
    assert delivered == [4, 21, 22]
    assert asked and asked[0][0] == (UserId(1), UserId(2))
    orderer.offer(event(20))  # a straggler from before the fresh start: late, not lost
    orderer.offer(event(22))  # a repeat: dropped
    assert delivered == [4, 21, 22, 20]


async def test_the_first_seq_after_a_routing_gap_waits_only_the_first_hold() -> None:
    """A user comes back to this node after a while away: the next message of
    the conversation goes out after the short first hold, not the gap's wait."""
    delivered: list[int] = []
    orderer = SeqOrderer(
        lambda e, _arrived: delivered.append(e.message.seq),
        no_fetch,
        lambda _users, _since: False,  # nobody here since seq 4 was delivered
        first_hold=0.01,
        gap_wait=5,
    )
    orderer.offer(event(4))
    await asyncio.sleep(0.05)
    orderer.offer(event(30))
    await asyncio.sleep(0.05)
    assert delivered == [4, 30]
    orderer.offer(event(31))
    assert delivered == [4, 30, 31]


async def test_another_event_of_a_conversation_waits_behind_its_held_messages() -> None:
    """A member removed from a group right after a notice he should still see:
    the notice is held (the first hold), so the removal waits behind it, and
    an event of a conversation with nothing held goes at once."""
    seen: list[str] = []
    orderer = SeqOrderer(
        lambda e, _arrived: seen.append(f"m{e.message.seq}"),
        no_fetch,
        lambda _users, _since: True,
        first_hold=0.02,
        gap_wait=5,
    )
    orderer.after("g:1", lambda: seen.append("nothing held"))
    orderer.offer(event(7))
    orderer.after("g:1", lambda: seen.append("removed"))
    orderer.after("g:2", lambda: seen.append("other conversation"))
    assert seen == ["nothing held", "other conversation"]
    await asyncio.sleep(0.05)
    assert seen == ["nothing held", "other conversation", "m7", "removed"]
    orderer.offer(event(9))  # 8 is missing: 9 is held for the gap
    orderer.after("g:1", lambda: seen.append("read 9"))
    orderer.offer(event(8))
    assert seen[-3:] == ["m8", "m9", "read 9"]
