"""The event log: a bounded in-memory ring of recent event frames, persisted to SQLite in batches.

``append`` only touches memory (the hot path); ``flush`` writes everything appended since the last flush in
one transaction and trims the table to the ring size. The event hub flushes once per IOLoop turn, before it
delivers the events of that turn, so a delivered event is on disk. When the write fails (database locked,
disk full) the events stay queued and ``last_error`` says why.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from dataclasses import dataclass

from store.db import Database

log = logging.getLogger("igloo.store")


@dataclass(frozen=True)
class StoredEvent:
    """One serialized event frame (UTF-8 JSON) with its sequence number."""

    seq: int
    payload: bytes


@dataclass(frozen=True)
class Replay:
    """What a client that last saw ``since`` should get: events, and a gap if some are gone."""

    events: list[StoredEvent]
    gap: tuple[int, int] | None  # first and last missing seq
    reset: bool  # the client's seq is ahead of this server's: its history was lost


class EventRing:
    """Recent events in memory (at most ``size``), mirrored to the ``events`` table."""

    def __init__(self, db: Database, size: int) -> None:
        self._db = db
        self.size = size
        self._ring: deque[StoredEvent] = deque(maxlen=size)
        self._pending: deque[StoredEvent] = deque(maxlen=size)
        self.last_error: str | None = None
        rows = self._db.query_all(
            "SELECT seq, frame FROM (SELECT seq, frame FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (size,),
        )
        for row in rows:
            self._ring.append(StoredEvent(int(row["seq"]), str(row["frame"]).encode("utf-8")))
        top = self._db.query_one("SELECT MAX(seq) FROM events")
        self._last_seq = int(top[0]) if top is not None and top[0] is not None else 0

    @property
    def last_seq(self) -> int:
        """The seq of the newest event (0 when there is none)."""
        return self._last_seq

    def next_seq(self) -> int:
        """Reserve and return the next sequence number."""
        self._last_seq += 1
        return self._last_seq

    def append(self, event: StoredEvent) -> None:
        """Keep an event in memory and queue it for the next flush."""
        self._ring.append(event)
        self._pending.append(event)

    @property
    def pending(self) -> int:
        """Events not yet written to SQLite."""
        return len(self._pending)

    def flush(self) -> int:
        """Write queued events and trim the table; return how many were written."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        try:
            self._db.insert_many(
                "INSERT OR REPLACE INTO events (seq, frame) VALUES (?, ?)",
                [(e.seq, e.payload.decode("utf-8")) for e in batch],
                then="DELETE FROM events WHERE seq <= ?",
                then_params=(batch[-1].seq - self.size,),
            )
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the event stream
            # SQLite's own messages ("database is locked", "database or disk is full") carry no data.
            self.last_error = str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__
            log.error("event log flush failed (%d events kept in memory): %s", len(batch), self.last_error)
            return 0
        self.last_error = None
        for _ in batch:
            self._pending.popleft()
        return len(batch)

    def recent(self, count: int) -> list[StoredEvent]:
        """The newest ``count`` events, oldest first."""
        if count <= 0:
            return []
        items = list(self._ring)
        return items[-count:]

    def since(self, seq: int) -> Replay:
        """Events with a seq greater than ``seq``, plus a gap marker when the ring lost some."""
        if seq > self._last_seq:
            return Replay(list(self._ring), None, True)
        events = [e for e in self._ring if e.seq > seq]
        oldest = self._ring[0].seq if self._ring else self._last_seq + 1
        gap = (seq + 1, oldest - 1) if seq + 1 < oldest and seq < self._last_seq else None
        return Replay(events, gap, False)
