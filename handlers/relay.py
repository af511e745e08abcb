"""The embedded Nostr relay at ``/``: the WebSocket handler (NIP-01) and the NIP-11 document.

Same port as the dashboard, no authentication (it is a public relay endpoint and Nostr clients are
browsers on other origins). A plain browser ``GET /`` is redirected to ``/dashboard``. The relay's state
(``relay.RelayState``) is the application setting ``relay``, built by ``server.py``.

Each client pays for what it asks from a token bucket (``RelayState.admission``): a frame costs one token
per ``frame_bytes_per_token`` bytes, an EVENT or REQ one more, a REQ also its search work. A client out of
tokens gets ``rate-limited:``; a client in debt is not read from until the debt is paid (frames are
handled one at a time, so the socket simply waits). Stored results are streamed in slices, the loop runs
between them, and the next slice waits while half the send buffer is still unsent; live events of a
subscription whose stored events are still streaming are held and follow its ``EOSE``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from tornado import websocket
from tornado.concurrent import Future

from handlers.base import VERSION
from node import (
    ClientClose,
    ClientEvent,
    ClientReq,
    InvalidEventMessage,
    InvalidSubscription,
    TokenBucket,
    build_closed,
    build_eose,
    build_notice,
    build_ok,
    parse_client_message,
)
from relay import ClientAddress, RelayLimits, RelayState

log = logging.getLogger("igloo.relay")

RELAY_NAME = "Igloo embedded relay"
RELAY_DESCRIPTION = (
    "In-memory NIP-01 relay built into Igloo, so a signing group can run with no outside network. "
    "Ephemeral events are delivered live and never stored."
)
FRAMES_PER_YIELD = 64
"""Stored events written before the loop gets a turn."""
MAX_PAUSE = 10.0
"""Longest wait for a client's debt in one go (seconds)."""


def relay_information(relay: RelayState) -> dict[str, Any]:
    """The NIP-11 document."""
    limits = relay.limits
    return {
        "name": RELAY_NAME,
        "description": RELAY_DESCRIPTION,
        "supported_nips": [1, 11],
        "software": "igloo",
        "version": VERSION,
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
            "restricted_writes": relay.policy.restricted,
        },
    }


class RelayHandler(websocket.WebSocketHandler):
    """One relay client connection (and the non-upgrade NIP-11 / redirect responses)."""

    _bucket: TokenBucket
    _client: ClientAddress | None = None
    _source: str = ""
    _inflight: int = 0
    _held_bytes: int = 0
    _closing: bool = False
    _held: dict[str, list[bytes]]
    _drained: asyncio.Event

    @property
    def relay(self) -> RelayState:
        """The shared relay state (built by server.py)."""
        relay = self.settings.get("relay")
        if not isinstance(relay, RelayState):
            raise RuntimeError("the application has no 'relay' setting (server.py builds the RelayState)")
        return relay

    @property
    def limits(self) -> RelayLimits:
        """The relay's bounds."""
        return self.relay.limits

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
        """Upgrade to the relay (if this address may open one more), or serve NIP-11, or redirect."""
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            admission = self.relay.admission
            client = ClientAddress.of(self.request.remote_ip, self.request.headers,
                                      self.limits.local_addresses)
            refusal = admission.refusal(client)
            if refusal is not None:
                self.set_status(refusal[0])
                self.finish(refusal[1])
                return
            admission.admit(client)
            self._client = client
            try:
                await super().get(*args, **kwargs)  # returns when the connection has ended
            finally:
                self._release_slot()
            return
        if "application/nostr+json" in self.request.headers.get("Accept", ""):
            self._set_cors()
            self.set_header("Content-Type", "application/nostr+json")
            self.finish(json.dumps(relay_information(self.relay)))
            return
        self.redirect("/dashboard")

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight for the NIP-11 document."""
        self._set_cors()
        self.set_status(204)
        self.finish()

    def _release_slot(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self.relay.admission.release(client)

    # ----- relay protocol ---------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        """A client connected."""
        # Relay traffic is small request/response frames: Nagle plus delayed ACKs would hold each one
        # back by up to 40 ms on a connection with unacknowledged data.
        self.set_nodelay(True)
        assert self._client is not None
        self._source = self._client.key
        self._bucket = self.relay.admission.bucket(self._client)
        self._inflight = 0
        self._held_bytes = 0
        self._closing = False
        self._held = {}
        self._drained = asyncio.Event()
        self._drained.set()
        self.relay.register(self)

    def on_close(self) -> None:
        """A client went away: drop its subscriptions and its slot now."""
        self._closing = True
        self.relay.drop_connection(self)
        self._held, self._held_bytes = {}, 0
        self._drained.set()  # wakes a REQ waiting for the buffer to drain, so it ends
        self._release_slot()

    async def on_message(self, message: str | bytes) -> None:
        """Handle one client frame; nothing a client sends may raise out of here.

        Tornado reads the next frame only after this returns, so waiting here paces the client.
        """
        try:
            await self._handle(message)
        except Exception:
            log.exception("relay: internal error while handling a client frame")
            self._send_text(build_notice("error: internal error"))

    async def _handle(self, message: str | bytes) -> None:
        if self._closing:
            return  # being closed (slow reader, shutdown): nothing more is registered for it
        await self._pay_debt()
        if self._closing:
            return
        size_cost = len(message) / self.limits.frame_bytes_per_token
        refused_cost = size_cost + self.limits.refused_frame_cost
        if isinstance(message, bytes):
            self._bucket.charge(refused_cost)
            self._send_text(build_notice("invalid: binary frames are not supported"))
            return
        try:
            parsed = parse_client_message(message)
        except InvalidEventMessage as exc:
            self._bucket.charge(refused_cost)
            if exc.event_id is None:
                self._send_text(build_notice(f"invalid: {exc}"))
            else:
                self._send_text(build_ok(exc.event_id, False, f"invalid: {exc}"))
            return
        except InvalidSubscription as exc:
            self._bucket.charge(refused_cost)
            self._send_text(build_closed(exc.sub_id, f"invalid: {exc}"))
            return
        except ValueError as exc:
            self._bucket.charge(refused_cost)
            self._send_text(build_notice(f"invalid: {exc}"))
            return
        if isinstance(parsed, ClientClose):
            self._bucket.charge(refused_cost)
            self.relay.subscriptions.unsubscribe(self, parsed.sub_id)
            return
        if not self._bucket.take(1.0 + size_cost):
            self._bucket.charge(refused_cost)
            if isinstance(parsed, ClientEvent):
                self._send_text(build_ok(parsed.event.id, False, "rate-limited: slow down"))
            else:
                self._send_text(build_closed(parsed.sub_id, "rate-limited: slow down"))
            return
        if isinstance(parsed, ClientEvent):
            accepted, reason = self.relay.publish(parsed.event, self._source)
            self._send_text(build_ok(parsed.event.id, accepted, reason))
        elif isinstance(parsed, ClientReq):
            await self._on_req(parsed)

    async def _pay_debt(self) -> None:
        """Wait while this client's bucket is in debt (work it was charged for after the fact)."""
        if not self._bucket.take(0.0):
            await self._pause(min(MAX_PAUSE, -self._bucket.tokens / self._bucket.rate))

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _on_req(self, msg: ClientReq) -> None:
        relay, limits = self.relay, self.limits
        if len(msg.filters) > limits.max_filters:
            self._send_text(build_closed(msg.sub_id, f"invalid: more than {limits.max_filters} filters"))
            return
        refusal = relay.subscriptions.refusal(self, msg.sub_id, msg.filters)
        if refusal is not None:
            self._send_text(build_closed(msg.sub_id, refusal))
            return
        sub = relay.subscriptions.subscribe(self, msg.sub_id, msg.filters)
        self._held[msg.sub_id] = []
        try:
            query = relay.query(msg.filters)
            charged = 0
            while not query.done:
                query.step(limits.query_slice_work)
                self._bucket.charge((query.work - charged) / limits.query_work_per_token)
                charged = query.work
                if query.work > limits.max_query_work:
                    relay.subscriptions.unsubscribe(self, msg.sub_id)
                    self._send_text(build_closed(
                        msg.sub_id, "rate-limited: this REQ needs too much work; narrow its filters"))
                    return
                await asyncio.sleep(0)
                await self._pay_debt()
                if self._closing:
                    return
            for count, record in enumerate(query.results(), start=1):
                await self._stream_room(len(record.data))
                if self._closing:
                    return
                if not record.removed:
                    self._write(sub.prefix + record.data + b"]")
                if count % FRAMES_PER_YIELD == 0:
                    await asyncio.sleep(0)
            self._send_text(build_eose(msg.sub_id))
        finally:
            held = self._held.pop(msg.sub_id, [])
            self._held_bytes -= sum(len(frame) for frame in held)
            if not self._closing and relay.subscriptions.has(self, msg.sub_id):
                for frame in held:
                    self._write(frame)

    def shutdown(self, code: int, reason: str) -> None:
        """Close this client connection (used by ``RelayState.close_all``)."""
        self._closing = True
        self._drained.set()
        self.close(code, reason)

    # ----- sending with a bounded buffer ------------------------------------------------------

    async def _stream_room(self, size: int) -> None:
        """Wait until this many more bytes of stored results fit under half the send buffer."""
        low_water = self.limits.max_send_buffer // 2
        while not self._closing and self._inflight > 0 and self._inflight + size > low_water:
            self._drained.clear()
            await self._drained.wait()

    def _send_text(self, text: str) -> None:
        self.send_frame(text.encode("utf-8"))

    def send_event(self, sub_id: str, frame: bytes) -> None:
        """A live event for a subscription: held while its stored events stream, sent otherwise."""
        held = self._held.get(sub_id)
        if held is None:
            self.send_frame(frame)
        elif not self._closing and self._fits(len(frame)):
            held.append(frame)
            self._held_bytes += len(frame)

    def send_frame(self, frame: bytes) -> None:
        """Queue a text frame; a client that lets too much pile up is closed (1013) instead."""
        if self._closing or self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._fits(len(frame)):
            self._write(frame)

    def _fits(self, size: int) -> bool:
        if self._inflight + self._held_bytes + size <= self.limits.max_send_buffer:
            return True
        log.info("relay: closing a client that does not read fast enough")
        self._closing = True
        self.relay.drop_connection(self)
        self._held, self._held_bytes = {}, 0
        self._drained.set()
        self.close(1013, "too slow")
        return False

    def _write(self, frame: bytes) -> None:
        if self._closing or self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            future = self.write_message(frame)
        except websocket.WebSocketClosedError:
            return
        size = len(frame)
        self._inflight += size
        future.add_done_callback(lambda done: self._sent(done, size))

    def _sent(self, done: Future[None], size: int) -> None:
        self._inflight -= size
        if self._inflight <= self.limits.max_send_buffer // 2:
            self._drained.set()
        if not done.cancelled():
            done.exception()  # retrieved so a closed socket is not logged as an unhandled error


ROUTES: list[tuple[Any, ...]] = [(r"/", RelayHandler)]
