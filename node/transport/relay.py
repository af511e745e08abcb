"""One relay connection: connect, resubscribe, read, publish with OK tracking, reconnect with backoff.

A relay that is down, slow or hostile only ever affects its own connection: every wait is
bounded, frames are parsed strictly and anything wrong is logged at debug (without payloads)
and dropped. Too many bad frames in one session and the connection is dropped and retried later.

While connected, the connection can measure the relay's round-trip time with a NIP-01 probe: a
``REQ`` whose filter matches nothing, timed until the relay's ``EOSE`` (or ``CLOSED``), then closed.
Any relay answers that, so the number means the same thing for every relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tornado import websocket
from tornado.httpclient import HTTPRequest

from node.nostr.messages import (
    RelayClosed,
    RelayEose,
    RelayMessage,
    RelayOk,
    build_close,
    build_req,
    parse_relay_message,
)

log = logging.getLogger("igloo.transport")

CONNECTING, CONNECTED, DISCONNECTED, CLOSED = "connecting", "connected", "disconnected", "closed"

MAX_BAD_FRAMES = 100
"""Bad frames tolerated in one session before the connection is dropped (and retried later)."""

STABLE_AFTER = 10.0
"""A session that lasted this long resets the backoff to its initial delay."""

PROBE_TIMEOUT = 10.0
"""Seconds a round-trip probe waits for the relay's answer before it counts as lost."""

PROBE_FILTER: dict[str, Any] = {"ids": ["0" * 64], "limit": 1}
"""Matches no event (no event id is 64 zeros), so the relay answers with EOSE at once."""


