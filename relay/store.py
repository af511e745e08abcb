"""Stored events of the embedded relay: compact records, indexes, memory accounted in bytes, quotas, expiry.

A stored event keeps its JSON bytes (what is sent) and only the fields filters look at: id, author, kind,
``created_at`` and the single-letter tags as ``(letter, value)`` pairs. Every other tag string is dropped
after the JSON is encoded, so a tag with thousands of short strings costs its bytes, not thousands of
objects. ``stored_cost`` is what a record costs in memory, measured with tracemalloc
(``tests/relay/test_store_memory.py`` keeps it an over-estimate); the store keeps the sum under
``max_bytes`` and each client address and author under their quota.

Indexes (by id, author, kind, tag value, and all events) hold records sorted newest first, so a query
walks only the candidates of its most selective field, in NIP-01 order, and stops at ``limit``.
"""

from __future__ import annotations

import bisect
import operator
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node import Event
from relay.limits import RelayLimits

RECORD_OVERHEAD = 1600
"""Bytes a stored record costs beyond its JSON: the record, its key, id and pubkey strings, index slots."""

TAG_OVERHEAD = 320
"""Bytes each indexed (letter, value) pair costs beyond the value's length: the pair, its index bucket."""

SEND_ORDER = operator.attrgetter("key")


def is_ephemeral(kind: int) -> bool:
    """NIP-01 ephemeral kinds: delivered, never stored."""
    return 20000 <= kind < 30000


def replace_key(event: Event) -> tuple[Any, ...] | None:
    """The key under which only the newest event is kept (replaceable and addressable kinds), else None."""
    kind = event.kind
    if kind in (0, 3) or 10000 <= kind < 20000:
        return (event.pubkey, kind)
    if 30000 <= kind < 40000:
        d_tag = next((tag[1] for tag in event.tags if len(tag) >= 2 and tag[0] == "d"), "")
        return (event.pubkey, kind, d_tag)
    return None


def indexed_tags(event: Event) -> tuple[tuple[str, str], ...]:
    """The ``(letter, value)`` pairs NIP-01 filters can ask for: tags with a one-letter name and a value."""
    return tuple(
        (tag[0], tag[1]) for tag in event.tags if len(tag) >= 2 and len(tag[0]) == 1 and tag[0].isascii()
        and tag[0].isalpha()
    )


def stored_cost(data: bytes, tags: tuple[tuple[str, str], ...]) -> int:
    """Accounted memory of one stored event, in bytes."""
    return len(data) + RECORD_OVERHEAD + sum(TAG_OVERHEAD + len(value) for _, value in tags)


@dataclass(slots=True, eq=False)
class StoredEvent:
    """One stored event: its JSON and the fields filters match on."""

    id: str
    pubkey: str
    kind: int
    created_at: int
    data: bytes
    tags: tuple[tuple[str, str], ...]
    source: str
    cost: int
    received_at: float
    seq: int
    replaces: tuple[Any, ...] | None
    key: tuple[int, str] = field(init=False)
    removed: bool = False

    def __post_init__(self) -> None:
        self.key = (-self.created_at, self.id)


def _insert(bucket: list[StoredEvent], record: StoredEvent) -> None:
    bisect.insort(bucket, record, key=SEND_ORDER)


def _delete(index: dict[Any, list[StoredEvent]], name: Any, record: StoredEvent) -> None:
    bucket = index.get(name)
    if bucket is None:
        return
    position = bisect.bisect_left(bucket, record.key, key=SEND_ORDER)
    if position < len(bucket) and bucket[position] is record:
        del bucket[position]
    if not bucket:
        del index[name]


def _add_up(counter: dict[str, int], name: str, amount: int) -> None:
    total = counter.get(name, 0) + amount
    if total > 0:
        counter[name] = total
    else:
        counter.pop(name, None)


