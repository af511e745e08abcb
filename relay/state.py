"""The embedded relay without sockets: what it accepts, stores, finds and fans out, and who is connected.

``server.py`` builds one ``RelayState`` and puts it in the application settings as ``relay``;
``handlers/relay.py`` parses frames, paces each client, streams results, and calls this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from node import Event, Filter, event_json, verify_event
from relay.clients import Admission
from relay.limits import RelayLimits
from relay.policy import WritePolicy
from relay.query import StoredQuery
from relay.store import EventStore
from relay.subscriptions import SubscriptionIndex


class Connection(Protocol):
    """What the relay needs from a client connection."""

    def send_event(self, sub_id: str, frame: bytes) -> None:
        """Queue one ``EVENT`` frame (already UTF-8) of subscription ``sub_id``; never raises."""

    def shutdown(self, code: int, reason: str) -> None:
        """Close the connection with this WebSocket close code."""


class RelayState:
    """Stored events, live subscriptions, admission and the write policy, shared by all connections."""

    def __init__(
        self,
        limits: RelayLimits | None = None,
        policy: WritePolicy | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RelayLimits()
        self.policy = policy or WritePolicy()
        self.store = EventStore(self.limits, clock)
        self.subscriptions = SubscriptionIndex(self.limits.max_subscriptions, self.limits.max_filter_values)
        self.admission = Admission(self.limits, monotonic)
        self._clock = clock
        self._open: set[Connection] = set()

    # ----- events -----------------------------------------------------------------------------

    def publish(self, event: Event, source: str = "") -> tuple[bool, str]:
        """Check, verify, store and fan out one client event; returns the NIP-01 OK pair.

        ``source`` is the client address the storage quota is charged to. Cheap checks (limits, the
        write policy) run before the signature is verified.
        """
        problem = self._shape_problem(event)
        if problem is not None:
            return False, problem
        try:
            data = event_json(event).encode("utf-8")
        except UnicodeEncodeError:
            return False, "invalid: event is not valid UTF-8"
        if len(data) > self.limits.max_event_bytes:
            return False, f"invalid: event is larger than {self.limits.max_event_bytes} bytes"
        refusal = self.policy.refusal(event)
        if refusal is not None:
            return False, refusal
        try:
            verify_event(event)
        except ValueError as exc:
            return False, f"invalid: {exc}"
        accepted, reason = self.store.add(event, data, source)
        if accepted and not reason:
            self.subscriptions.fan_out(event, data)
        return accepted, reason

    def _shape_problem(self, event: Event) -> str | None:
        limits = self.limits
        if len(event.tags) > limits.max_event_tags:
            return f"invalid: more than {limits.max_event_tags} tags"
        if any(len(tag) > limits.max_tag_strings for tag in event.tags):
            return f"invalid: a tag has more than {limits.max_tag_strings} strings"
        if len(event.content) > limits.max_content_length:
            return f"invalid: content longer than {limits.max_content_length} characters"
        if event.created_at > self._clock() + limits.max_future_seconds:
            return "invalid: created_at is too far in the future"
        return None

    def query(self, filters: Iterable[Filter]) -> StoredQuery:
        """A search of the stored events, to be run in slices (``StoredQuery.step``)."""
        return StoredQuery(self.store, filters, self.limits.max_limit)

    def query_all(self, filters: Iterable[Filter]) -> list[bytes]:
        """Every stored match as JSON bytes, newest first, with no work bound (tests and tools)."""
        return [record.data for record in self.query(filters).run()]

    def stored_count(self) -> int:
        """How many events are stored right now (after expiry)."""
        return self.store.count()

    # ----- connections ------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Remember an open connection (so ``close_all`` can reach it)."""
        self._open.add(conn)

    def drop_connection(self, conn: Connection) -> None:
        """Forget a connection that went away, with every subscription it had, at once."""
        self._open.discard(conn)
        self.subscriptions.drop(conn)

    def open_count(self) -> int:
        """Open client connections."""
        return len(self._open)

    def open_connections(self) -> list[Connection]:
        """Every open client connection."""
        return list(self._open)

    def connections(self) -> list[object]:
        """Connections that hold at least one subscription."""
        return self.subscriptions.connections()

    def close_all(self, code: int = 1001, reason: str = "relay shutting down") -> None:
        """Close every client connection (server shutdown)."""
        for conn in self.open_connections():
            self.drop_connection(conn)
            conn.shutdown(code, reason)
