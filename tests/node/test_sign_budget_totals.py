"""SignBudget keeps each peer's running total with its entries: the same answers as summing them, without
summing thousands of entries on every request when the budget is raised (benches, busy signers)."""

from __future__ import annotations

from node.policy import SignBudget
from tests.clock import ManualClock

PEER, OTHER = "a" * 64, "b" * 64


class Ledger:
    def __init__(self, rows: list[tuple[str, float, int]]) -> None:
        self.rows = rows

    def load_spent(self, since: float) -> list[tuple[str, float, int]]:
        return [row for row in self.rows if row[1] > since]

    def record_spent(self, pubkey: str, at: float, count: int) -> None:
        self.rows.append((pubkey, at, count))


def test_totals_follow_the_sliding_window_over_many_entries() -> None:
    clock = ManualClock()
    budget = SignBudget(1_000_000, 60, clock)
    for n in range(3000):
        assert budget.consume(PEER, 1 + n % 3)
        clock.advance(0.01)  # 3000 entries over 30 s
    assert budget.remaining(PEER) == 1_000_000 - sum(1 + n % 3 for n in range(3000))
    clock.advance(45)  # the first 1500 entries (15 s) are now older than 60 s
    assert budget.remaining(PEER) == 1_000_000 - sum(1 + n % 3 for n in range(1500, 3000))
    clock.advance(60)
    assert budget.remaining(PEER) == 1_000_000
    assert budget.remaining(OTHER) == 1_000_000


def test_a_ledger_restores_the_totals_and_the_limit_holds() -> None:
    clock = ManualClock()
    now = clock()
    ledger = Ledger([(PEER, now - 100, 5), (PEER, now - 10, 7), (OTHER, now - 5, 1), (PEER, now - 4000, 9)])
    budget = SignBudget(20, 3600, clock, ledger)
    assert budget.remaining(PEER) == 8 and budget.remaining(OTHER) == 19
    assert not budget.consume(PEER, 9)
    assert budget.consume(PEER, 8) and budget.remaining(PEER) == 0
    clock.advance(3600 - 99)  # the entry of 100 s ago expires
    assert budget.remaining(PEER) == 5
