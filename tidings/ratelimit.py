"""A token bucket: ``rate`` events per second, in bursts of up to ``burst`` (one second's worth
unless given)."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_rate", "_burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self._rate = rate
        self._burst = rate if burst is None else burst
        self._tokens = self._burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty (the caller refuses)."""
        if self._rate <= 0:
            return True
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def empty(self) -> bool:
        """No token left now (without spending one)."""
        if self._rate <= 0:
            return False
        self._refill()
        return self._tokens < 1

    def idle(self) -> bool:
        """Full again: the bucket can be forgotten without changing any answer."""
        return self._tokens + (time.monotonic() - self._stamp) * self._rate >= self._burst
