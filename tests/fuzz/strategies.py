"""Hypothesis strategies for hostile input: JSON of every shape, bytes that are not UTF-8, odd text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Characters that break naive handling: controls, lone surrogates, BOM, RTL marks, astral planes.
NASTY_CHARS = ["\x00", "\x7f", "\ud800", "\udfff", "\ufeff", "\u202e", "\U0001f600", "\u00e9", "\\", '"',
               "\n", "\r", "%", "\u00b2", "\u0661", "1"]

text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(NASTY_CHARS), max_size=20),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),  # lone surrogates too
    st.sampled_from(["", " ", "all", "approve", "deny", "group", "share", "null", "true", "0" * 64,
                     "f" * 64, "F" * 64, "02" + "ab" * 32, "ws://", "wss://x", "bfgroup1", "bfshare1",
                     "nsec1", "npub1", "?iv=", "a?iv=b"]),
)
huge_text = st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\ud800", "0", "["]),
                      st.integers(1_000, 70_000))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53, 2**63, 2**64, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
scalars = st.one_of(st.none(), text, numbers)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON-ish value (NaN and Infinity included: Python's json accepts them)."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(text, inner, max_size=5)),
        max_leaves=max_leaves,
    )


def deep(depth: int, opener: str = "[") -> str:
    """A JSON text nested ``depth`` levels deep (arrays or objects)."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# Depths around the parser's recursion limit (about 1000) matter most.
deep_json = st.builds(deep, st.one_of(st.integers(900, 5000), st.integers(1, 100_000)),
                      st.sampled_from(["[", "{"]))
unclosed_json = st.builds(lambda d, o: o * d, st.integers(1, 60_000), st.sampled_from(["[", '{"a":']))


def dumps(value: Any) -> bytes:
    """``json.dumps`` that never fails (lone surrogates are written as \\ud800 escapes)."""
    return json.dumps(value, allow_nan=True).encode("ascii")


invalid_utf8 = st.one_of(
    st.sampled_from([b"\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
                     b"\xed\xa0\x80", b'{"a":"\xff"}', b'["\xc0\xaf"]', b"\xef\xbb\xbf{}"]),
    st.builds(lambda a, b: a + b"\xff" + b, st.binary(max_size=30), st.binary(max_size=30)),
)


def raw_bodies(structured: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[bytes]:
    """Request bodies: JSON of any shape (or ``structured`` ones), huge and deep JSON, not JSON, not UTF-8."""
    json_bodies = st.builds(dumps, structured if structured is not None else json_values())
    return st.one_of(
        json_bodies,
        json_bodies,
        json_bodies,
        st.builds(dumps, json_values(80)),
        st.builds(lambda s: s.encode(), deep_json),
        st.builds(lambda s: s.encode(), unclosed_json),
        st.builds(lambda s: dumps({"x": s}), huge_text),
        invalid_utf8,
        st.binary(max_size=200),
        st.just(b""),
        st.sampled_from([b"null", b"[]", b"{}", b"1", b'"x"', b"NaN", b"-Infinity", b"{", b"}", b"\x00",
                         b"1e999999", b"-" + b"9" * 5000, b'{"a":1,"a":2}', b"\xef\xbb\xbf{}"]),
    )


content_types = st.sampled_from([
    "application/json", "application/json; charset=UTF-8", "APPLICATION/JSON", "application/json;;;",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "multipart/form-data", "application/octet-stream", "", "application/json\u00e9", "*/*",
    None,
])
