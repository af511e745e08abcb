"""Peer status: online, last seen, latency, learned from pings and requests."""

from __future__ import annotations

import datetime as _dt
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

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
        """Candidates ordered for a request: online (fastest first), then never tried, then failed."""

        def key(pubkey: str) -> tuple[int, float]:
            status = self._peers.get(pubkey)
            if status is None:
                return (3, 0.0)
            if self.is_online(pubkey):
                return (0, status.latency_ms if status.latency_ms is not None else 1e9)
            if status.last_failure is None:
                return (1, 0.0)
            return (2, status.last_failure)

        return sorted(candidates, key=key)

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