class EventStore:
    """The relay's stored events; ephemeral ones are only remembered by id so a repeat is not re-sent."""

    def __init__(self, limits: RelayLimits, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._clock = clock
        self.by_id: dict[str, StoredEvent] = {}
        self.everything: list[StoredEvent] = []
        self.by_author: dict[str, list[StoredEvent]] = {}
        self.by_kind: dict[int, list[StoredEvent]] = {}
        self.by_tag: dict[str, dict[str, list[StoredEvent]]] = {}
        self._arrivals: OrderedDict[str, StoredEvent] = OrderedDict()
        self._replaceable: dict[tuple[Any, ...], StoredEvent] = {}
        self._ephemeral_seen: OrderedDict[str, None] = OrderedDict()
        self._bytes_by_source: dict[str, int] = {}
        self._bytes_by_author: dict[str, int] = {}
        self.bytes = 0
        self.seq = 0

    def add(self, event: Event, data: bytes, source: str) -> tuple[bool, str]:
        """Store a verified event (or remember an ephemeral one); the NIP-01 OK pair.

        ``(True, "")`` means the event is new and should be fanned out; a ``duplicate:`` reason means it
        is not. ``source`` is the client address the quota is charged to.
        """
        self.expire()
        if event.id in self.by_id or event.id in self._ephemeral_seen:
            return True, "duplicate: already have this event"
        if is_ephemeral(event.kind):
            self._ephemeral_seen[event.id] = None
            while len(self._ephemeral_seen) > self.limits.max_events:
                self._ephemeral_seen.popitem(last=False)
            return True, ""
        replaces = replace_key(event)
        old = self._replaceable.get(replaces) if replaces is not None else None
        if old is not None and (old.created_at, event.id) > (event.created_at, old.id):
            return True, "duplicate: have a newer version of this event"
        tags = indexed_tags(event)
        self.seq += 1
        record = StoredEvent(event.id, event.pubkey, event.kind, event.created_at, data, tags, source,
                             stored_cost(data, tags), self._clock(), self.seq, replaces)
        refusal = self._quota_refusal(record, old)
        if refusal is not None:
            return False, refusal
        if old is not None:
            self._remove(old)
        self._insert(record)
        while len(self.by_id) > self.limits.max_events or self.bytes > self.limits.max_bytes:
            self._remove(next(iter(self._arrivals.values())))
        return True, ""

    def _quota_refusal(self, record: StoredEvent, old: StoredEvent | None) -> str | None:
        limits = self.limits
        if record.cost > min(limits.max_bytes, limits.address_quota, limits.author_quota):
            return "invalid: event needs more memory than this relay stores for one client"
        freed = old.cost if old is not None else 0
        source_freed = freed if old is not None and old.source == record.source else 0
        if self._bytes_by_source.get(record.source, 0) - source_freed + record.cost > limits.address_quota:
            return "rate-limited: storage quota of this address is used up; older events expire"
        if self._bytes_by_author.get(record.pubkey, 0) - freed + record.cost > limits.author_quota:
            return "rate-limited: storage quota of this author is used up; older events expire"
        return None

    def _insert(self, record: StoredEvent) -> None:
        self.by_id[record.id] = record
        self._arrivals[record.id] = record
        if record.replaces is not None:
            self._replaceable[record.replaces] = record
        _insert(self.everything, record)
        _insert(self.by_author.setdefault(record.pubkey, []), record)
        _insert(self.by_kind.setdefault(record.kind, []), record)
        for letter, value in record.tags:
            _insert(self.by_tag.setdefault(letter, {}).setdefault(value, []), record)
        self.bytes += record.cost
        _add_up(self._bytes_by_source, record.source, record.cost)
        _add_up(self._bytes_by_author, record.pubkey, record.cost)

    def _remove(self, record: StoredEvent) -> None:
        record.removed = True
        del self.by_id[record.id]
        del self._arrivals[record.id]
        if record.replaces is not None and self._replaceable.get(record.replaces) is record:
            del self._replaceable[record.replaces]
        position = bisect.bisect_left(self.everything, record.key, key=SEND_ORDER)
        del self.everything[position]
        _delete(self.by_author, record.pubkey, record)
        _delete(self.by_kind, record.kind, record)
        for letter, value in record.tags:
            values = self.by_tag.get(letter)
            if values is not None:
                _delete(values, value, record)
                if not values:
                    del self.by_tag[letter]
        self.bytes -= record.cost
        _add_up(self._bytes_by_source, record.source, -record.cost)
        _add_up(self._bytes_by_author, record.pubkey, -record.cost)

    def expire(self) -> None:
        """Drop events received more than ``max_age`` seconds ago."""
        cutoff = self._clock() - self.limits.max_age
        while self._arrivals:
            oldest = next(iter(self._arrivals.values()))
            if oldest.received_at >= cutoff:
                break
            self._remove(oldest)

    def count(self) -> int:
        """How many events are stored right now (after expiry)."""
        self.expire()
        return len(self.by_id)

    def bytes_of_source(self, source: str) -> int:
        """Accounted bytes stored on behalf of one client address."""
        return self._bytes_by_source.get(source, 0)

    def bytes_of_author(self, pubkey: str) -> int:
        """Accounted bytes stored for one author."""
        return self._bytes_by_author.get(pubkey, 0)
