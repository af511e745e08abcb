"""NIP-01 subscription filters: strict parsing and matching against events.

A filter is a JSON object with optional ``ids``, ``authors``, ``kinds``, ``#<letter>`` tag lists,
``since``, ``until`` and ``limit``. Lists are OR-ed, fields are AND-ed; a list of filters is OR-ed.
Unknown fields are rejected rather than ignored, so a filter we cannot honour (``search``, say)
never silently matches everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.nostr.event import Event
from node.validate import is_hex

MAX_FILTER_VALUES = 1000
"""Upper bound on the entries of any one list in a filter (keeps matching and indexing cheap)."""

_MAX_INT = 2**53


def _int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _MAX_INT:
        raise ValueError(f"filter.{name} must be a non-negative integer")
    return value


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"filter.{name} must be a list")
    if len(value) > MAX_FILTER_VALUES:
        raise ValueError(f"filter.{name} has more than {MAX_FILTER_VALUES} entries")
    return value


def _is_tag_key(key: str) -> bool:
    return len(key) == 2 and key[0] == "#" and key[1].isascii() and key[1].isalpha()


@dataclass(frozen=True, slots=True)
class Filter:
    """One parsed NIP-01 filter. ``None`` means "field absent" (matches anything)."""

    ids: frozenset[str] | None = None
    authors: frozenset[str] | None = None
    kinds: frozenset[int] | None = None
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    since: int | None = None
    until: int | None = None
    limit: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Filter:
        """Parse a decoded JSON filter; ``ValueError`` names the bad field."""
        if not isinstance(obj, dict):
            raise ValueError("filter must be an object")
        ids = authors = kinds = None
        since = until = limit = None
        tags: dict[str, frozenset[str]] = {}
        for key, value in obj.items():
            if key in ("ids", "authors"):
                items = _list(value, key)
                if not all(is_hex(item, 32) for item in items):
                    raise ValueError(f"filter.{key} must hold 64 lowercase hex characters each")
                if key == "ids":
                    ids = frozenset(items)
                else:
                    authors = frozenset(items)
            elif key == "kinds":
                kinds = frozenset(_int(item, "kinds") for item in _list(value, key))
            elif key == "since":
                since = _int(value, key)
            elif key == "until":
                until = _int(value, key)
            elif key == "limit":
                limit = _int(value, key)
            elif _is_tag_key(key):
                items = _list(value, key)
                if not all(isinstance(item, str) for item in items):
                    raise ValueError(f"filter.{key} must be a list of strings")
                tags[key[1]] = frozenset(items)
            else:
                raise ValueError(f"unsupported filter field {json.dumps(key)[:40]}")
        return cls(ids, authors, kinds, tags, since, until, limit)

    def to_json(self) -> dict[str, Any]:
        """The filter as a JSON-ready dict (lists sorted so the output is stable)."""
        out: dict[str, Any] = {}
        if self.ids is not None:
            out["ids"] = sorted(self.ids)
        if self.authors is not None:
            out["authors"] = sorted(self.authors)
        if self.kinds is not None:
            out["kinds"] = sorted(self.kinds)
        for name, values in self.tags.items():
            out["#" + name] = sorted(values)
        for key, number in (("since", self.since), ("until", self.until), ("limit", self.limit)):
            if number is not None:
                out[key] = number
        return out

    def matches(self, event: Event) -> bool:
        """True when the event satisfies every field of this filter (``limit`` is ignored)."""
        if self.ids is not None and event.id not in self.ids:
            return False
        if self.authors is not None and event.pubkey not in self.authors:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.since is not None and event.created_at < self.since:
            return False
        if self.until is not None and event.created_at > self.until:
            return False
        for name, wanted in self.tags.items():
            if not any(len(tag) >= 2 and tag[0] == name and tag[1] in wanted for tag in event.tags):
                return False
        return True

    def never_matches(self) -> bool:
        """True for filters no event can satisfy (an empty list, or since after until)."""
        if any(values is not None and not values for values in (self.ids, self.authors, self.kinds)):
            return True
        if any(not values for values in self.tags.values()):
            return True
        return self.since is not None and self.until is not None and self.since > self.until


def parse_filters(objs: Sequence[Any]) -> list[Filter]:
    """Parse a list of decoded JSON filters (``ValueError`` on the first bad one)."""
    return [Filter.from_json(obj) for obj in objs]


def matches_any(filters: Iterable[Filter], event: Event) -> bool:
    """True when at least one filter matches the event."""
    return any(flt.matches(event) for flt in filters)
