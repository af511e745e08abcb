"""Signing activity per time bucket (how many signatures and ECDH shares, on which side, how they ended).

Rows are counters keyed by (bucket start, kind, role, outcome); a record adds to its bucket's counter, so the
table holds at most ``retention / bucket`` buckets times 12 counters whatever the traffic. Older buckets are
deleted when a new bucket starts. A storage fault is logged and the record dropped: the chart may miss a
count, the signer never fails because of it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field

from node.activity import ECDH, FAILED, OK, REFUSED, REQUESTER, RESPONDER, SIGN, ActivityRecord
from node.ratelimit import Clock
from store.db import Database

__all__ = ["ECDH", "FAILED", "OK", "REFUSED", "REQUESTER", "RESPONDER", "SIGN", "ActivityBucket",
           "ActivityRecord", "ActivitySeries", "ActivityStore"]

log = logging.getLogger("igloo.store")

BUCKET_SECONDS = 1800  # 30 minutes: 48 bars for a day
RETENTION_SECONDS = 7 * 86400
MAX_COUNT = 1000  # per record; a signing batch carries at most 100 sighashes

KINDS = (SIGN, ECDH)
ROLES = (REQUESTER, RESPONDER)
OUTCOMES = (OK, REFUSED, FAILED)


@dataclass(frozen=True)
class ActivityBucket:
    """The counters of one time bucket (``start`` in unix seconds)."""

    start: int
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def count(self, kind: str | None = None, role: str | None = None, outcome: str | None = None) -> int:
        """The sum of the counters matching the given kind / role / outcome (None matches any)."""
        return sum(
            n for (k, r, o), n in self.counts.items()
            if kind in (None, k) and role in (None, r) and outcome in (None, o)
        )


@dataclass(frozen=True)
class ActivitySeries:
    """Consecutive buckets, oldest first, ending with the current one; ``now`` is when it was read."""

    buckets: list[ActivityBucket]
    bucket_seconds: int
    now: float

    def total(self, kind: str | None = None, role: str | None = None, outcome: str | None = None) -> int:
        """The sum over every bucket."""
        return sum(b.count(kind, role, outcome) for b in self.buckets)


class ActivityStore:
    """``node.activity.ActivityLog`` on the Igloo database, and the series the chart reads."""

    def __init__(self, db: Database, clock: Clock = time.time, bucket_seconds: int = BUCKET_SECONDS,
                 retention: float = RETENTION_SECONDS) -> None:
        self._db = db
        self._clock = clock
        self.bucket_seconds = bucket_seconds
        self._retention = retention
        self._pruned_for: int | None = None

    def _bucket(self, at: float) -> int:
        return int(at // self.bucket_seconds) * self.bucket_seconds

    def record(self, record: ActivityRecord) -> None:
        """Add one record to the current bucket (unknown kinds, roles or outcomes are ignored)."""
        if record.kind not in KINDS or record.role not in ROLES or record.outcome not in OUTCOMES:
            return
        count = max(1, min(int(record.count), MAX_COUNT))
        now = self._clock()
        bucket = self._bucket(now)
        try:
            self._db.execute(
                "INSERT INTO activity (bucket, kind, role, outcome, count) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (bucket, kind, role, outcome) DO UPDATE SET count = count + excluded.count",
                (bucket, record.kind, record.role, record.outcome, count),
            )
            if self._pruned_for != bucket:
                horizon = self._bucket(now - self._retention)
                self._db.execute("DELETE FROM activity WHERE bucket < ?", (horizon,))
                self._pruned_for = bucket
        except sqlite3.Error as exc:
            log.warning("could not record signing activity: %s", exc)

    def series(self, hours: int = 24) -> ActivitySeries:
        """The last ``hours`` hours as consecutive buckets (empty ones included), oldest first."""
        now = self._clock()
        last = self._bucket(now)
        count = max(1, int(hours * 3600 // self.bucket_seconds))
        first = last - (count - 1) * self.bucket_seconds
        rows = self._db.query_all(
            "SELECT bucket, kind, role, outcome, count FROM activity WHERE bucket >= ? AND bucket <= ?",
            (first, last),
        )
        counts: dict[int, dict[tuple[str, str, str], int]] = {}
        for row in rows:
            counts.setdefault(row["bucket"], {})[(row["kind"], row["role"], row["outcome"])] = row["count"]
        buckets = [ActivityBucket(start, counts.get(start, {}))
                   for start in range(first, last + 1, self.bucket_seconds)]
        return ActivitySeries(buckets, self.bucket_seconds, now)
