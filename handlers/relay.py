"""The embedded Nostr relay at ``/`` (NIP-01 over WebSocket, NIP-11 information document).

Same port as the dashboard, no authentication (it is a public relay endpoint and Nostr clients
are browsers on other origins). A plain browser ``GET /`` is redirected to ``/dashboard``.

Application settings read here (all optional): ``relay_limits`` (a ``RelayLimits`` or a mapping
of its field names), ``relay_hub`` (a shared ``RelayHub``; created on first use when absent).
"""

from __future__ import annotations

import json
import logging
import time
from importlib import metadata
from typing import Any

from tornado import websocket
from tornado.concurrent import Future

from handlers.relay_hub import RelayHub, RelayLimits
from node import (
    ClientClose,
    ClientEvent,
    ClientReq,
    InvalidEventMessage,
    InvalidSubscription,
    build_closed,
    build_eose,
    build_notice,
    build_ok,
    parse_client_message,
    sub_id_prefix,
    verify_event,
)

log = logging.getLogger("igloo.relay")

RELAY_NAME = "Igloo embedded relay"
RELAY_DESCRIPTION = (
    "In-memory NIP-01 relay built into Igloo, so a signing group can run with no outside network. "
    "Ephemeral events are delivered live and never stored."
)


def _version() -> str:
    try:
        return metadata.version("igloo")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def relay_hub(settings: dict[str, Any]) -> RelayHub:
    """The application's relay hub, created from ``relay_limits`` on first use."""
    hub = settings.get("relay_hub")
    if not isinstance(hub, RelayHub):
        hub = RelayHub(RelayLimits.from_setting(settings.get("relay_limits")))
        settings["relay_hub"] = hub
    return hub


def relay_information(limits: RelayLimits) -> dict[str, Any]:
    """The NIP-11 document."""
    return {
        "name": RELAY_NAME,
        "description": RELAY_DESCRIPTION,
        "supported_nips": [1, 11],
        "software": "igloo",
        "version": _version(),
        "limitation": {
            "max_message_length": limits.max_message_length,
            "max_subscriptions": limits.max_subscriptions,
            "max_filters": limits.max_filters,
            "max_limit": limits.max_limit,
            "max_subid_length": 64,
            "max_event_tags": limits.max_event_tags,
            "max_content_length": limits.max_content_length,
            "auth_required": False,
            "payment_required": False,
        },
    }


