"""The peer table's load model: rounds in flight, measured round trips, and the sign queue's question
"send now or wait for the batch?" (pure; the clock is injected, nothing sleeps)."""

from __future__ import annotations

import pytest

from node.peers import MIN_WORK_MS, PeerTable
from tests.clock import ManualClock

B, C, D = "b" * 64, "c" * 64, "d" * 64


def table(latencies: dict[str, float]) -> tuple[PeerTable, ManualClock]:
    clock = ManualClock()
    peers = PeerTable([B, C, D], offline_after=60, clock=clock)
    for pubkey, latency in latencies.items():
        peers.mark_seen(pubkey, latency)
    return peers, clock


def test_an_idle_peer_of_equal_speed_ranks_before_a_busy_one() -> None:
    peers, _ = table({B: 100.0, C: 101.0})
    assert peers.rank([B, C]) == [B, C]
    peers.begin_round(B)
    assert peers.rank([B, C]) == [C, B]  # B's round in flight costs it at least MIN_WORK_MS
    assert peers.cost_ms(B) == pytest.approx(100.0 + MIN_WORK_MS)
    peers.begin_round(C)
    assert peers.rank([B, C]) == [B, C]  # one each: back to the faster


def test_a_far_peer_is_not_chosen_until_the_near_one_is_loaded_past_it() -> None:
    peers, _ = table({B: 60.0, C: 330.0})
    for _ in range(8):
        assert peers.rank([B, C])[0] == B
        peers.begin_round(B)
    assert peers.cost_ms(B) < peers.cost_ms(C)


def test_offline_and_unknown_peers_rank_after_online_ones_whatever_their_load() -> None:
    peers, _ = table({B: 50.0})
    for _ in range(20):
        peers.begin_round(B)
    peers.mark_failed(C)
    assert peers.rank([C, D, B]) == [B, D, C]  # online, never tried, failed


def test_measured_rounds_replace_the_ping_time_and_expire() -> None:
    peers, clock = table({B: 40.0})
    started = peers.begin_round(B)
    assert peers.inflight(B) == 1
    peers.end_round(B, started, 80.0)
    assert peers.inflight(B) == 0
    assert peers.expected_ms(B) == 80.0
    assert peers.work_ms(B) == 40.0  # the round's excess over a ping: the peer's own work
    started = peers.begin_round(B)
    peers.end_round(B, started, 120.0)
    assert peers.expected_ms(B) == pytest.approx(80.0 + 0.25 * 40.0)  # a moving average
    started = peers.begin_round(B)
    peers.end_round(B, started, None)  # no answer: no measurement, but no longer in flight
    assert peers.inflight(B) == 0 and peers.expected_ms(B) == pytest.approx(90.0)
    clock.advance(61)
    peers.mark_seen(B, 45.0)
    assert peers.expected_ms(B) == 45.0  # an old measurement gives way to the fresh ping time


def test_send_now_while_a_round_is_mostly_network_time_wait_while_it_is_mostly_work() -> None:
    # A co-signer far away that answers at once: a second round now beats waiting for the first.
    peers, clock = table({B: 160.0})
    peers.end_round(B, peers.begin_round(B), 162.0)
    peers.begin_round(B)
    clock.advance(0.010)
    assert peers.send_now([B])
    # A co-signer nearby that spends most of a round working (the JS reference on loopback): batch.
    peers, clock = table({B: 5.0})
    peers.end_round(B, peers.begin_round(B), 30.0)
    peers.begin_round(B)
    clock.advance(0.010)
    assert not peers.send_now([B])  # 30 + 30 now, against 20 left + 30
    clock.advance(0.030)  # the round in flight is late, and still the sooner way out
    assert not peers.send_now([B])
    assert peers.free_in_ms(B) == 0.0


def test_send_now_to_an_idle_cosigner_and_always_when_nothing_is_in_flight() -> None:
    peers, _ = table({B: 100.0, C: 100.0})
    assert peers.send_now([B])
    peers.begin_round(B)
    assert peers.send_now([C])
    peers.begin_round(C)
    assert peers.send_now([B])  # both busy, just started: 130 now against 100 left + 100


def test_unknown_peers_are_ignored_by_the_load_methods() -> None:
    peers, _ = table({})
    stranger = "e" * 64
    peers.end_round(stranger, peers.begin_round(stranger), 10.0)
    assert peers.inflight(stranger) == 0 and peers.expected_ms(stranger) == 0.0
    assert peers.free_in_ms(stranger) == 0.0


def test_with_short_rounds_a_waiting_request_joins_the_batch_even_with_an_idle_cosigner() -> None:
    # Co-signers on the same machine: a round takes 8 ms, so splitting saves less than a session costs.
    peers, clock = table({B: 3.0, C: 3.0})
    peers.end_round(B, peers.begin_round(B), 8.0)
    peers.end_round(C, peers.begin_round(C), 8.0)
    peers.begin_round(B)
    clock.advance(0.001)
    assert peers.rank([B, C])[0] == C
    assert not peers.send_now([C])  # 8 now against 7 left + 8: saves 7 ms, less than MIN_SAVING_MS
    # The same co-signers 40 ms from the relay each way: a round is 160 ms and C is worth it at once.
    peers, clock = table({B: 160.0, C: 160.0})
    peers.begin_round(B)
    clock.advance(0.001)
    assert peers.send_now([C])
