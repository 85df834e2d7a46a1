"""A token bucket: ``rate`` messages per second, bursts of up to one second's worth."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_rate", "_tokens", "_stamp")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty (the caller refuses)."""
        if self._rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def idle(self) -> bool:
        """Full again: the bucket can be forgotten without changing any answer."""
        return self._tokens + (time.monotonic() - self._stamp) * self._rate >= self._rate
