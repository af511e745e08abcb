"""The embedded relay's state: a bounded in-memory event store and an index of live subscriptions.

No sockets here: a connection is anything with ``send_frame(bytes)``. The WebSocket handler in
``handlers/relay.py`` verifies events and parses frames, then calls this hub.

Storage: regular events are kept newest-first, bounded by count and by time since receipt;
ephemeral events (kinds 20000-29999, the FROSTR transport's 20004) are delivered live and only
remembered by id, so a repeat is not broadcast twice. Replaceable (0, 3, 10000-19999) and
addressable (30000-39999) events keep only the latest version per key.

Fan-out: each filter of each subscription is indexed under one of its most selective keys
(event id, then a tag value such as ``#p``, then author, then kind), so an event is matched only
against filters that could possibly match it. The event JSON is encoded once per event; each
frame is a cached ``["EVENT",<sub id>,`` prefix plus those bytes.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from node import Event, Filter, event_json, sub_id_prefix


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds of the embedded relay (published in NIP-11 where NIP-11 has a name for them)."""

    max_events: int = 10_000
    max_connections: int = 1000
    max_age: float = 3600.0
    max_message_length: int = 128 * 1024
    max_subscriptions: int = 20
    max_filters: int = 10
    max_limit: int = 500
    max_event_tags: int = 2000
    max_content_length: int = 100 * 1024
    max_future_seconds: int = 900
    event_rate: float = 100.0
    event_burst: float = 200.0
    max_send_buffer: int = 4 * 1024 * 1024
    ping_interval: float = 30.0

    @classmethod
    def from_setting(cls, value: object) -> RelayLimits:
        """Accept a ``RelayLimits``, a mapping of field names (unknown names ignored), or ``None``."""
        if isinstance(value, RelayLimits):
            return value
        if isinstance(value, Mapping):
            names = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in value.items() if k in names})
        return cls()


class Connection(Protocol):
    """What the hub needs from a client connection."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one text frame (already UTF-8) for the client; never raises."""

    def shutdown(self, code: int, reason: str) -> None:
        """Close the connection with this WebSocket close code."""


def is_ephemeral(kind: int) -> bool:
    """NIP-01 ephemeral kinds: delivered, never stored."""
    return 20000 <= kind < 30000


def _replace_key(event: Event) -> tuple[Any, ...] | None:
    kind = event.kind
    if kind in (0, 3) or 10000 <= kind < 20000:
        return (event.pubkey, kind)
    if 30000 <= kind < 40000:
        d_tag = next((tag[1] for tag in event.tags if len(tag) >= 2 and tag[0] == "d"), "")
        return (event.pubkey, kind, d_tag)
    return None


@dataclass(slots=True, eq=False)
class _Stored:
    event: Event
    data: bytes
    received_at: float


@dataclass(slots=True, eq=False)
class _Sub:
    conn: Connection
    sub_id: str
    prefix: bytes
    entries: list[_Entry]
    active: bool = True


@dataclass(slots=True, eq=False)
class _Entry:
    sub: _Sub
    flt: Filter
    bucket: dict[Any, set[_Entry]] | None
    keys: tuple[Any, ...]


