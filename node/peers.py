"""Peer status: online, last seen, latency, learned from pings and requests; and each peer's load.

The load is what the co-signer choice needs to spread concurrent rounds over the peers that are online:
how many of our rounds each peer has in flight, and how long a round with it takes (measured). Times are
estimates in milliseconds; nothing here waits or keeps a timer.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ROUND_WEIGHT = 0.25
"""Weight of the newest round trip in a peer's running round estimate (an exponential moving average)."""

MIN_WORK_MS = 30.0
"""The least one more round in flight is taken to add at a busy peer (its own work on our round), when its
measured rounds do not say more. About what the JS reference spends on one sign request (28 ms of CPU on
the bench machine): a peer's work cannot be told from its network time reliably (a first ping to a cold node
takes longer than a signing round), and taking it too low sends a busy, CPU-bound co-signer one session per
request instead of one batch, doubling its work. A peer far away (rounds of 100 ms and more) still gets a
few rounds at once; one nearby gets batches."""

MIN_SAVING_MS = 10.0
"""A waiting request goes out beside the rounds in flight only when that is expected to save at least this
much over joining the next batch. Every extra session costs CPU at both ends and on the relay (5 to 8 ms
measured on loopback); where rounds are that short (co-signers on the same machine) batching wins, and
splitting pays only when a round trip is long (a co-signer across the internet, or a slow one)."""
LATENCY_HISTORY = 30
"""Ping outcomes kept per peer for the dashboard's latency history."""


def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO-8601 UTC string (millisecond precision), or None."""
    if ts is None:
        return None
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class PeerStatus:
    """What this node knows about one peer's reachability."""

    pubkey: str
    last_seen: float | None = None
    latency_ms: float | None = None
    last_ping_attempt: float | None = None
    last_failure: float | None = None
    round_ms: float | None = None  # running estimate of a co-signing round trip (request sent → answer)
    round_at: float | None = None  # when round_ms was last updated
    inflight: list[float] = field(default_factory=list)  # start times of our rounds in flight with it
    # (time, round trip in ms) per ping answered, (time, None) per ping lost: the newest LATENCY_HISTORY
    history: deque[tuple[float, float | None]] = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))


