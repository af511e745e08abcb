"""The live event stream at /api/events: EventHub (the one publisher) and EventStreamHandler (one socket).

Every published event is serialized once, kept in the persisted ring, wrapped in one WebSocket frame, and
that same frame is written to every open (uncompressed) socket. Per-connection frames (greeting, pong,
error reply, gap notice) carry ``"seq": null``.

An event is stored before it is delivered: ``publish`` queues the event, and once per IOLoop turn the queued
events are written to SQLite in one transaction (WAL, synchronous=NORMAL: a commit survives the process being
killed) and only then fanned out. When the database cannot be written (locked, disk full) events are still
delivered from memory, an ``error`` event says so, and the write is retried every ``STORAGE_RETRY`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import tornado.ioloop
import tornado.iostream
import tornado.websocket

from config.settings import Settings
from handlers.base import AuthMixin, Principal
from store.events import EventRing, StoredEvent
from store.sessions import SessionStore

log = logging.getLogger("igloo.events")

RECENT_ON_CONNECT = 100  # events a client connecting without ?since= receives before live ones
MAX_CLIENT_FRAME = 4096
# The kernel's send buffer per event socket (Linux doubles it). Left to autotuning it grows to megabytes for
# a client that stops reading, memory WS_MAX_BUFFER does not count and that delays the 1013 close by minutes;
# 64 KiB still carries thousands of events per second to a client 100 ms away.
SOCKET_SEND_BUFFER = 64 * 1024
COALESCE_MIN_CLIENTS = 64  # below this many stream clients, sending at once costs less than waiting
STORAGE_RETRY = 1.0  # seconds between attempts to write the event log while the database refuses writes
CREDENTIAL_PROTOCOLS = ("apikey.", "bearer.", "session.")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_SLOW = 1013
CLOSE_AUTH_ENDED = 4401


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds (``...Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"name": type(value).__name__, "message": str(value)}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def encode_payload(body: dict[str, Any]) -> bytes:
    """Serialize one frame body to compact UTF-8 JSON (data made JSON-safe, never failing)."""
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()
    except UnicodeEncodeError:
        pass  # a lone surrogate somewhere: ASCII-escaped JSON still carries it faithfully
    except (ValueError, TypeError, RecursionError):
        body = dict(body, data={"error": "event data could not be serialized"})
    try:
        return json.dumps(body, separators=(",", ":"), default=_json_default).encode("ascii")
    except (ValueError, TypeError, RecursionError):
        safe = dict(body, data={"error": "event data could not be serialized"})
        return json.dumps(safe, separators=(",", ":"), default=str).encode("ascii")


def websocket_text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def frame_body(type_: str, message: str, data: object = None, seq: int | None = None) -> dict[str, Any]:
    """The standard frame shape."""
    return {
        "type": type_,
        "message": message,
        "data": data,
        "timestamp": utc_now_iso(),
        "id": secrets.token_hex(8),
        "seq": seq,
    }


class EventHub:
    """Publishes node and server events to the ring and to every open event socket of this app."""

    def __init__(self, config: Settings, ring: EventRing, sessions: SessionStore | None = None) -> None:
        self.config = config
        self.ring = ring
        self.sessions = sessions
        self.connection_count = 0
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

    def sockets(self) -> list[EventStreamHandler]:
        """The open sockets belonging to this hub."""
        return [s for s in EventStreamHandler.open_sockets if s.hub is self]

    # --- publishing --------------------------------------------------------------------------------

    def publish(self, type: str, message: str, data: object = None) -> dict[str, Any]:
        """Record an event and send it to every open socket. Call on the IOLoop thread.

        Returns the frame as clients receive it (with its ``seq``). ``data`` must not carry secrets; bytes
        become hex, dates ISO strings, exceptions ``{name, message}``.
        """
        seq = self.ring.next_seq()
        payload = encode_payload(frame_body(type, message, data, seq))
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
        sockets = [s for s in EventStreamHandler.open_sockets if s.hub is self]
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
        self._retry_handle = tornado.ioloop.IOLoop.current().call_later(STORAGE_RETRY, self._retry)
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


class EventStreamHandler(AuthMixin, tornado.websocket.WebSocketHandler):
    """One event-stream client. Plain GET answers 401/426; an upgrade gets the live stream."""

    open_sockets: ClassVar[set[EventStreamHandler]] = set()

    hub: EventHub | None  # set in get(), after authentication
    session_hash: bytes | None = None
    _origin_ok = True
    _slot_ip: str | None = None
    _floor = 0
    _compressed = False
    _direct: tuple[socket.socket, Any] | None = None  # (socket, the stream's write buffer) for direct sends
    sent_upto = 0  # highest seq this socket has been sent (live fan-out skips what the replay sent)

    def initialize(self) -> None:
        """Per-request state."""
        self.hub = None
        self._tokens = 2.0 * self.config.ws_client_rate
        self._token_time = time.monotonic()

    @property
    def event_hub(self) -> EventHub:
        """The hub this socket belongs to."""
        hub: EventHub = self.application.settings["events"]
        return hub

    # --- before the upgrade ------------------------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Legacy 401/426 for plain GETs; authentication, caps and origin for upgrades."""
        upgrading = self.request.headers.get("Upgrade", "").lower() == "websocket"
        principal = self.authenticate_headers()
        if upgrading and principal is None:
            principal = self._authenticate_ws()
        if principal is None:
            self._refuse(401, {"error": "Authentication required"})
            return
        if not upgrading:
            self._legacy_upgrade_required()
            return
        hub = self.event_hub
        ip = self.client_ip()
        refusal = hub.reserve(ip)
        if refusal:
            reason = "Too many connections from this address" if refusal == 429 else "Server is at capacity"
            if refusal == 429:
                self.set_header("Retry-After", "30")
            self._refuse(refusal, {"error": reason})
            return
        self.hub = hub
        self.session_hash = principal.session_hash
        self._origin_ok = self._origin_allowed()
        self._slot_ip = ip
        try:
            await super().get(*args, **kwargs)
        finally:
            self._unregister()
            if self._slot_ip is not None:
                hub.release(self._slot_ip)
                self._slot_ip = None

    def _refuse(self, status: int, body: dict[str, str]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def _legacy_upgrade_required(self) -> None:
        scheme = "wss" if self.request.protocol == "https" else "ws"
        self.set_status(426)
        self.set_header("Upgrade", "websocket")
        self.set_header("Connection", "Upgrade")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(
            json.dumps(
                {
                    "error": "Event streaming has been migrated to WebSocket",
                    "message": f"Please connect using WebSocket to {scheme}://{self.request.host}/api/events",
                    "upgrade": "websocket",
                    "endpoint": "/api/events",
                }
            )
        )

    def _offered_protocols(self) -> list[str]:
        header = self.request.headers.get("Sec-WebSocket-Protocol", "")
        return [p.strip() for p in header.split(",") if p.strip()]

    def _authenticate_ws(self) -> Principal | None:
        """Subprotocol hints, then the query string (kept for compatibility; never logged)."""
        for proto in self._offered_protocols():
            kind, _, token = proto.partition(".")
            kind = kind.lower()
            if kind in {"apikey", "bearer"}:
                found = self.principal_for_api_key(token)
            elif kind == "session":
                found = self.principal_for_session(token)
            else:
                continue
            if found is not None:
                return found
        api_key = self.get_query_argument("apiKey", None)
        if api_key:
            found = self.principal_for_api_key(api_key)
            if found is not None:
                return found
        return self.principal_for_session(self.get_query_argument("sessionId", None))

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Pick a plain protocol the client offered; never one that carries a credential."""
        for proto in subprotocols:
            if not proto.lower().startswith(CREDENTIAL_PROTOCOLS) and len(proto) <= 64:
                return proto
        return None

    def check_origin(self, origin: str) -> bool:
        """Origin is checked in ``get`` and enforced with a 1008 close after the upgrade."""
        return True

    def _origin_allowed(self) -> bool:
        origin = self.request.headers.get("Origin")
        if origin is None:
            return True  # not a browser
        allowed = self.config.allowed_origins
        if "*" in allowed:
            return True
        normalized = origin.strip().lower().rstrip("/")
        if normalized in allowed:
            return True
        netloc = normalized.split("://", 1)[-1]
        return netloc == self.request.host.lower()

    def get_compression_options(self) -> dict[str, Any] | None:
        """permessage-deflate only when WS_COMPRESSION=true (compressed sockets cost one deflate each)."""
        return {} if self.config.ws_compression else None

    # --- after the upgrade -------------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Greet, replay what the client missed (or the recent events), then join the live set."""
        if not self._origin_ok:
            self.close_with(CLOSE_POLICY, "origin not allowed")
            return
        conn = self.ws_connection
        self.set_nodelay(True)  # a frame must not wait for the ACK of the previous one (Nagle, up to 40 ms)
        sock = getattr(getattr(conn, "stream", None), "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
        self._compressed = getattr(conn, "_compressor", None) is not None
        stream = getattr(conn, "stream", None)
        buffer = getattr(stream, "_write_buffer", None)
        if not self._compressed and type(stream) is tornado.iostream.IOStream and buffer is not None:
            self._direct = (stream.socket, buffer)
        hub = self.event_hub
        hub.make_durable()  # the replay below may include events queued this turn: store them first
        self.sent_upto = hub.last_seq
        since = self._since_argument()
        self.send_own(frame_body("system", "Connected to event stream", {"lastSeq": hub.last_seq}))
        if since is None:
            recent = hub.ring.recent(RECENT_ON_CONNECT)
            self._floor = recent[0].seq - 1 if recent else hub.last_seq
            self._send_stored(recent)
        else:
            self._replay_on_open(since)
        EventStreamHandler.open_sockets.add(self)
        hub.connection_count += 1

    def _since_argument(self) -> int | None:
        raw = self.get_query_argument("since", None)
        if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # int() refuses "²"
            return None
        return int(raw)

    def _replay_on_open(self, since: int) -> None:
        """Send every stored event after ``since`` (with a gap or reset notice when history is missing)."""
        hub = self.event_hub
        replay = hub.ring.since(since)
        if replay.reset:
            self.send_own(
                frame_body(
                    "system",
                    "Event history was reset on the server",
                    {"reset": True, "lastSeq": hub.last_seq},
                )
            )
            self._floor = replay.events[0].seq - 1 if replay.events else hub.last_seq
        else:
            if replay.gap is not None:
                self.send_own(self._gap_notice(*replay.gap))
            self._floor = since
        self._send_stored(replay.events)

    @staticmethod
    def _gap_notice(first: int, last: int) -> dict[str, Any]:
        return frame_body(
            "system",
            "Some events were missed and are no longer available",
            {"gap": {"from": first, "to": last}},
        )

    def _send_stored(self, events: list[StoredEvent]) -> None:
        for event in events:
            self.send_shared(websocket_text_frame(event.payload), event.payload, check_buffer=False)

    @property
    def compressed(self) -> bool:
        """True when this socket negotiated permessage-deflate (it is sent payloads, not shared frames)."""
        return self._compressed

    def send_shared(self, frame: bytes, payload: bytes, check_buffer: bool = True) -> None:
        """Write pre-built frame(s) to this socket; drop the socket when it fails or falls too far behind.

        ``payload`` is only used by compressed sockets, which are always sent one event at a time.
        """
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            self._unregister()
            return
        direct = self._direct
        if direct is not None and not len(direct[1]):
            # Nothing queued: hand the frame to the kernel now. IOStream.write costs a Future and buffer
            # bookkeeping per call (about 10 µs per socket per event); only a remainder the kernel does not
            # take goes through the stream, so frames stay in order and errors surface the stream's way.
            try:
                sent = direct[0].send(frame)
            except OSError:  # would block, or the connection failed: the stream's write reports it
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        stream: tornado.iostream.IOStream | None = getattr(conn, "stream", None)
        if stream is None:
            self._unregister()
            return
        try:
            if self._compressed:
                self.write_message(payload.decode("utf-8"))
            else:
                stream.write(frame)
        except (tornado.iostream.StreamClosedError, tornado.websocket.WebSocketClosedError):
            self._unregister()
            return
        except Exception:  # one socket's failure never reaches the others
            log.exception("event socket write failed")
            self._unregister()
            conn._abort()
            return
        if check_buffer and self._unsent_bytes(stream) > self.config.ws_max_buffer:
            self.close_with(CLOSE_TOO_SLOW, "too slow: reconnect and resume")

    @staticmethod
    def _unsent_bytes(stream: tornado.iostream.BaseIOStream) -> int:
        buffer = getattr(stream, "_write_buffer", None)
        return len(buffer) if buffer is not None else 0

    def send_own(self, body: dict[str, Any]) -> None:
        """Send a per-connection frame (``seq`` null)."""
        try:
            self.write_message(encode_payload(body).decode("utf-8"))
        except tornado.websocket.WebSocketClosedError:
            self._unregister()

    def on_message(self, message: str | bytes) -> None:
        """Handle ``resume`` and ``ping``; answer anything else with an ``error`` frame."""
        if not self._take_token():
            self.close_with(CLOSE_POLICY, "too many messages")
            return
        if isinstance(message, bytes):
            self._reply_error("binary frames are not accepted")
            return
        try:
            command = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser allows
            self._reply_error("invalid JSON")
            return
        kind = command.get("type") if isinstance(command, dict) else None
        if kind == "ping":
            self.send_own(frame_body("pong", "pong", {"lastSeq": self.event_hub.last_seq}))
        elif kind == "resume":
            since = command.get("since")
            if not isinstance(since, int) or isinstance(since, bool) or since < 0:
                self._reply_error("resume needs a non-negative integer 'since'")
                return
            if since < self._floor:
                self._replay_range(since, self._floor)
        else:
            self._reply_error("unknown command: expected 'resume' or 'ping'")

    def _replay_range(self, since: int, floor: int) -> None:
        """Resume mid-stream: send events in (since, floor], which this connection has not sent."""
        replay = self.event_hub.ring.since(since)
        if replay.gap is not None:
            self.send_own(self._gap_notice(replay.gap[0], min(replay.gap[1], floor)))
        self._send_stored([e for e in replay.events if e.seq <= floor])
        self._floor = since

    def _take_token(self) -> bool:
        rate = float(self.config.ws_client_rate)
        now = time.monotonic()
        self._tokens = min(2 * rate, self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _reply_error(self, message: str) -> None:
        self.send_own(frame_body("error", message))

    def close_with(self, code: int, reason: str) -> None:
        """Leave the live set and close with ``code``."""
        self._unregister()
        self.close(code, reason)

    def on_close(self) -> None:
        """Leave the live set."""
        self._unregister()

    def _unregister(self) -> None:
        if self in EventStreamHandler.open_sockets:
            EventStreamHandler.open_sockets.discard(self)
            self.event_hub.connection_count -= 1


ROUTES: list[tuple[Any, ...]] = [(r"/api/events", EventStreamHandler)]