class RelayHub:
    """Stored events and live subscriptions of the embedded relay, shared by all its connections."""

    def __init__(self, limits: RelayLimits | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or RelayLimits()
        self._clock = clock
        self._events: dict[str, _Stored] = {}
        self._order: list[tuple[int, str]] = []  # (-created_at, id): NIP-01 send order
        self._arrivals: deque[tuple[float, str]] = deque()
        self._replaceable: dict[tuple[Any, ...], str] = {}
        self._ephemeral_seen: OrderedDict[str, None] = OrderedDict()
        self._conns: dict[Connection, dict[str, _Sub]] = {}
        self._open: set[Connection] = set()
        self._by_id: dict[Any, set[_Entry]] = {}
        self._by_tag: dict[Any, set[_Entry]] = {}
        self._by_author: dict[Any, set[_Entry]] = {}
        self._by_kind: dict[Any, set[_Entry]] = {}
        self._all: set[_Entry] = set()

    # ----- events -----------------------------------------------------------------------------

    def add_event(self, event: Event) -> tuple[bool, str]:
        """Store (unless ephemeral) and fan out an already verified event; returns the OK pair."""
        try:
            data = event_json(event).encode("utf-8")
        except UnicodeEncodeError:
            return False, "invalid: event is not valid UTF-8"
        self._expire()
        if event.id in self._events or event.id in self._ephemeral_seen:
            return True, "duplicate: already have this event"
        if is_ephemeral(event.kind):
            self._ephemeral_seen[event.id] = None
            while len(self._ephemeral_seen) > self.limits.max_events:
                self._ephemeral_seen.popitem(last=False)
        else:
            key = _replace_key(event)
            if key is not None:
                old_id = self._replaceable.get(key)
                old = self._events.get(old_id) if old_id else None
                if old is not None:
                    if (old.event.created_at, event.id) > (event.created_at, old.event.id):
                        return True, "duplicate: have a newer version of this event"
                    self._remove(old.event.id)
                self._replaceable[key] = event.id
            self._store(event, data)
        self._fan_out(event, data)
        return True, ""

    def _store(self, event: Event, data: bytes) -> None:
        now = self._clock()
        self._events[event.id] = _Stored(event, data, now)
        bisect.insort(self._order, (-event.created_at, event.id))
        self._arrivals.append((now, event.id))
        while len(self._events) > self.limits.max_events:
            self._pop_oldest_arrival()

    def _pop_oldest_arrival(self) -> None:
        received_at, event_id = self._arrivals.popleft()
        stored = self._events.get(event_id)
        if stored is not None and stored.received_at == received_at:
            self._remove(event_id)

    def _remove(self, event_id: str) -> None:
        stored = self._events.pop(event_id)
        position = bisect.bisect_left(self._order, (-stored.event.created_at, event_id))
        del self._order[position]
        key = _replace_key(stored.event)
        if key is not None and self._replaceable.get(key) == event_id:
            del self._replaceable[key]

    def _expire(self) -> None:
        cutoff = self._clock() - self.limits.max_age
        while self._arrivals and self._arrivals[0][0] < cutoff:
            self._pop_oldest_arrival()

    def stored_count(self) -> int:
        """How many events are stored right now (after expiry)."""
        self._expire()
        return len(self._events)

    def query(self, filters: Iterable[Filter]) -> list[bytes]:
        """Stored events matching any filter, as JSON bytes, newest first, each ``limit`` honoured."""
        self._expire()
        found: dict[str, tuple[int, str]] = {}
        for flt in filters:
            limit = self.limits.max_limit if flt.limit is None else min(flt.limit, self.limits.max_limit)
            if limit == 0 or flt.never_matches():
                continue
            for key in self._candidates(flt):
                stored = self._events[key[1]]
                if flt.matches(stored.event):
                    found[stored.event.id] = key
                    limit -= 1
                    if limit == 0:
                        break
        return [self._events[key[1]].data for key in sorted(found.values())]

    def _candidates(self, flt: Filter) -> Iterable[tuple[int, str]]:
        if flt.ids is not None:
            hits = [self._events[i] for i in flt.ids if i in self._events]
            return sorted((-s.event.created_at, s.event.id) for s in hits)
        start = 0 if flt.until is None else bisect.bisect_left(self._order, (-flt.until, ""))
        stop = len(self._order)
        if flt.since is not None:
            stop = bisect.bisect_left(self._order, (-flt.since + 1, ""))
        return self._order[start:stop]

    # ----- subscriptions ----------------------------------------------------------------------

    def subscribe(self, conn: Connection, sub_id: str, filters: list[Filter]) -> None:
        """Register (or replace) a live subscription of this connection."""
        self.unsubscribe(conn, sub_id)
        sub = _Sub(conn, sub_id, sub_id_prefix(sub_id).encode("utf-8"), [])
        for flt in filters:
            if flt.never_matches():
                continue
            bucket, keys = self._index_keys(flt)
            entry = _Entry(sub, flt, bucket, keys)
            if bucket is None:
                self._all.add(entry)
            else:
                for key in keys:
                    bucket.setdefault(key, set()).add(entry)
            sub.entries.append(entry)
        self._conns.setdefault(conn, {})[sub_id] = sub

    def _index_keys(self, flt: Filter) -> tuple[dict[Any, set[_Entry]] | None, tuple[Any, ...]]:
        if flt.ids is not None:
            return self._by_id, tuple(flt.ids)
        if flt.tags:
            name, values = min(flt.tags.items(), key=lambda item: len(item[1]))
            return self._by_tag, tuple((name, value) for value in values)
        if flt.authors is not None:
            return self._by_author, tuple(flt.authors)
        if flt.kinds is not None:
            return self._by_kind, tuple(flt.kinds)
        return None, ()

    def unsubscribe(self, conn: Connection, sub_id: str) -> bool:
        """Remove one subscription; False when it did not exist."""
        subs = self._conns.get(conn)
        sub = subs.pop(sub_id, None) if subs is not None else None
        if sub is None:
            return False
        self._unindex(sub)
        return True

    def _unindex(self, sub: _Sub) -> None:
        sub.active = False
        for entry in sub.entries:
            if entry.bucket is None:
                self._all.discard(entry)
                continue
            for key in entry.keys:
                bucket = entry.bucket.get(key)
                if bucket is not None:
                    bucket.discard(entry)
                    if not bucket:
                        del entry.bucket[key]

    def has_subscription(self, conn: Connection, sub_id: str) -> bool:
        """True when this connection has a live subscription with this id."""
        return sub_id in self._conns.get(conn, {})

    def subscription_count(self, conn: Connection) -> int:
        """Live subscriptions of one connection."""
        return len(self._conns.get(conn, {}))

    def register(self, conn: Connection) -> None:
        """Remember an open connection (so ``close_all`` can reach it)."""
        self._open.add(conn)

    def drop_connection(self, conn: Connection) -> None:
        """Forget a connection that went away, with every subscription it had."""
        self._open.discard(conn)
        for sub in self._conns.pop(conn, {}).values():
            self._unindex(sub)

    def open_count(self) -> int:
        """Open client connections."""
        return len(self._open)

    def close_all(self, code: int = 1001, reason: str = "relay shutting down") -> None:
        """Close every client connection (server shutdown)."""
        for conn in list(self._open):
            self.drop_connection(conn)
            conn.shutdown(code, reason)

    def connections(self) -> list[Connection]:
        """Connections that hold at least one subscription."""
        return list(self._conns)

    def _fan_out(self, event: Event, data: bytes) -> None:
        candidates: list[_Entry] = list(self._all)
        simple: tuple[tuple[dict[Any, set[_Entry]], Any], ...] = (
            (self._by_id, event.id),
            (self._by_author, event.pubkey),
            (self._by_kind, event.kind),
        )
        for bucket, key in simple:
            hit = bucket.get(key)
            if hit:
                candidates.extend(hit)
        if self._by_tag:
            for tag in event.tags:
                if len(tag) >= 2:
                    hit = self._by_tag.get((tag[0], tag[1]))
                    if hit:
                        candidates.extend(hit)
        targets: dict[_Sub, None] = {}
        for entry in candidates:
            if entry.sub not in targets and entry.flt.matches(event):
                targets[entry.sub] = None
        tail = data + b"]"
        for sub in targets:
            if sub.active:  # an earlier send may have closed a slow connection
                sub.conn.send_frame(sub.prefix + tail)