class PeerTable:
    """Status of every peer; a peer is online when it answered within ``offline_after`` seconds
    and has not failed since."""

    def __init__(
        self, pubkeys: Iterable[str], *, offline_after: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self.offline_after = offline_after
        self._peers = {pk: PeerStatus(pk) for pk in pubkeys}

    def __contains__(self, pubkey: object) -> bool:
        return pubkey in self._peers

    @property
    def pubkeys(self) -> list[str]:
        """Peer pubkeys in group order."""
        return list(self._peers)

    def mark_seen(self, pubkey: str, latency_ms: float | None = None) -> bool:
        """Record a message from ``pubkey``; returns True when it was not online before."""
        status = self._peers.get(pubkey)
        if status is None:
            return False
        was_online = self.is_online(pubkey)
        status.last_seen = self._clock()
        status.last_failure = None
        if latency_ms is not None:
            status.latency_ms = round(latency_ms, 1)
            status.history.append((status.last_seen, status.latency_ms))
        return not was_online

    def mark_attempt(self, pubkey: str) -> None:
        """Record that a ping to ``pubkey`` started."""
        if pubkey in self._peers:
            self._peers[pubkey].last_ping_attempt = self._clock()

    def mark_failed(self, pubkey: str, ping: bool = False) -> bool:
        """Record a timeout or failure (``ping``: of a ping, kept in the history); True when it was online."""
        status = self._peers.get(pubkey)
        if status is None:
            return False
        was_online = self.is_online(pubkey)
        status.last_failure = self._clock()
        if ping:
            status.history.append((status.last_failure, None))
        return was_online

    def history(self, pubkey: str) -> list[tuple[float, float | None]]:
        """The peer's recent pings, oldest first: ``(unix time, ms)``, ms None for a ping lost."""
        status = self._peers.get(pubkey)
        return list(status.history) if status is not None else []

    def is_online(self, pubkey: str) -> bool:
        """True when the peer answered recently and has not failed since."""
        status = self._peers.get(pubkey)
        if status is None or status.last_seen is None:
            return False
        if status.last_failure is not None and status.last_failure >= status.last_seen:
            return False
        return self._clock() - status.last_seen <= self.offline_after

    def rank(self, candidates: Iterable[str]) -> list[str]:
        """Candidates ordered for a request: online (least loaded first), then never tried, then failed.

        Online peers are ordered by :meth:`cost_ms` (the expected round trip of a round started now, its
        rounds in flight included), then by how many rounds they have in flight.
        """

        def key(pubkey: str) -> tuple[int, float, int]:
            status = self._peers.get(pubkey)
            if status is None:
                return (3, 0.0, 0)
            if self.is_online(pubkey):
                return (0, self.cost_ms(pubkey), len(status.inflight))
            if status.last_failure is None:
                return (1, 0.0, 0)
            return (2, status.last_failure, 0)

        return sorted(candidates, key=key)

    # ----- load: rounds in flight and how long a round takes -------------------------------------

    def begin_round(self, pubkey: str) -> float:
        """Record that a round (a sign or ECDH request) to ``pubkey`` starts; returns its start time."""
        now = self._clock()
        status = self._peers.get(pubkey)
        if status is not None:
            status.inflight.append(now)
        return now

    def end_round(self, pubkey: str, started: float, answered_ms: float | None) -> None:
        """The round started at ``started`` is over; ``answered_ms``: its round trip (None: no answer)."""
        status = self._peers.get(pubkey)
        if status is None:
            return
        if started in status.inflight:
            status.inflight.remove(started)
        if answered_ms is not None:
            previous = self._fresh_round_ms(status)
            status.round_ms = answered_ms if previous is None else (
                previous + ROUND_WEIGHT * (answered_ms - previous))
            status.round_at = self._clock()

    def inflight(self, pubkey: str) -> int:
        """How many of our rounds ``pubkey`` has in flight."""
        status = self._peers.get(pubkey)
        return len(status.inflight) if status is not None else 0

    def _fresh_round_ms(self, status: PeerStatus) -> float | None:
        # A measurement older than the online window says little about the peer now (it may have moved).
        if status.round_ms is None or status.round_at is None:
            return None
        if self._clock() - status.round_at > self.offline_after:
            return None
        return status.round_ms

    def expected_ms(self, pubkey: str) -> float:
        """The round trip expected of an idle ``pubkey``: measured rounds, else its ping time, else 0."""
        status = self._peers.get(pubkey)
        if status is None:
            return 0.0
        measured = self._fresh_round_ms(status)
        if measured is not None:
            return measured
        return status.latency_ms if status.latency_ms is not None else 0.0

    def work_ms(self, pubkey: str) -> float:
        """What one more round in flight is expected to add at ``pubkey``: its rounds' excess over its ping
        time (its own work on a round), at least ``MIN_WORK_MS``."""
        status = self._peers.get(pubkey)
        work = 0.0
        if status is not None and status.latency_ms is not None:
            measured = self._fresh_round_ms(status)
            if measured is not None:
                work = measured - status.latency_ms
        return max(work, MIN_WORK_MS)

    def cost_ms(self, pubkey: str) -> float:
        """The expected round trip of a round sent to ``pubkey`` now, behind the rounds it has in flight."""
        return self.expected_ms(pubkey) + self.inflight(pubkey) * self.work_ms(pubkey)

    def free_in_ms(self, pubkey: str) -> float:
        """How long until the oldest round in flight with ``pubkey`` is expected back (0: idle or late)."""
        status = self._peers.get(pubkey)
        if status is None or not status.inflight:
            return 0.0
        elapsed = (self._clock() - min(status.inflight)) * 1000
        return max(0.0, self.expected_ms(pubkey) - elapsed)

    def send_now(self, chosen: Iterable[str]) -> bool:
        """True when a round sent to ``chosen`` now is expected back at least ``MIN_SAVING_MS`` sooner than
        one that waits for the first round in flight (with any peer) to come back and then goes out; True
        when nothing is in flight.

        This is the sign queue's question: send a waiting request at once, or let it join the batch that
        leaves when a round in flight ends.
        """
        busy = [pk for pk, status in self._peers.items() if status.inflight]
        if not busy:
            return True
        now_ms = max((self.cost_ms(pk) for pk in chosen), default=0.0)
        wait_ms = min(self.free_in_ms(pk) + self.expected_ms(pk) for pk in busy)
        return now_ms + MIN_SAVING_MS <= wait_ms

    def status_json(self, pubkey: str) -> dict[str, Any]:
        """``{pubkey, online, lastSeen, latency, lastPingAttempt}`` as the dashboard expects."""
        status = self._peers[pubkey]
        return {
            "pubkey": pubkey,
            "online": self.is_online(pubkey),
            "lastSeen": iso(status.last_seen),
            "latency": status.latency_ms,
            "lastPingAttempt": iso(status.last_ping_attempt),
        }
