"""The read scenarios' request window: what counts, and a stall as long as the window."""

from __future__ import annotations

import asyncio

from tidings.bench.requests import measure_requests


async def test_requests_started_in_the_window_count_and_warmup_ones_do_not() -> None:
    calls = 0

    async def request() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    window = await measure_requests(request, warmup=0.1, duration=0.2, concurrency=2)
    assert 0 < len(window.latencies_us) < calls  # the warm-up's requests were made, not counted
    assert min(window.answers) > 2  # the first ones came during the warm-up
    assert all(latency >= 10_000 for latency in window.latencies_us)
    assert window.seconds >= 0.2
    assert window.per_second == round(len(window.latencies_us) / window.seconds, 1)


async def test_a_stall_longer_than_the_window_still_gives_its_one_sample() -> None:
    # The first request (in the warm-up) stalls past the window's end: before,
    # that record had no sample at all and said nothing of the stall.
    calls = 0

    async def request() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.4 if calls == 1 else 0.05)
        return "page"

    window = await measure_requests(request, warmup=0.05, duration=0.1, concurrency=1)
    assert window.answers == ["page"]
    assert len(window.latencies_us) == 1
    assert window.seconds > 0.1  # the rate divides by the time it really took
