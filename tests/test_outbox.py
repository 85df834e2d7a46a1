"""The shared sending parts of webhooks and Web Push: the queue bound and the retry schedule."""

from __future__ import annotations

import asyncio
import email.utils

from tidings.outbox import Retry, WorkQueue, retry_after_seconds, with_retries


def test_retry_after_reads_seconds_and_dates_and_ignores_the_rest() -> None:
    now = 1_900_000_000.0
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 7 ") == 7.0
    in_a_minute = email.utils.formatdate(now + 60, usegmt=True)
    assert retry_after_seconds(in_a_minute, now=now) == 60.0
    a_minute_ago = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after_seconds(a_minute_ago, now=now) == 0.0
    for unreadable in (None, "", "soon", "-5", "1.5", "Wed, 21 Oct 2099 07:28:00"):
        assert retry_after_seconds(unreadable, now=now) is None, unreadable


async def test_retries_stop_at_success_and_obey_retry_after() -> None:
    loop = asyncio.get_running_loop()
    tried: list[float] = []
    answers: list[Retry | None] = [Retry("HTTP 429", after=0.3), Retry("reset"), None]

    async def attempt() -> Retry | None:
        tried.append(loop.time())
        return answers.pop(0)

    assert await with_retries(attempt, retry_for=10, first_delay=0.01) is None
    assert len(tried) == 3
    assert tried[1] - tried[0] >= 0.29  # the Retry-After, not the 0.01 s backoff


async def test_retries_give_up_with_the_last_reason_when_time_runs_out() -> None:
    attempts = 0

    async def attempt() -> Retry | None:
        nonlocal attempts
        attempts += 1
        return Retry(f"HTTP 50{attempts}")

    gave_up = await with_retries(attempt, retry_for=0.2, first_delay=0.05)
    assert gave_up is not None and gave_up.reason == f"HTTP 50{attempts}"
    assert 2 <= attempts <= 6
    # A Retry-After past the deadline ends it without waiting.
    started = asyncio.get_running_loop().time()
    far = await with_retries(lambda: asyncio.sleep(0, Retry("HTTP 503", after=3600)), retry_for=60)
    assert far == Retry("HTTP 503", after=3600)
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_full_queue_drops_the_oldest_and_a_failing_item_does_not_stop_the_workers() -> None:
    handled: list[int] = []
    dropped: list[int] = []
    gate = asyncio.Event()

    async def handle(item: int) -> None:
        await gate.wait()
        if item == 3:
            raise RuntimeError("a bug in one delivery")
        handled.append(item)

    queue = WorkQueue(
        handle, name="test", workers=1, max_queue=3, on_drop=lambda: dropped.append(1)
    )
    for item in range(1, 6):
        queue.offer(item)
    assert queue.backlog == 3 and len(dropped) == 2
    queue.start()
    gate.set()
    await queue.close(drain_for=5)
    assert handled == [4, 5]
    assert queue.backlog == 0