def _iso_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class RelayConnection:
    """A self-healing WebSocket connection to one relay.

    ``subscriptions`` is shared with the owner (the pool) and is read again on every (re)connect,
    so the REQs always reflect the current set. ``on_message`` gets every parsed frame except
    ``OK``, which this class matches to pending publishes itself.
    """

    def __init__(
        self,
        url: str,
        *,
        subscriptions: Mapping[str, list[dict[str, Any]]],
        on_message: Callable[[RelayMessage, RelayConnection], None],
        on_state: Callable[[RelayConnection], None],
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_message_size: int = 256 * 1024,
        ping_interval: float | None = 30.0,
        rtt_interval: float | None = None,
        on_rtt: Callable[[RelayConnection], None] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError("relay URL must start with ws:// or wss://")
        self.url = url
        self.state = DISCONNECTED
        self.last_error: str | None = None
        self.reconnects = 0
        self.connected_at: str | None = None
        self.rtt_ms: float | None = None  # the last round-trip probe, milliseconds
        self.rtt_at: str | None = None
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._on_state = on_state
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_message_size = max_message_size
        self._ping_interval = ping_interval
        self._ws: websocket.WebSocketClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._pending: dict[str, list[asyncio.Future[tuple[bool, str]]]] = {}
        self._bad_frames = 0
        self._closed = False
        self._rtt_interval = rtt_interval
        self._on_rtt = on_rtt
        self._probe: tuple[str, asyncio.Future[bool]] | None = None
        self._probes = 0
        self._awaiting_eose: set[str] = set()
        self._synced = asyncio.Event()  # connected, and every subscription sent on connect has its EOSE
        self._idle = asyncio.Event()  # no publish waiting for its OK
        self._idle.set()

    # ----- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (needs a running event loop)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop for good: close the socket, fail pending publishes, end the background task."""
        self._closed = True
        if self._ws is not None:
            self._ws.close(1000)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail_pending("connection closed")
        self._set_state(CLOSED)

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self.state == CONNECTED

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until connected; False on timeout."""
        try:
            await asyncio.wait_for(self._connected.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    async def wait_synced(self, timeout: float) -> bool:
        """Wait until connected with every subscription answered (EOSE or CLOSED); False on timeout."""
        if self._synced.is_set() or timeout <= 0:
            return self._synced.is_set()
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def drain(self, timeout: float) -> bool:
        """Wait until no publish is waiting for its OK; False on timeout."""
        if self._idle.is_set() or timeout <= 0:
            return self._idle.is_set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if state == CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
            self._synced.clear()
        try:
            self._on_state(self)
        except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
            log.warning("transport: state callback raised %s", type(exc).__name__)

    def _backoff(self, attempt: int) -> float:
        delay = min(self._backoff_max, self._backoff_initial * (2.0 ** min(attempt, 30)))
        return delay * (0.5 + random.random() / 2)  # jitter so a restarted relay is not stampeded

    async def _run(self) -> None:
        attempt = 0
        first = True
        while not self._closed:
            if not first:
                self.reconnects += 1
            first = False
            self._set_state(CONNECTING)
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
                self.last_error = _describe(exc)
                log.debug("transport: cannot connect to %s: %s", self.url, self.last_error)
                self._set_state(DISCONNECTED)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            started = time.monotonic()
            reason = "connection closed"
            try:
                reason = await self._session(ws) or _close_reason(ws)
            finally:
                self._ws = None
                ws.close()
                self._fail_pending("connection lost")
                self.last_error = reason  # kept after reconnecting: the most recent problem
            log.debug("transport: disconnected from %s: %s", self.url, reason)
            self._set_state(DISCONNECTED)
            if self._closed:
                break
            if time.monotonic() - started >= STABLE_AFTER:
                attempt = 0
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def _connect(self) -> websocket.WebSocketClientConnection:
        request = HTTPRequest(
            self.url, connect_timeout=self._connect_timeout, request_timeout=self._connect_timeout
        )
        future = websocket.websocket_connect(
            request,
            max_message_size=self._max_message_size,
            ping_interval=self._ping_interval,
        )
        # The request timeout covers the handshake; this outer bound is a second line of defence.
        return await asyncio.wait_for(future, self._connect_timeout * 2)

    async def _session(self, ws: websocket.WebSocketClientConnection) -> str | None:
        self._ws = ws
        if ws.protocol is not None:
            ws.protocol.set_nodelay(True)  # small request/response frames: no Nagle delay
        self._bad_frames = 0
        self.connected_at = _iso_now()
        self._set_state(CONNECTED)
        log.debug("transport: connected to %s", self.url)
        self._awaiting_eose = set(self._subscriptions)
        if not self._awaiting_eose:
            self._synced.set()
        for sub_id, filters in list(self._subscriptions.items()):
            self.send(build_req(sub_id, filters))
        prober = asyncio.ensure_future(self._probe_loop()) if self._rtt_interval is not None else None
        try:
            while not self._closed:
                message = await ws.read_message()
                if message is None:
                    return None
                self._handle(message)
                if self._bad_frames > MAX_BAD_FRAMES:
                    log.debug("transport: dropping %s after %d invalid frames", self.url, self._bad_frames)
                    return "too many invalid frames"
            return None
        finally:
            if prober is not None:
                prober.cancel()

    # ----- round-trip time --------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        interval = self._rtt_interval
        assert interval is not None
        while self.state == CONNECTED and not self._closed:
            await self.measure_rtt()
            await asyncio.sleep(max(interval, 0.05))

    async def measure_rtt(self, timeout: float = PROBE_TIMEOUT) -> float | None:
        """Time one probe REQ until the relay's EOSE or CLOSED: milliseconds, or None (not connected, lost).

        Probes run one at a time; the result is kept in ``rtt_ms`` and reported through ``on_rtt``.
        """
        if self._probe is not None or self.state != CONNECTED:
            return self.rtt_ms if self._probe is not None else None
        self._probes += 1
        sub_id = f"rtt-{self._probes}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._probe = (sub_id, future)
        started = time.monotonic()
        try:
            if not self.send(build_req(sub_id, [PROBE_FILTER])):
                return None
            try:
                closed_by_relay = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self.rtt_ms = None
                self.last_error = f"no answer to a round-trip probe within {timeout:g}s"
                self._report_rtt()
                return None
            self.rtt_ms = round((time.monotonic() - started) * 1000, 1)
            self.rtt_at = _iso_now()
            if not closed_by_relay:
                self.send(build_close(sub_id))
            self._report_rtt()
            return self.rtt_ms
        finally:
            self._probe = None

    def _report_rtt(self) -> None:
        if self._on_rtt is None:
            return
        try:
            self._on_rtt(self)
        except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
            log.warning("transport: rtt callback raised %s", type(exc).__name__)

    def _probe_answered(self, parsed: RelayMessage) -> bool:
        """Resolve the running probe when ``parsed`` answers it; True when the frame was the probe's."""
        probe = self._probe
        if probe is None or not isinstance(parsed, RelayEose | RelayClosed) or parsed.sub_id != probe[0]:
            return False
        if not probe[1].done():
            probe[1].set_result(isinstance(parsed, RelayClosed))
        return True

    def _note_answered(self, parsed: RelayMessage) -> None:
        """Count the first answer (EOSE or CLOSED) to each subscription sent on connect."""
        if isinstance(parsed, RelayEose | RelayClosed) and parsed.sub_id in self._awaiting_eose:
            self._awaiting_eose.discard(parsed.sub_id)
            if not self._awaiting_eose and self.state == CONNECTED:
                self._synced.set()

    # ----- frames -----------------------------------------------------------------------------

    def note_bad_frame(self, reason: str) -> None:
        """Count one invalid frame from this relay (the reason is logged, never the payload)."""
        self._bad_frames += 1
        log.debug("transport: ignoring a frame from %s: %s", self.url, reason)

    def _handle(self, message: str | bytes) -> None:
        try:
            parsed = parse_relay_message(message)
        except ValueError as exc:
            self.note_bad_frame(str(exc)[:120])
            return
        if self._probe_answered(parsed):
            return
        self._note_answered(parsed)
        if isinstance(parsed, RelayOk):
            waiters = self._pending.get(parsed.event_id)
            if waiters:
                for future in waiters:
                    if not future.done():
                        future.set_result((parsed.accepted, parsed.message))
            return
        try:
            self._on_message(parsed, self)
        except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
            log.warning("transport: message callback raised %s", type(exc).__name__)

    def send(self, text: str) -> bool:
        """Queue a frame if connected; False when it cannot be sent now."""
        ws = self._ws
        if ws is None or self.state != CONNECTED:
            return False
        try:
            future = ws.write_message(text)
        except websocket.WebSocketClosedError:
            return False
        future.add_done_callback(_consume)
        return True

    async def publish(self, event_id: str, frame: str, timeout: float) -> tuple[bool, str]:
        """Send an EVENT frame (waiting for the connection if needed) and wait for its OK."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await self.wait_connected(deadline - loop.time()):
            return False, "not connected"
        future: asyncio.Future[tuple[bool, str]] = loop.create_future()
        self._pending.setdefault(event_id, []).append(future)
        self._idle.clear()
        try:
            if not self.send(frame):
                return False, "not connected"
            try:
                return await asyncio.wait_for(future, max(deadline - loop.time(), 0.0))
            except TimeoutError:
                return False, "timed out waiting for OK"
        finally:
            waiters = self._pending.get(event_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._pending.pop(event_id, None)
            if not self._pending:
                self._idle.set()

    def _fail_pending(self, reason: str) -> None:
        for waiters in self._pending.values():
            for future in waiters:
                if not future.done():
                    future.set_result((False, reason))


def _close_reason(ws: websocket.WebSocketClientConnection) -> str:
    code = ws.close_code
    if code is None or code == 1000:
        return "connection closed"
    detail = f": {ws.close_reason[:100]}" if ws.close_reason else ""
    return f"closed by relay ({code}{detail})"


def _consume(future: asyncio.Future[None]) -> None:
    """Retrieve a write's outcome so a socket closed mid-write is not reported as unhandled."""
    if not future.cancelled():
        future.exception()
