"""Back-to-back HTTP requests over a measured window: the read scenarios' loop.

A request counts when it starts inside the window (after the warm-up); one
that starts during the warm-up is thrown away however long it takes. If no
request counted by the window's end (one stall as long as the window, seen
once in CI on a 0.5 s window), the loops go on until one does: a record with
no sample says nothing, while one slow sample says what the server did.
The rate divides by the time the counted requests really took, so a window
stretched that way does not inflate it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Window(Generic[T]):
    """What the counted requests gave: each one's latency and answer, and the time taken."""

    latencies_us: list[int] = field(default_factory=list)
    answers: list[T] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return round(len(self.latencies_us) / self.seconds, 1) if self.seconds > 0 else 0.0


async def measure_requests(
    request: Callable[[], Awaitable[T]], *, warmup: float, duration: float, concurrency: int
) -> Window[T]:
    """Run ``request`` back to back on ``concurrency`` loops; count those started in the window."""
    window: Window[T] = Window()
    start = time.monotonic() + warmup
    stop_at = start + duration

    async def loop() -> None:
        while (now := time.monotonic()) < stop_at or not window.latencies_us:
            answer = await request()
            if now >= start:
                window.latencies_us.append(int((time.monotonic() - now) * 1e6))
                window.answers.append(answer)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    window.seconds = max(duration, time.monotonic() - start)
    return window
