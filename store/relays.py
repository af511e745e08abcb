"""The relay list set on the dashboard (or ``PUT /api/relays``): it wins over RELAYS and over the relays
saved with the credentials until it is cleared. Relays are not secret; the list is stored in clear."""

from __future__ import annotations

import json
import time

from node.ratelimit import Clock
from store.db import Database


class RelayListStore:
    """The one stored relay list (``node.manager.RelayListStoreLike``)."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    def load(self) -> tuple[str, ...] | None:
        """The stored list, or None when none is set."""
        row = self._db.query_one("SELECT relays FROM node_relays WHERE id = 1")
        return tuple(json.loads(row["relays"])) if row else None

    def save(self, relays: list[str] | tuple[str, ...]) -> None:
        """Store ``relays`` (replacing any earlier list)."""
        self._db.execute(
            "INSERT OR REPLACE INTO node_relays (id, relays, updated_at) VALUES (1, ?, ?)",
            (json.dumps(list(relays)), self._clock()),
        )

    def clear(self) -> bool:
        """Forget the list; False when none was stored."""
        return self._db.execute("DELETE FROM node_relays WHERE id = 1").rowcount > 0
