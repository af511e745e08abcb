"""The keyset's display name (Igloo Server's group name): shown on the signer card, set on Configure.

It names the credentials in use, so clearing the credentials clears it too. Not secret.
"""

from __future__ import annotations

import time

from node.ratelimit import Clock
from store.db import Database

MAX_NAME = 64


def check_name(name: object) -> str | None:
    """A display name: at most 64 printable characters after trimming (empty = none); ValueError otherwise."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError("name: must be a string")
    trimmed = name.strip()
    if len(trimmed) > MAX_NAME:
        raise ValueError(f"name: at most {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in trimmed):
        raise ValueError("name: control characters are not allowed")
    return trimmed or None


class KeysetNameStore:
    """The one stored name."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    def get(self) -> str | None:
        """The name, or None when none is set."""
        row = self._db.query_one("SELECT name FROM keyset_name WHERE id = 1")
        return str(row["name"]) if row is not None else None

    def set(self, name: object) -> str | None:
        """Store a name (None or empty clears it); return what is stored. ValueError for a bad name."""
        checked = check_name(name)
        if checked is None:
            self.clear()
            return None
        self._db.execute("INSERT OR REPLACE INTO keyset_name (id, name, updated_at) VALUES (1, ?, ?)",
                         (checked, self._clock()))
        return checked

    def clear(self) -> None:
        """Forget the name."""
        self._db.execute("DELETE FROM keyset_name WHERE id = 1")
