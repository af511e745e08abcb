"""NIP-01 filter parsing and matching (node/nostr/filters.py)."""

from __future__ import annotations

from typing import Any

import pytest

from node.nostr.filters import MAX_FILTER_VALUES, Filter, matches_any, parse_filters
from tests.relay.helpers import make_event, pubkey

EVENT = make_event(0, kind=20004, tags=[["p", pubkey(1)], ["e", "x" * 3], ["t"]], created_at=1_700_000_000)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({}, True),
        ({"ids": [EVENT.id]}, True),
        ({"ids": ["0" * 64]}, False),
        ({"authors": [pubkey(0)]}, True),
        ({"authors": [pubkey(1)]}, False),
        ({"kinds": [1, 20004]}, True),
        ({"kinds": [1]}, False),
        ({"#p": [pubkey(1)]}, True),
        ({"#p": [pubkey(0)]}, False),
        ({"#e": ["xxx"], "#p": [pubkey(1)]}, True),
        ({"#t": [""]}, False),
        ({"#q": ["x"]}, False),
        ({"since": 1_700_000_000}, True),
        ({"since": 1_700_000_001}, False),
        ({"until": 1_700_000_000}, True),
        ({"until": 1_699_999_999}, False),
        ({"kinds": [20004], "authors": [pubkey(0)], "#p": [pubkey(1)], "limit": 0}, True),
    ],
)
def test_matching(obj: dict[str, Any], expected: bool) -> None:
    assert Filter.from_json(obj).matches(EVENT) is expected


def test_list_of_filters_is_ored() -> None:
    filters = parse_filters([{"kinds": [1]}, {"#p": [pubkey(1)]}])
    assert matches_any(filters, EVENT)
    assert not matches_any(parse_filters([{"kinds": [1]}]), EVENT)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"ids": "x"},
        {"ids": ["ABC"]},
        {"authors": ["A" * 64]},
        {"kinds": [1.5]},
        {"kinds": [True]},
        {"kinds": [-1]},
        {"#p": [1]},
        {"#": ["x"]},
        {"#1": ["x"]},
        {"since": "1"},
        {"limit": 2**60},
        {"search": "x"},
        {"kinds": list(range(MAX_FILTER_VALUES + 1))},
    ],
)
def test_invalid_filters(obj: Any) -> None:
    with pytest.raises(ValueError):
        Filter.from_json(obj)


def test_to_json_round_trip() -> None:
    obj = {"authors": [pubkey(0)], "kinds": [1, 7], "#p": [pubkey(1)], "since": 1, "until": 2, "limit": 3}
    assert Filter.from_json(Filter.from_json(obj).to_json()) == Filter.from_json(obj)


def test_never_matches() -> None:
    assert Filter.from_json({"kinds": []}).never_matches()
    assert Filter.from_json({"since": 5, "until": 4}).never_matches()
    assert not Filter.from_json({"since": 5, "until": 5}).never_matches()
