"""EventHub: the one publisher of the live event stream.

Every published event is serialized once, kept in the persisted ring, wrapped in one WebSocket frame, and
that same frame is written to every open (uncompressed) socket. Per-connection frames (greeting, pong,
error reply, gap notice) are the socket handler's (``handlers/events.py``) and carry ``"seq": null``.

An event is stored before it is delivered: ``publish`` queues the event, and once per IOLoop turn the queued
events are written to SQLite in one transaction (WAL, synchronous=NORMAL: a commit survives the process being
killed) and only then fanned out. When the database cannot be written (locked, disk full) events are still
delivered from memory, an ``error`` event says so, and the write is retried every ``storage_retry`` seconds
(``STORAGE_RETRY`` unless the caller chose another delay).

The hub also keeps the books on connections (slots per address and in total) and closes the sockets of
sessions that ended. It has no socket code of its own: it sees the open sockets through the handler's
class-level set, which ``server.py`` hands it, and calls their ``send_shared`` and ``close_with``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

import tornado.ioloop

from config.settings import Settings
from handlers.event_frames import (
    CLOSE_AUTH_ENDED,
    CLOSE_GOING_AWAY,
    encode_payload,
    frame_body,
    websocket_text_frame,
)
from node import validate
from store.events import EventRing, StoredEvent
from store.sessions import SessionStore

log = logging.getLogger("igloo.events")

RELAY_URL = re.compile(rb"wss?://", re.IGNORECASE)
COALESCE_MIN_CLIENTS = 64  # below this many stream clients, sending at once costs less than waiting
STORAGE_RETRY = 1.0  # seconds between attempts to write the event log while the database refuses writes


def redact_relay_urls(payload: bytes) -> bytes:
    """``payload`` (an event's JSON) with credentials taken out of every relay URL in it, whichever field or
    message carries it: an event is stored and shown, and ``ws://user:pass@host/?auth=…`` must be neither."""
    if RELAY_URL.search(payload) is None:
        return payload
    return validate.redact_urls(payload.decode("utf-8")).encode("utf-8")


class EventSocket(Protocol):
    """What the hub needs from one open event socket (``handlers.events.EventStreamHandler``)."""

    hub: EventHub | None
    sent_upto: int  # highest seq this socket has been sent
    session_hash: bytes | None  # the login session it was opened with, if any

    @property
    def compressed(self) -> bool:
        """True when the socket is sent payloads one by one instead of shared frames."""
        ...

    def send_shared(self, frame: bytes, payload: bytes, check_buffer: bool = True) -> None:
        """Write pre-built frame(s); ``payload`` is for compressed sockets."""
        ...

    def close_with(self, code: int, reason: str) -> None:
        """Leave the live set and close with ``code``."""
        ...


class EventHub:
    """Publishes node and server events to the ring and to every open event socket of this app.

    ``open_sockets`` is the socket handler's class-level set; the hub serves the members whose ``hub`` is
    itself. ``clock`` (seconds, monotonic) drives the per-socket command rate limit; ``storage_retry`` is
    the delay between attempts to write the event log while the database refuses writes.
    """

    def __init__(
        self,
        config: Settings,
        ring: EventRing,
        sessions: SessionStore | None = None,
        *,
        open_sockets: Collection[EventSocket],
        clock: Callable[[], float] = time.monotonic,
        storage_retry: float = STORAGE_RETRY,
    ) -> None:
        self.config = config
        self.ring = ring
        self.sessions = sessions
        self.clock = clock
        self.storage_retry = storage_retry
        self.connection_count = 0
        self._open_sockets = open_sockets
        self._per_ip: dict[str, int] = {}
        self._reserved = 0
        self._retry_handle: object | None = None
        self._outbox: list[tuple[int, bytes, bytes]] = []
        self._tick_scheduled = False
        self.storage_error: str | None = None  # why the event log cannot be written right now
        self._sweeper: tornado.ioloop.PeriodicCallback | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic session-expiry sweep (call on the IOLoop)."""
        if self.sessions is not None and self.config.auth_enabled and self._sweeper is None:
            interval = max(0.25, min(30.0, self.config.session_timeout / 4))
            self._sweeper = tornado.ioloop.PeriodicCallback(self.sweep_sessions, interval * 1000)
            self._sweeper.start()

    def stop(self) -> None:
        """Stop timers and flush the ring to SQLite."""
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        if self._retry_handle is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._retry_handle)
            self._retry_handle = None
        self.ring.flush()

    @property
    def last_seq(self) -> int:
        """The newest event's seq."""
        return self.ring.last_seq

    def sockets(self) -> list[EventSocket]:
        """The open sockets belonging to this hub."""
        return [s for s in self._open_sockets if s.hub is self]

    # --- publishing --------------------------------------------------------------------------------

    def publish(self, type: str, message: str, data: object = None) -> dict[str, Any]:
        """Record an event and send it to every open socket. Call on the IOLoop thread.

        Returns the frame as clients receive it (with its ``seq``). ``data`` must not carry secrets; bytes
        become hex, dates ISO strings, exceptions ``{name, message}``.
        """
        seq = self.ring.next_seq()
        payload = redact_relay_urls(encode_payload(frame_body(type, message, data, seq)))
        body: dict[str, Any] = json.loads(payload)  # exactly what clients receive (data made JSON-safe)
        self.ring.append(StoredEvent(seq, payload))
        self._outbox.append((seq, payload, websocket_text_frame(payload)))
        if not self._tick_scheduled:
            self._tick_scheduled = True
            loop = tornado.ioloop.IOLoop.current()
            if self.connection_count >= COALESCE_MIN_CLIENTS and self.config.ws_coalesce_ms > 0:
                # Each write costs one send() per client: with many clients, let a burst (a sign answer is
                # two events about 1 ms apart) share it, at the price of a few milliseconds.
                loop.call_later(self.config.ws_coalesce_ms / 1000, self._deliver)
            else:
                loop.add_callback(self._deliver)
        for listener in list(self._listeners):
            try:
                listener(body)
            except Exception:
                log.exception("event listener failed")
        return body

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(body)`` for every published event (in-process consumers, tests)."""
        self._listeners.append(listener)

    def _deliver(self) -> None:
        """Once per IOLoop turn: write the queued events to SQLite, then send them to every socket."""
        self._tick_scheduled = False
        batch, self._outbox = self._outbox, []
        self.make_durable()
        if not batch:
            return
        sockets = [s for s in self._open_sockets if s.hub is self]
        first, last = batch[0][0], batch[-1][0]
        # One write (one syscall) per socket per turn: the turn's frames joined once for all sockets.
        joined = batch[0][2] if len(batch) == 1 else b"".join(frame for _, _, frame in batch)
        for sock in sockets:
            if sock.sent_upto < first and not sock.compressed:
                sock.sent_upto = last
                sock.send_shared(joined, b"")
                continue
            for seq, payload, frame in batch:
                if seq > sock.sent_upto:  # a socket opened this turn already got it in its replay
                    sock.sent_upto = seq
                    sock.send_shared(frame, payload)

    def make_durable(self) -> None:
        """Write every queued event to SQLite now (skipped while a storage fault waits for its retry)."""
        if self._retry_handle is not None or not self.ring.pending:
            return
        self.ring.flush()
        if self.ring.pending:
            self._storage_failed(self.ring.last_error or "write failed")
        elif self.storage_error is not None:
            self.storage_error = None
            self.publish("info", "Event log is being written again", {"pending": 0})

    def _storage_failed(self, reason: str) -> None:
        first = self.storage_error is None
        self.storage_error = reason
        self._retry_handle = tornado.ioloop.IOLoop.current().call_later(self.storage_retry, self._retry)
        if first:
            self.publish(
                "error",
                f"Event log cannot be written: {reason}",
                {"reason": reason, "pending": self.ring.pending},
            )

    def _retry(self) -> None:
        self._retry_handle = None
        self.make_durable()

    # --- connection accounting ---------------------------------------------------------------------

    def reserve(self, ip: str) -> int:
        """Claim a connection slot for ``ip``: 0 when granted, else the HTTP status to refuse with."""
        if self._per_ip.get(ip, 0) >= self.config.ws_max_per_ip:
            return 429
        if self._reserved >= self.config.ws_max_connections:
            return 503
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self._reserved += 1
        return 0

    def release(self, ip: str) -> None:
        """Give back a slot claimed by ``reserve``."""
        count = self._per_ip.get(ip, 0) - 1
        if count > 0:
            self._per_ip[ip] = count
        else:
            self._per_ip.pop(ip, None)
        self._reserved = max(0, self._reserved - 1)

    # --- ending connections ------------------------------------------------------------------------

    def end_session(self, session_hash: bytes) -> int:
        """Close (4401) every socket authenticated by this session; return how many."""
        closed = 0
        for sock in self.sockets():
            if sock.session_hash == session_hash:
                sock.close_with(CLOSE_AUTH_ENDED, "authentication ended")
                closed += 1
        return closed

    def sweep_sessions(self) -> None:
        """Close sockets whose session expired or was deleted."""
        if self.sessions is None:
            return
        hashes = {s.session_hash for s in self.sockets() if s.session_hash is not None}
        if not hashes:
            return
        alive = self.sessions.live_hashes(hashes)
        for dead in hashes - alive:
            self.end_session(dead)

    def sockets_pending_close(self) -> int:
        """Upgraded or upgrading connections that have not finished closing."""
        return self._reserved

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> int:
        """Close every socket of this hub; return how many."""
        socks = self.sockets()
        for sock in socks:
            sock.close_with(code, reason)
        return len(socks)
