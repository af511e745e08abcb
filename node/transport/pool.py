"""Many relays behind one interface: subscribe everywhere, publish everywhere, deliver each event once.

Incoming events are checked before the node sees them: the subscription must be ours, the event
must match that subscription's filters, and its id and BIP-340 signature must verify. Events are
then deduplicated by id across relays (a bounded LRU of verified ids, so a relay that sends a
forged copy first cannot suppress the genuine one). A publish succeeds as soon as one relay
accepts it (spec §5.1: waiting for all of them lets one bad relay fail every publish).

A relay that ends one of our subscriptions with ``CLOSED`` (restarting, rate limiting, dropping old
subscriptions) gets the REQ again after a jittered backoff, per relay and subscription, reset once the relay
answers it with ``EOSE``: the node keeps listening instead of going deaf on that relay.

The relay set can change while the pool runs (``set_urls``): new relays are connected and
subscribed first, then the removed ones leave once their pending publishes are answered, so
requests in flight keep their subscriptions and their answers can arrive on either side.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from node.nostr.event import Event, verify_event
from node.nostr.filters import Filter, matches_any
from node.nostr.messages import (
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayMessage,
    RelayNotice,
    build_close,
    build_event,
    build_req,
)
from node.transport.relay import CONNECTED, RelayConnection

log = logging.getLogger("igloo.transport")


class RelayPool:
    """Connections to a fixed set of relays, with shared subscriptions and cross-relay dedupe."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        on_event: Callable[[Event, str], None],
        on_state: Callable[[str, str], None] | None = None,
        on_eose: Callable[[str, str], None] | None = None,
        on_closed: Callable[[str, str, str, float], None] | None = None,
        on_rtt: Callable[[str, float | None], None] | None = None,
        rtt_interval: float | None = None,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        dedupe_size: int = 10000,
        max_message_size: int = 256 * 1024,
        ping_interval: float | None = 30.0,
    ) -> None:
        self._on_event = on_event
        self._on_state = on_state
        self._on_eose = on_eose
        self._on_closed = on_closed
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # (relay url, sub id) -> CLOSED answered so far in a row / the pending REQ
        self._closed_in_a_row: dict[tuple[str, str], int] = {}
        self._resubscribing: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._on_rtt = on_rtt
        self._subscriptions: dict[str, list[dict[str, Any]]] = {}
        self._filters: dict[str, list[Filter]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedupe_size = dedupe_size
        self._any_connected = asyncio.Event()
        self._started = False
        self._publishing: set[asyncio.Future[tuple[bool, str]]] = set()
        self._connection_options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "backoff_initial": backoff_initial,
            "backoff_max": backoff_max,
            "max_message_size": max_message_size,
            "ping_interval": ping_interval,
            "rtt_interval": rtt_interval,
        }
        self._conns = [self._connection(url) for url in dict.fromkeys(urls)]
        self._switching = asyncio.Lock()
        self._retiring: dict[RelayConnection, asyncio.Task[None]] = {}

    def _connection(self, url: str) -> RelayConnection:
        return RelayConnection(
            url,
            subscriptions=self._subscriptions,
            on_message=self._message,
            on_state=self._state,
            on_rtt=self._rtt,
            **self._connection_options,
        )

    @property
    def urls(self) -> list[str]:
        """The relay URLs, in order, without duplicates."""
        return [conn.url for conn in self._conns]

    def start(self) -> None:
        """Connect every relay in the background; returns at once."""
        if self._started:
            return
        self._started = True
        for conn in self._conns:
            conn.start()

    async def set_urls(
        self, urls: Sequence[str], *, settle_timeout: float = 5.0, drain_timeout: float = 5.0
    ) -> tuple[list[str], list[str]]:
        """Switch to ``urls`` live; returns ``(added, removed)``.

        Make before break: the added relays are connected and sent every subscription, and the pool
        waits (at most ``settle_timeout`` seconds) until each has answered them (EOSE) before the removed
        ones leave. During the switch a publish goes to both. A removed relay is closed once its pending
        publishes have their answer (at most ``drain_timeout`` seconds later); it reports no more states.
        Subscriptions, the dedupe memory and callbacks are kept. ``ValueError`` for a URL that is not
        ws:// or wss://, before anything changes.
        """
        wanted = list(dict.fromkeys(urls))
        async with self._switching:
            current = {conn.url: conn for conn in self._conns}
            added = [self._connection(url) for url in wanted if url not in current]
            removed = [conn for conn in self._conns if conn.url not in wanted]
            self._conns = [*self._conns, *added]
            if self._started:
                for conn in added:
                    conn.start()
                if added:
                    await asyncio.wait(
                        [asyncio.ensure_future(conn.wait_synced(settle_timeout)) for conn in added]
                    )
            by_url = {conn.url: conn for conn in self._conns}
            self._conns = [by_url[url] for url in wanted]
            self._refresh_connected()
            for conn in removed:
                self._retiring[conn] = asyncio.ensure_future(self._retire(conn, drain_timeout))
        return [conn.url for conn in added], [conn.url for conn in removed]

    async def _retire(self, conn: RelayConnection, drain_timeout: float) -> None:
        try:
            await conn.drain(drain_timeout)
            await conn.close()
        finally:
            self._retiring.pop(conn, None)

    async def wait_connected(self, timeout: float) -> bool:
        """True once any relay is connected; False if none is within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._any_connected.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def subscribe(self, sub_id: str, filters: list[dict[str, Any]]) -> None:
        """Subscribe on every relay now and after every reconnect (same id replaces)."""
        parsed = [Filter.from_json(flt) for flt in filters]
        frame = build_req(sub_id, filters)
        self._subscriptions[sub_id] = [dict(flt) for flt in filters]
        self._filters[sub_id] = parsed
        for conn in self._conns:
            conn.send(frame)

    def resubscribe(self) -> int:
        """Send every subscription's REQ again on every connected relay (same ids replace); relays reached."""
        reached = 0
        for conn in self._conns:
            sent = [conn.send(build_req(sub_id, filters)) for sub_id, filters in self._subscriptions.items()]
            reached += bool(sent) and all(sent)
        return reached

    def unsubscribe(self, sub_id: str) -> None:
        """Forget a subscription and CLOSE it on every connected relay."""
        if self._subscriptions.pop(sub_id, None) is None:
            return
        self._filters.pop(sub_id, None)
        frame = build_close(sub_id)
        for conn in self._conns:
            conn.send(frame)

    async def publish(self, event: Event, timeout: float = 5.0) -> list[str]:
        """Send to every relay; return as soon as one accepts (the URLs that have accepted so far).

        Returns ``[]`` when every relay refused or failed, or nobody accepted within ``timeout``.
        Relays still pending keep their copy of the event; their answers are only logged.
        """
        if not self._conns:
            return []
        frame = build_event(event)
        tasks = {
            asyncio.ensure_future(conn.publish(event.id, frame, timeout)): conn.url for conn in self._conns
        }
        for task, url in tasks.items():
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)
            task.add_done_callback(functools.partial(self._log_publish, url=url))
        pending = set(tasks)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            _, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            accepted = [url for task, url in tasks.items() if _accepted(task)]
            if accepted:
                return accepted
        return []

    @staticmethod
    def _log_publish(done: asyncio.Future[tuple[bool, str]], url: str) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.debug("transport: publish to %s failed: %s", url, type(done.exception()).__name__)
        elif not done.result()[0]:
            log.debug("transport: %s did not accept an event: %s", url, done.result()[1][:120])

    def status(self) -> list[dict[str, Any]]:
        """One entry per relay: url, state, connected, lastError, reconnects, connectedAt, rtt (ms), rttAt."""
        return [_status(conn) for conn in self._conns]

    async def close(self) -> None:
        """Close every connection (also those leaving after a switch); pending publishes fail."""
        for timer in self._resubscribing.values():
            timer.cancel()
        self._resubscribing.clear()
        for retiring in list(self._retiring.values()):
            retiring.cancel()
        for conn in [*self._conns, *self._retiring]:
            with contextlib.suppress(Exception):
                await conn.close()
        tasks = list(self._publishing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._any_connected.clear()

    # ----- callbacks from connections ---------------------------------------------------------

    def _refresh_connected(self) -> None:
        if any(c.state == CONNECTED for c in self._conns):
            self._any_connected.set()
        else:
            self._any_connected.clear()

    def _state(self, conn: RelayConnection) -> None:
        self._refresh_connected()
        if conn not in self._conns:
            return  # removed from the set: its last states are nobody's business
        if self._on_state is not None:
            try:
                self._on_state(conn.url, conn.state)
            except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
                _callback_failed("on_state", exc)

    def _rtt(self, conn: RelayConnection) -> None:
        if self._on_rtt is None or conn not in self._conns:
            return
        try:
            self._on_rtt(conn.url, conn.rtt_ms)
        except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
            _callback_failed("on_rtt", exc)

    def _message(self, message: RelayMessage, conn: RelayConnection) -> None:
        if isinstance(message, RelayEvent):
            self._incoming(message, conn)
        elif isinstance(message, RelayEose):
            self._closed_in_a_row.pop((conn.url, message.sub_id), None)
            if message.sub_id in self._subscriptions and self._on_eose is not None:
                try:
                    self._on_eose(message.sub_id, conn.url)
                except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
                    _callback_failed("on_eose", exc)
        elif isinstance(message, RelayClosed):
            self._closed(message, conn)
        elif isinstance(message, RelayNotice):
            log.debug("transport: notice from %s: %s", conn.url, message.message[:120])

    def _closed(self, message: RelayClosed, conn: RelayConnection) -> None:
        """A relay ended a subscription: ask again after a backoff (one pending REQ per relay and id)."""
        key = (conn.url, message.sub_id)
        if message.sub_id not in self._subscriptions or key in self._resubscribing or conn not in self._conns:
            return  # one we closed ourselves, already scheduled, or a relay leaving after a switch
        attempt = self._closed_in_a_row.get(key, 0)
        self._closed_in_a_row[key] = attempt + 1
        delay = min(self._backoff_max, self._backoff_initial * (2.0 ** min(attempt, 30)))
        delay *= 0.5 + random.random() / 2  # jitter: a relay that closed everyone is not stampeded
        self._resubscribing[key] = asyncio.get_running_loop().call_later(delay, self._resubscribe, conn,
                                                                         message.sub_id)
        reason = message.message[:80]
        log.info("transport: %s closed subscription %s (%s); resubscribing in %.1fs", conn.url,
                 message.sub_id, reason, delay)
        if self._on_closed is not None:
            try:
                self._on_closed(message.sub_id, conn.url, reason, delay)
            except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
                _callback_failed("on_closed", exc)

    def _resubscribe(self, conn: RelayConnection, sub_id: str) -> None:
        self._resubscribing.pop((conn.url, sub_id), None)
        filters = self._subscriptions.get(sub_id)
        if filters is not None and conn in self._conns:  # a relay removed meanwhile gets nothing more
            conn.send(build_req(sub_id, filters))  # when not connected, the reconnect sends it anyway

    def _incoming(self, message: RelayEvent, conn: RelayConnection) -> None:
        event = message.event
        filters = self._filters.get(message.sub_id)
        if filters is None:
            return  # a subscription we closed; late events are normal
        if event.id in self._seen:
            self._seen.move_to_end(event.id)
            return
        if not matches_any(filters, event):
            conn.note_bad_frame("event does not match the subscription")
            return
        try:
            verify_event(event)
        except ValueError as exc:
            conn.note_bad_frame(str(exc))
            return
        self._seen[event.id] = None
        while len(self._seen) > self._dedupe_size:
            self._seen.popitem(last=False)
        try:
            self._on_event(event, conn.url)
        except Exception as exc:  # noqa: BLE001 - a callback or a socket must not end the loop
            _callback_failed("on_event", exc)


def _status(conn: RelayConnection) -> dict[str, Any]:
    return {
        "url": conn.url,
        "state": conn.state,
        "connected": conn.state == CONNECTED,
        "lastError": conn.last_error,
        "reconnects": conn.reconnects,
        "connectedAt": conn.connected_at,
        "rtt": conn.rtt_ms,
        "rttAt": conn.rtt_at,
    }


def _accepted(task: asyncio.Future[tuple[bool, str]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None and task.result()[0]


def _callback_failed(name: str, exc: Exception) -> None:
    # The exception text may come from the node and carry data; only its type is logged above debug.
    log.warning("transport: %s callback raised %s", name, type(exc).__name__)
    log.debug("transport: %s callback traceback", name, exc_info=exc)
