"""A REQ's stored-event search, done in slices of bounded work so the event loop can run between them.

Each filter walks the index of its most selective field (ids, then whichever of authors, kinds or one tag
has the fewest stored candidates, else all events), newest first, from ``until`` down to ``since``, and
stops after ``limit`` matches. The walk remembers where it stopped by send-order key, so events stored or
removed between slices do not disturb it; events stored after the query began are skipped (the live
subscription, registered first, delivers those).

Work is counted in units of roughly one candidate check (a tag comparison over many tags costs more);
the relay charges it to the client's token bucket and ends a REQ that needs more than ``max_query_work``.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from node import Filter
from relay.store import SEND_ORDER, EventStore, StoredEvent

TAGS_PER_WORK_UNIT = 16


def record_matches(flt: Filter, record: StoredEvent) -> tuple[bool, int]:
    """Whether a stored record satisfies the filter (as ``Filter.matches``), and the work it took."""
    if flt.ids is not None and record.id not in flt.ids:
        return False, 1
    if flt.authors is not None and record.pubkey not in flt.authors:
        return False, 1
    if flt.kinds is not None and record.kind not in flt.kinds:
        return False, 1
    if flt.since is not None and record.created_at < flt.since:
        return False, 1
    if flt.until is not None and record.created_at > flt.until:
        return False, 1
    work = 1
    for name, wanted in flt.tags.items():
        work += 1 + len(record.tags) // TAGS_PER_WORK_UNIT
        if wanted.isdisjoint([value for letter, value in record.tags if letter == name]):
            return False, work
    return True, work


@dataclass(slots=True)
class _Scan:
    flt: Filter
    remaining: int
    field: str
    cursor: tuple[int, str] | None = None
    finished: bool = False


class StoredQuery:
    """The stored events matching a REQ's filters, found a slice at a time (see the module doc)."""

    def __init__(self, store: EventStore, filters: Iterable[Filter], max_limit: int) -> None:
        self._store = store
        self._started_at = store.seq
        self._found: dict[str, StoredEvent] = {}
        self._scans: list[_Scan] = []
        self.work = 0
        store.expire()
        for flt in filters:
            limit = max_limit if flt.limit is None else min(flt.limit, max_limit)
            if limit > 0 and not flt.never_matches():
                self._scans.append(_Scan(flt, limit, self._plan(flt)))

    @property
    def done(self) -> bool:
        """True when every filter has found its ``limit`` or run out of candidates."""
        return not self._scans

    def step(self, budget: int) -> int:
        """Search on for about ``budget`` work units; returns the work done."""
        spent = 0
        while self._scans and spent < budget:
            scan = self._scans[0]
            spent += self._advance(scan, budget - spent)
            if scan.finished:
                self._scans.pop(0)
        self.work += spent
        return spent

    def run(self) -> list[StoredEvent]:
        """Search to the end with no work bound (tests and tools; the relay uses ``step``)."""
        while not self.done:
            self.step(1 << 30)
        return self.results()

    def results(self) -> list[StoredEvent]:
        """What was found and is still stored, newest first (NIP-01 order)."""
        return sorted((r for r in self._found.values() if not r.removed), key=SEND_ORDER)

    def _plan(self, flt: Filter) -> str:
        store = self._store
        if flt.ids is not None:
            return "ids"
        options: list[tuple[int, str]] = []
        if flt.authors is not None:
            options.append((sum(len(store.by_author.get(a, ())) for a in flt.authors), "authors"))
        if flt.kinds is not None:
            options.append((sum(len(store.by_kind.get(k, ())) for k in flt.kinds), "kinds"))
        for letter, values in flt.tags.items():
            bucket = store.by_tag.get(letter, {})
            options.append((sum(len(bucket.get(v, ())) for v in values), "#" + letter))
        self.work += sum(len(values) for values in (flt.authors or (), flt.kinds or (), *flt.tags.values()))
        return min(options)[1] if options else "all"

    def _buckets(self, scan: _Scan) -> list[list[StoredEvent]]:
        store, flt = self._store, scan.flt
        if scan.field == "ids":
            present = (store.by_id.get(i) for i in flt.ids or ())
            return [sorted((r for r in present if r is not None), key=SEND_ORDER)]
        if scan.field == "authors":
            found = (store.by_author.get(a) for a in flt.authors or ())
        elif scan.field == "kinds":
            found = (store.by_kind.get(k) for k in flt.kinds or ())
        elif scan.field.startswith("#"):
            values = store.by_tag.get(scan.field[1], {})
            found = (values.get(v) for v in flt.tags[scan.field[1]])
        else:
            return [store.everything]
        return [bucket for bucket in found if bucket]

    def _walk(self, scan: _Scan, buckets: list[list[StoredEvent]]) -> Iterator[StoredEvent]:
        walks = []
        for bucket in buckets:
            if scan.cursor is not None:
                start = bisect.bisect_right(bucket, scan.cursor, key=SEND_ORDER)
            elif scan.flt.until is not None:
                start = bisect.bisect_left(bucket, (-scan.flt.until, ""), key=SEND_ORDER)
            else:
                start = 0
            walks.append(islice(bucket, start, None))
        if len(walks) == 1:
            return walks[0]
        return heapq.merge(*walks, key=SEND_ORDER)

    def _advance(self, scan: _Scan, budget: int) -> int:
        buckets = self._buckets(scan)
        spent = 1 + (len(scan.flt.ids or ()) if scan.field == "ids" else len(buckets))
        since, moved = scan.flt.since, False
        for record in self._walk(scan, buckets):
            if moved and spent >= budget:  # at least one candidate per call, however small the budget
                return spent
            moved = True
            if since is not None and record.created_at < since:
                break
            scan.cursor = record.key
            if record.seq > self._started_at:
                spent += 1
                continue
            matched, work = record_matches(scan.flt, record)
            spent += work
            if matched:
                self._found[record.id] = record
                scan.remaining -= 1
                if scan.remaining == 0:
                    break
        scan.finished = True
        return spent