class _TokenBucket:
    """Per-connection rate limit: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RelayHandler(websocket.WebSocketHandler):
    """One relay client connection (and the non-upgrade NIP-11 / redirect responses)."""

    _bucket: _TokenBucket
    _pending: int = 0
    _closing: bool = False

    @property
    def hub(self) -> RelayHub:
        """The shared relay state."""
        return relay_hub(self.application.settings)

    @property
    def limits(self) -> RelayLimits:
        """The relay's bounds."""
        return self.hub.limits

    @property
    def max_message_size(self) -> int:
        """Frames above this close the connection with 1009 (Tornado enforces it)."""
        return self.limits.max_message_length

    @property
    def ping_interval(self) -> float | None:
        """Protocol pings find dead clients so their subscriptions are dropped."""
        configured = self.settings.get("websocket_ping_interval")
        return float(configured) if configured else self.limits.ping_interval

    def check_origin(self, origin: str) -> bool:
        """Any origin: Nostr clients are web apps on other sites, and nothing here needs a login."""
        return True

    def _set_cors(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Allow-Headers", "*")
        self.set_header("Access-Control-Allow-Methods", "GET, OPTIONS")

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Upgrade to the relay, or serve NIP-11, or send a browser to the dashboard."""
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            if self.hub.open_count() >= self.limits.max_connections:
                self.set_status(503)
                self.finish("relay is full")
                return
            await super().get(*args, **kwargs)
            return
        if "application/nostr+json" in self.request.headers.get("Accept", ""):
            self._set_cors()
            self.set_header("Content-Type", "application/nostr+json")
            self.finish(json.dumps(relay_information(self.limits)))
            return
        self.redirect("/dashboard")

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight for the NIP-11 document."""
        self._set_cors()
        self.set_status(204)
        self.finish()

    # ----- relay protocol ---------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        """A client connected."""
        # Relay traffic is small request/response frames: Nagle plus delayed ACKs would hold each one
        # back by up to 40 ms on a connection with unacknowledged data.
        self.set_nodelay(True)
        self._bucket = _TokenBucket(self.limits.event_rate, self.limits.event_burst)
        self._pending = 0
        self._closing = False
        self.hub.register(self)

    def on_close(self) -> None:
        """A client went away: drop its subscriptions."""
        self._closing = True
        self.hub.drop_connection(self)

    def on_message(self, message: str | bytes) -> None:
        """Handle one client frame; nothing a client sends may raise out of here."""
        try:
            self._handle(message)
        except Exception:
            log.exception("relay: internal error while handling a client frame")
            self._send_text(build_notice("error: internal error"))

    def _handle(self, message: str | bytes) -> None:
        if self._closing:
            return  # being closed (slow reader, shutdown): nothing more is registered for it
        if isinstance(message, bytes):
            self._send_text(build_notice("invalid: binary frames are not supported"))
            return
        try:
            parsed = parse_client_message(message)
        except InvalidEventMessage as exc:
            if exc.event_id is None:
                self._send_text(build_notice(f"invalid: {exc}"))
            else:
                self._send_text(build_ok(exc.event_id, False, f"invalid: {exc}"))
            return
        except InvalidSubscription as exc:
            self._send_text(build_closed(exc.sub_id, f"invalid: {exc}"))
            return
        except ValueError as exc:
            self._send_text(build_notice(f"invalid: {exc}"))
            return
        if isinstance(parsed, ClientEvent):
            self._on_event(parsed)
        elif isinstance(parsed, ClientReq):
            self._on_req(parsed)
        elif isinstance(parsed, ClientClose):
            self.hub.unsubscribe(self, parsed.sub_id)

    def _on_event(self, msg: ClientEvent) -> None:
        event, limits = msg.event, self.limits
        if not self._bucket.take():
            self._send_text(build_ok(event.id, False, "rate-limited: slow down"))
            return
        problem = None
        if len(event.tags) > limits.max_event_tags:
            problem = f"invalid: more than {limits.max_event_tags} tags"
        elif len(event.content) > limits.max_content_length:
            problem = f"invalid: content longer than {limits.max_content_length} characters"
        elif event.created_at > time.time() + limits.max_future_seconds:
            problem = "invalid: created_at is too far in the future"
        else:
            try:
                verify_event(event)
            except ValueError as exc:
                problem = f"invalid: {exc}"
        if problem is not None:
            self._send_text(build_ok(event.id, False, problem))
            return
        accepted, reason = self.hub.add_event(event)
        self._send_text(build_ok(event.id, accepted, reason))

    def _on_req(self, msg: ClientReq) -> None:
        hub, limits = self.hub, self.limits
        if not self._bucket.take():
            self._send_text(build_closed(msg.sub_id, "rate-limited: slow down"))
            return
        if len(msg.filters) > limits.max_filters:
            self._send_text(build_closed(msg.sub_id, f"invalid: more than {limits.max_filters} filters"))
            return
        is_new = not hub.has_subscription(self, msg.sub_id)
        if is_new and hub.subscription_count(self) >= limits.max_subscriptions:
            self._send_text(
                build_closed(msg.sub_id, f"blocked: more than {limits.max_subscriptions} subscriptions")
            )
            return
        hub.subscribe(self, msg.sub_id, msg.filters)
        prefix = sub_id_prefix(msg.sub_id).encode("utf-8")
        for data in hub.query(msg.filters):
            self.send_frame(prefix + data + b"]")
        self._send_text(build_eose(msg.sub_id))

    def shutdown(self, code: int, reason: str) -> None:
        """Close this client connection (used by ``RelayHub.close_all``)."""
        self._closing = True
        self.close(code, reason)

    # ----- sending with a bounded buffer ------------------------------------------------------

    def _send_text(self, text: str) -> None:
        self.send_frame(text.encode("utf-8"))

    def send_frame(self, frame: bytes) -> None:
        """Queue a text frame; a client that lets too much pile up is closed (1013) instead."""
        if self._closing or self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._pending + len(frame) > self.limits.max_send_buffer:
            log.info("relay: closing a client that does not read fast enough")
            self._closing = True
            self.hub.drop_connection(self)
            self.close(1013, "too slow")
            return
        try:
            future = self.write_message(frame)
        except websocket.WebSocketClosedError:
            return
        size = len(frame)
        self._pending += size
        future.add_done_callback(lambda done: self._sent(done, size))

    def _sent(self, done: Future[None], size: int) -> None:
        self._pending -= size
        if not done.cancelled():
            done.exception()  # retrieved so a closed socket is not logged as an unhandled error


ROUTES: list[tuple[Any, ...]] = [(r"/", RelayHandler)]
