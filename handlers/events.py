"""The live event stream at /api/events: EventStreamHandler, one socket per client, and the legacy 426.

Before the upgrade the handler authenticates, checks the connection caps with the hub and the Origin; a plain
GET gets Igloo Server's 401/426 answers. After it, the socket greets, replays what the client missed, joins
the class-level set ``open_sockets`` (the hub fans events out to its members), answers ``ping``/``resume``
commands under a rate limit, and is closed when it falls too far behind.

The publisher is ``handlers/event_hub.py``, the frame format ``handlers/event_frames.py``, and the direct
``send()`` under Tornado's public API ``handlers/ws_direct.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import tornado.iostream
import tornado.websocket

from handlers.base import AuthMixin, Principal, Throttled
from handlers.event_frames import (
    CLOSE_POLICY,
    CLOSE_TOO_SLOW,
    encode_payload,
    frame_body,
    websocket_text_frame,
)
from handlers.event_hub import EventHub
from handlers.openapi import ERROR, STR, obj, op
from handlers.proxy import origin_allowed, public_host
from handlers.roles import READ, allows
from handlers.throttle import CREDENTIALS, WS_UPGRADE
from handlers.ws_direct import DirectSender
from node import TokenBucket
from store.events import StoredEvent

log = logging.getLogger("igloo.events")

MAX_HISTORY = 1000  # most stored events ?history=N asks for (the ring holds EVENT_BUFFER_SIZE at most)
MAX_CLIENT_FRAME = 4096
# The kernel's send buffer per event socket (Linux doubles it). Left to autotuning it grows to megabytes for
# a client that stops reading, memory WS_MAX_BUFFER does not count and that delays the 1013 close by minutes;
# 64 KiB still carries thousands of events per second to a client 100 ms away.
SOCKET_SEND_BUFFER = 64 * 1024
CREDENTIAL_PROTOCOLS = ("apikey.", "api-key.", "bearer.", "session.")
MAX_SUBPROTOCOL = 1024  # a token the handshake may echo (an API key or session id fits easily)
# The level (handlers/roles.py) each client command needs; a command not listed is refused as unknown.
COMMAND_ACCESS = {"ping": READ, "resume": READ}


class EventStreamHandler(AuthMixin, tornado.websocket.WebSocketHandler):
    """One event-stream client. Plain GET answers 401/426; an upgrade gets the live stream."""

    access = READ  # every command below is read-only too (COMMAND_ACCESS)
    openapi = {"get": op(
        "The live event stream (WebSocket)",
        description="Upgrade to a WebSocket for the live events (docs/events.md): authentication by "
                    "cookie, `Sec-WebSocket-Protocol` hints (`apikey.<token>`, `bearer.<token>`, "
                    "`session.<id>`) or the query (`apiKey`, `sessionId`); `?since=<seq>` resumes. A plain "
                    "GET answers 426.",
        query={"since": {"type": "integer", "minimum": 0}},
        responses={101: ("Switching to the WebSocket protocol", None),
                   426: ("Upgrade required",
                         obj({"error": STR, "message": STR, "upgrade": STR, "endpoint": STR},
                             ["error", "upgrade", "endpoint"])),
                   429: ("Too many connections from this address", ERROR),
                   503: ("Server at capacity", ERROR)},
    )}

    open_sockets: ClassVar[set[EventStreamHandler]] = set()

    hub: EventHub | None  # set in get(), after authentication
    session_hash: bytes | None = None
    api_key_id: int | None = None  # the stored API key that opened this socket (revoking it closes it)
    caller: Principal | None = None
    _origin_ok = True
    _slot_ip: str | None = None
    _floor = 0
    _compressed = False
    _wire: DirectSender | None = None  # set on open: direct send() and the stream's backlog
    sent_upto = 0  # highest seq this socket has been sent (live fan-out skips what the replay sent)

    def initialize(self) -> None:
        """Per-request state."""
        self.hub = None
        # frames/s, bursts of WS_MSG_BURST (twice the rate unless set)
        self._commands = TokenBucket(self.config.ws_client_rate, self.config.ws_client_burst,
                                     clock=self.event_hub.clock)

    @property
    def event_hub(self) -> EventHub:
        """The hub this socket belongs to."""
        hub: EventHub = self.application.settings["events"]
        return hub

    # --- before the upgrade ------------------------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Legacy 401/426 for plain GETs; authentication, caps and origin for upgrades."""
        upgrading = self.request.headers.get("Upgrade", "").lower() == "websocket"
        try:
            if upgrading:
                self.apply_rate_limit(WS_UPGRADE)  # every attempt, before any credential is looked at
            principal = self.current_user  # cookie and headers, behind the failed-credential limit
            if upgrading and principal is None:
                principal = self._authenticate_ws_limited()
        except Throttled as exc:
            self.set_header("Retry-After", str(exc.retry_after))
            self._refuse(429, {"error": "Too many requests. Please try again later."})
            return
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
        self.api_key_id = principal.api_key_id
        self.caller = principal
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
        host = public_host(self.request, self.config.trust_proxy)
        self.set_status(426)
        self.set_header("Upgrade", "websocket")
        self.set_header("Connection", "Upgrade")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(
            json.dumps(
                {
                    "error": "Event streaming has been migrated to WebSocket",
                    "message": f"Please connect using WebSocket to {scheme}://{host}/api/events",
                    "upgrade": "websocket",
                    "endpoint": "/api/events",
                }
            )
        )

    def _offered_protocols(self) -> list[str]:
        header = self.request.headers.get("Sec-WebSocket-Protocol", "")
        return [p.strip() for p in header.split(",") if p.strip()]

    def _authenticate_ws_limited(self) -> Principal | None:
        """``_authenticate_ws`` behind the failed-credential limit (API keys in subprotocols or the query)."""
        guessing = self.get_query_argument("apiKey", None) is not None or any(
            proto.lower().startswith(("apikey.", "bearer.")) for proto in self._offered_protocols())
        if guessing:
            self.refuse_when_exhausted(CREDENTIALS)
        found = self._authenticate_ws()
        if guessing and found is None:
            self.charge_failure(CREDENTIALS)
        return found

    def _authenticate_ws(self) -> Principal | None:
        """Subprotocol hints, then the query string (kept for compatibility; never logged)."""
        for proto in self._offered_protocols():
            kind, _, token = proto.partition(".")
            kind = kind.lower()
            if kind in {"apikey", "api-key", "bearer"}:
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
        """The protocol to answer with: a plain one the client offered, else its credential hint.

        A credential hint is echoed only when nothing else was offered: a browser aborts the handshake when
        it offered protocols and the server selects none (Igloo Server selects the first offered).
        """
        usable = [proto for proto in subprotocols if len(proto) <= MAX_SUBPROTOCOL]
        for proto in usable:
            if not proto.lower().startswith(CREDENTIAL_PROTOCOLS):
                return proto
        return usable[0] if usable else None

    def check_origin(self, origin: str) -> bool:
        """Origin is checked in ``get`` and enforced with a 1008 close after the upgrade."""
        return True

    def _origin_allowed(self) -> bool:
        """Same scheme, host and port as this server, or listed in ALLOWED_ORIGINS (``handlers.proxy``)."""
        config = self.config
        return origin_allowed(self.request.headers.get("Origin"), self.request, config.trust_proxy,
                              config.allowed_origins)

    def get_compression_options(self) -> dict[str, Any] | None:
        """permessage-deflate only when WS_COMPRESSION=true (compressed sockets cost one deflate each)."""
        return {} if self.config.ws_compression else None

    # --- after the upgrade -------------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Greet, replay what the client missed (or the recent events), then join the live set."""
        assert self.ws_connection is not None  # open() runs on an upgraded connection
        wire = self._wire = DirectSender(self.ws_connection)
        if not self._origin_ok:
            self.close_with(CLOSE_POLICY, "origin not allowed")
            return
        self.set_nodelay(True)  # a frame must not wait for the ACK of the previous one (Nagle, up to 40 ms)
        wire.cap_kernel_buffer(SOCKET_SEND_BUFFER)
        self._compressed = wire.is_compressed
        hub = self.event_hub
        hub.make_durable()  # the replay below may include events queued this turn: store them first
        self.sent_upto = hub.last_seq
        since = self._count_argument("since")
        self.send_own(frame_body("system", "Connected to event stream", {"lastSeq": hub.last_seq}))
        if since is not None:
            self._replay_on_open(since)
        else:
            # Live events only, as on Igloo Server; ?history=N asks for the last N stored events first.
            history = min(self._count_argument("history") or 0, MAX_HISTORY)
            recent = hub.ring.recent(history) if history else []
            self._floor = recent[0].seq - 1 if recent else hub.last_seq
            self._send_stored(recent)
        EventStreamHandler.open_sockets.add(self)
        hub.connection_count += 1

    def _count_argument(self, name: str) -> int | None:
        """A non-negative integer query argument, or None when absent or not plain ASCII digits."""
        raw = self.get_query_argument(name, None)
        if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # int() accepts "²"
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
        wire = self._wire
        if wire is not None:
            frame = wire.try_send(frame)  # nothing queued: the kernel takes what it can now
            if not frame:
                return
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
            if wire is not None:
                wire.abort()
            return
        if check_buffer and self.unsent_bytes() > self.config.ws_max_buffer:
            self.close_with(CLOSE_TOO_SLOW, "too slow: reconnect and resume")

    def unsent_bytes(self) -> int:
        """Bytes written to this socket that the kernel has not taken yet (the client's backlog)."""
        wire = self._wire
        return wire.unsent_bytes() if wire is not None else 0

    def send_own(self, body: dict[str, Any]) -> None:
        """Send a per-connection frame (``seq`` null)."""
        try:
            self.write_message(encode_payload(body).decode("utf-8"))
        except tornado.websocket.WebSocketClosedError:
            self._unregister()

    def on_message(self, message: str | bytes) -> None:
        """Handle ``resume`` and ``ping``; answer anything else with an ``error`` frame."""
        if not self._commands.take():
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
        level = COMMAND_ACCESS.get(kind) if isinstance(kind, str) else None
        if level is not None and not allows(self.caller, level):
            self._reply_error(f"'{kind}' is not allowed for this caller")
            return
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
