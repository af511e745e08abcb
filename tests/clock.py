"""A clock for tests: time passes only when the test says so (no real sleeps to let time pass)."""

from __future__ import annotations


class ManualClock:
    """Seconds as a float, like ``time.time``/``time.monotonic``; ``advance`` moves it forward."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds
