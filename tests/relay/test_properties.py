"""Properties: parsers raise only ValueError; the indexed query equals a brute-force scan."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from node.nostr.event import Event
from node.nostr.filters import Filter
from node.nostr.messages import parse_client_message, parse_relay_message
from relay import RelayLimits, RelayState
from tests.crypto.fuzz import prop
from tests.relay.helpers import make_event, pubkey

_scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | st.text(max_size=70)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
_type = st.sampled_from(["EVENT", "REQ", "CLOSE", "OK", "EOSE", "CLOSED", "NOTICE", "AUTH", "COUNT"])
_frames = st.one_of(
    st.text(max_size=200),
    _json.map(json.dumps),
    st.tuples(_type, st.lists(_json, max_size=4)).map(lambda t: json.dumps([t[0], *t[1]])),
)


def _only_value_error(parse: Any, frame: str) -> None:
    try:
        parse(frame)
    except ValueError:
        pass


@prop(60)
@given(_frames)
def test_client_parser_raises_only_value_error(frame: str) -> None:
    _only_value_error(parse_client_message, frame)


@prop(60)
@given(_frames)
def test_relay_parser_raises_only_value_error(frame: str) -> None:
    _only_value_error(parse_relay_message, frame)


_POOL: list[Event] = [
    make_event(
        i % 3,
        kind=(1, 7, 2)[i % 3],
        created_at=1_700_000_000 + (i * 7) % 13,
        tags=[["p", pubkey(i % 4)]] if i % 2 else [],
        content=str(i),
    )
    for i in range(24)
]

_filters = st.builds(
    lambda kinds, authors, p, since, until, limit: Filter.from_json(
        {
            k: v
            for k, v in {
                "kinds": kinds,
                "authors": [pubkey(a) for a in authors] if authors is not None else None,
                "#p": [pubkey(x) for x in p] if p is not None else None,
                "since": since,
                "until": until,
                "limit": limit,
            }.items()
            if v is not None
        }
    ),
    st.none() | st.lists(st.sampled_from([1, 7, 2]), max_size=2),
    st.none() | st.lists(st.integers(0, 2), max_size=2),
    st.none() | st.lists(st.integers(0, 3), max_size=2),
    st.none() | st.integers(1_699_999_998, 1_700_000_014),
    st.none() | st.integers(1_699_999_998, 1_700_000_014),
    st.none() | st.integers(0, 30),
)


@prop(60)
@given(st.lists(_filters, min_size=1, max_size=3))
def test_query_equals_brute_force(filters: list[Filter]) -> None:
    hub = RelayState(RelayLimits(max_limit=10))
    for event in _POOL:
        hub.publish(event)
    expected: dict[str, Event] = {}
    newest_first = sorted(_POOL, key=lambda e: (-e.created_at, e.id))
    for flt in filters:
        limit = 10 if flt.limit is None else min(flt.limit, 10)
        for event in [e for e in newest_first if flt.matches(e)][:limit]:
            expected[event.id] = event
    want = [e.id for e in sorted(expected.values(), key=lambda e: (-e.created_at, e.id))]
    got = [json.loads(data)["id"] for data in hub.query_all(filters)]
    assert got == want
