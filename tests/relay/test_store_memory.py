"""The store's byte accounting is an over-estimate of the memory stored events really keep (tracemalloc).

Events are parsed from JSON text as the relay parses them, stored, and every other reference dropped, so
what tracemalloc still sees allocated since the baseline is exactly what the store keeps.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable

import pytest

from node.nostr.event import Event
from node.nostr.messages import event_json
from relay import RelayLimits
from relay.store import EventStore

UNBOUNDED = RelayLimits(max_events=10**6, max_bytes=1 << 40, address_quota=1 << 40, author_quota=1 << 40)


def event_text(i: int, tags: list[list[str]], content: str = "", *, authors: int = 97, kind: int = 1) -> str:
    """A decodable event (the store does not verify signatures, the relay does that before)."""
    return json.dumps({"id": f"{i:064x}", "pubkey": f"{i % authors + 1:064x}",
                       "created_at": 1_700_000_000 + i, "kind": kind, "tags": tags, "content": content,
                       "sig": "0" * 128})


SHAPES: dict[str, tuple[Callable[[int], str], int]] = {  # name: (event maker, how many to store)
    "plain": (lambda i: event_text(i, [], "hello world"), 1500),
    "new author and kind each": (lambda i: event_text(i, [], "", authors=10**9, kind=1000 + i), 1500),
    "400 p tags": (lambda i: event_text(i, [["p", f"{j:064x}"] for j in range(400)]), 40),
    "2000 short t tags": (lambda i: event_text(i, [["t", str(j)] for j in range(2000)]), 20),
    "2000 unique t values": (lambda i: event_text(i, [["t", f"{i}-{j}"] for j in range(2000)]), 20),
    "many strings per tag": (lambda i: event_text(i, [["x", *[str(j) for j in range(60)]]] * 200), 20),
    "big content": (lambda i: event_text(i, [["e", f"{i:064x}"]], "y" * 90_000), 40),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_accounted_bytes_cover_what_the_store_keeps(shape: str) -> None:
    make, count = SHAPES[shape]
    texts = [make(i) for i in range(count)]
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        store = EventStore(UNBOUNDED)
        for text in texts:
            event = Event.from_json(json.loads(text))
            assert store.add(event, event_json(event).encode(), "10.0.0.1") == (True, "")
        del event
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert len(store.by_id) == count
    assert store.bytes >= kept, f"{shape}: accounted {store.bytes} < measured {kept}"
    assert store.bytes <= 3 * kept, f"{shape}: accounting is too pessimistic to be useful"
