"""The one token bucket: ``rate`` tokens per second, at most ``burst`` saved up, on an injectable clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds as a float; ``time.monotonic`` for intervals, ``time.time`` where wall time is stored."""


class TokenBucket:
    """A token bucket that starts full."""

    __slots__ = ("_clock", "_stamp", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens when that many are there; False (and nothing spent) otherwise."""
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def charge(self, cost: float) -> None:
        """Spend ``cost`` tokens even if that leaves the bucket in debt (for work measured afterwards)."""
        self._refill()
        self.tokens -= cost

    def retry_after(self, cost: float = 1.0) -> int:
        """Whole seconds until ``cost`` tokens are there (0 when they are now)."""
        self._refill()
        missing = cost - self.tokens
        return 0 if missing <= 0 else max(1, math.ceil(missing / self.rate))
