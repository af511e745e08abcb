"""Live subscriptions of the embedded relay, indexed so a new event is matched only against candidates.

Each filter of each subscription is indexed under its most selective key: event ids, then one tag's
values (for FROSTR nodes the ``#p`` of the node's own pubkey), then authors, then kinds; a filter with none
of these goes in a catch-all set. A published event is tested only against the filters found under its id,
author, kind and tag values, and reaches each subscription at most once. Frames are a cached
``["EVENT","<sub>",`` prefix, the event JSON encoded once, and ``]``.

What a connection may hold is bounded by ``max_subscriptions`` and by ``max_filter_values``, the values
(ids, authors, kinds, tag values) of all its filters together. Dropping a subscription breaks its
reference cycles on the spot, so its memory is returned without waiting for the cycle collector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from node import Event, Filter, sub_id_prefix


class Subscriber(Protocol):
    """What the subscription index needs from a client connection."""

    def send_event(self, sub_id: str, frame: bytes) -> None:
        """Queue one ``EVENT`` frame (already UTF-8) of subscription ``sub_id``; never raises."""


def filter_values(flt: Filter) -> int:
    """How many values a filter holds (its share of a connection's ``max_filter_values``)."""
    lists = (flt.ids or (), flt.authors or (), flt.kinds or (), *flt.tags.values())
    return 1 + sum(len(values) for values in lists)


@dataclass(slots=True, eq=False, weakref_slot=True)
class Subscription:
    """One live subscription: its filters, indexed, and the frame prefix for its events."""

    conn: Subscriber | None
    sub_id: str
    prefix: bytes
    entries: list[_Entry]
    values: int


@dataclass(slots=True, eq=False)
class _Entry:
    sub: Subscription
    flt: Filter
    bucket: dict[Any, set[_Entry]] | None
    keys: tuple[Any, ...]


class SubscriptionIndex:
    """Every live subscription of every connection, and the fan-out of new events to them."""

    def __init__(self, max_subscriptions: int, max_filter_values: int) -> None:
        self.max_subscriptions = max_subscriptions
        self.max_filter_values = max_filter_values
        self._conns: dict[Any, dict[str, Subscription]] = {}
        self._by_id: dict[Any, set[_Entry]] = {}
        self._by_tag: dict[Any, set[_Entry]] = {}
        self._by_author: dict[Any, set[_Entry]] = {}
        self._by_kind: dict[Any, set[_Entry]] = {}
        self._all: set[_Entry] = set()

    def refusal(self, conn: Subscriber, sub_id: str, filters: list[Filter]) -> str | None:
        """Why this connection may not (re)open ``sub_id`` with these filters, or None when it may."""
        subs = self._conns.get(conn, {})
        replaced = subs.get(sub_id)
        if replaced is None and len(subs) >= self.max_subscriptions:
            return f"blocked: more than {self.max_subscriptions} subscriptions"
        held = sum(sub.values for sub in subs.values()) - (replaced.values if replaced else 0)
        if held + sum(filter_values(flt) for flt in filters) > self.max_filter_values:
            return f"blocked: more than {self.max_filter_values} filter values on one connection"
        return None

    def subscribe(self, conn: Subscriber, sub_id: str, filters: list[Filter]) -> Subscription:
        """Register (or replace) a live subscription of this connection."""
        self.unsubscribe(conn, sub_id)
        sub = Subscription(conn, sub_id, sub_id_prefix(sub_id).encode("utf-8"), [],
                           sum(filter_values(flt) for flt in filters))
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
        return sub

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

    def unsubscribe(self, conn: Subscriber, sub_id: str) -> bool:
        """Remove one subscription; False when it did not exist."""
        subs = self._conns.get(conn)
        sub = subs.pop(sub_id, None) if subs is not None else None
        if sub is None:
            return False
        if not subs:
            del self._conns[conn]
        self._release(sub)
        return True

    def drop(self, conn: Subscriber) -> None:
        """Forget every subscription of a connection that went away."""
        for sub in self._conns.pop(conn, {}).values():
            self._release(sub)

    def _release(self, sub: Subscription) -> None:
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
        # sub -> entries -> entry -> sub is a cycle: cut it so reference counting frees it all now.
        sub.entries = []
        sub.conn = None

    def has(self, conn: Subscriber, sub_id: str) -> bool:
        """True when this connection has a live subscription with this id."""
        return sub_id in self._conns.get(conn, {})

    def count(self, conn: Subscriber) -> int:
        """Live subscriptions of one connection."""
        return len(self._conns.get(conn, {}))

    def of(self, conn: Subscriber) -> list[Subscription]:
        """The live subscriptions of one connection."""
        return list(self._conns.get(conn, {}).values())

    def connections(self) -> list[Any]:
        """Connections that hold at least one subscription."""
        return list(self._conns)

    def fan_out(self, event: Event, data: bytes) -> int:
        """Send a new event to every subscription with a matching filter; returns how many got it."""
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
        targets: dict[Subscription, None] = {}
        for entry in candidates:
            if entry.sub not in targets and entry.flt.matches(event):
                targets[entry.sub] = None
        tail = data + b"]"
        for sub in targets:
            conn = sub.conn
            if conn is not None:  # an earlier send may have closed a slow connection
                conn.send_event(sub.sub_id, sub.prefix + tail)
        return len(targets)
