"""The node keeps listening on a relay that ends its subscription: answered with CLOSED, it subscribes
again with a growing, jittered backoff; dropped without a word (the socket stays up, nothing arrives), the
node notices when every online peer goes silent, rebuilds its subscriptions and says so in an event and its
status. The relay is a small NIP-01 relay written here (real Tornado server on a loopback port)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import tornado.web
from tornado import websocket

from node import NodeOptions, NodeService
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nostr.event import Event
from node.nostr.filters import Filter
from node.nostr.messages import (
    ClientClose,
    ClientEvent,
    ClientReq,
    build_closed,
    build_eose,
    build_ok,
    event_json,
    parse_client_message,
)
from node.transport.pool import RelayPool
from tests.faults.test_hostile_peer import until
from tests.transport.conftest import LocalServer

pytestmark = pytest.mark.timeout(60)
BACKOFF = 0.05  # the pools' initial backoff in seconds
SIGN_TIMEOUT = 0.8


class ClosingRelay(websocket.WebSocketHandler):
    """EVENT, REQ (live only), CLOSE; closes the first ``close_first`` REQs of each subscription id on each
    connection with CLOSED; ``forget(pubkey)`` silently drops the subscriptions addressed to ``pubkey``."""

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.subs: dict[str, list[Filter]] = {}
        self.closes: dict[str, int] = {}
        self.settings["clients"].add(self)

    def on_close(self) -> None:
        self.settings["clients"].discard(self)

    def on_message(self, message: str | bytes) -> None:
        parsed = parse_client_message(message)
        if isinstance(parsed, ClientEvent):
            self.write_message(build_ok(parsed.event.id, True))
            for client in list(self.settings["clients"]):
                client.deliver(parsed.event)
        elif isinstance(parsed, ClientReq):
            closes = self.closes
            self.settings["reqs"].append(parsed.sub_id)
            if closes.get(parsed.sub_id, 0) < self.settings["close_first"]:
                closes[parsed.sub_id] = closes.get(parsed.sub_id, 0) + 1
                self.subs.pop(parsed.sub_id, None)
                self.write_message(build_closed(parsed.sub_id, "rate-limited: try again later"))
                return
            self.subs[parsed.sub_id] = parsed.filters
            self.write_message(build_eose(parsed.sub_id))
        elif isinstance(parsed, ClientClose):
            self.subs.pop(parsed.sub_id, None)

    def deliver(self, event: Event) -> None:
        for sub_id, filters in self.subs.items():
            if any(f.matches(event) for f in filters):
                self.write_message(f'["EVENT",{json.dumps(sub_id)},{event_json(event)}]')

    def forget(self, pubkey: str) -> int:
        dropped = [s for s, filters in self.subs.items()
                   if any(pubkey in (f.tags or {}).get("p", ()) for f in filters)]
        for sub_id in dropped:
            del self.subs[sub_id]
        return len(dropped)


def closing_relay(close_first: int) -> tornado.web.Application:
    return tornado.web.Application([(r"/", ClosingRelay)], clients=set(), reqs=[],
                                   close_first=close_first)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    def of(self, prefix: str) -> list[Any]:
        return [d for _, m, d in self.events if m.startswith(prefix)]


async def start_pair(url: str) -> tuple[NodeService, NodeService, Recorder]:
    group, shares = generate_dealer_pkg_gen(2, 2)
    factory = functools.partial(RelayPool, backoff_initial=BACKOFF)
    options = NodeOptions(sign_timeout=SIGN_TIMEOUT, ping_interval=3600)
    rec = Recorder()
    ours = NodeService(group, shares[0], [url], emit=rec, pool_factory=factory, options=options)
    peer = NodeService(group, shares[1], [url], emit=lambda *a: None, pool_factory=factory, options=options)
    for node in (ours, peer):
        await node.start()
    return ours, peer, rec


async def test_a_closed_subscription_is_asked_for_again_with_backoff(io_loop: Any) -> None:
    server = LocalServer(lambda: closing_relay(close_first=3)).start()
    ours, peer, rec = await start_pair(server.url)
    try:
        await until(lambda: ours.ready and peer.ready, timeout=10)
        closed = rec.of("Relay closed the node's subscription")
        assert [c["reason"] for c in closed] == ["rate-limited: try again later"] * 3
        for attempt, event in enumerate(closed):  # jittered exponential backoff: [0.5, 1] * initial * 2^n
            assert 0.5 * BACKOFF * 2 ** attempt - 0.001 <= event["retryIn"] <= BACKOFF * 2 ** attempt + 0.001
        assert ours.status()["listening"]["resubscribes"] == 3
        assert server.app is not None and server.app.settings["reqs"].count("igloo-node") == 8  # 4 each
        _, latency = await ours.ping(peer.pubkey)  # the node hears its peer
        assert latency >= 0
    finally:
        for node in (ours, peer):
            await node.stop()
        await server.stop()


async def test_a_silently_dropped_subscription_is_rebuilt_when_every_peer_goes_quiet(io_loop: Any) -> None:
    server = LocalServer(lambda: closing_relay(close_first=0)).start()
    ours, peer, rec = await start_pair(server.url)
    try:
        await until(lambda: ours.ready and peer.ready, timeout=10)
        assert [r["success"] for r in await ours.ping_all()] == [True]
        assert server.app is not None
        assert sum(client.forget(ours.pubkey) for client in server.app.settings["clients"]) == 1
        # The socket is up and the ping goes out; the peer answers, but the relay no longer passes it on.
        [silent] = await ours.ping_all()
        assert silent["success"] is False and silent["error"] == "ping timed out"
        [rebuilt] = rec.of("No online peer answered while relays look connected: subscriptions rebuilt")
        assert rebuilt["silent"] == [peer.pubkey] and rebuilt["resent"] == 1
        listening = ours.status()["listening"]
        assert listening["rebuilds"] == 1 and listening["lastRebuild"] is not None
        assert [r["success"] for r in await ours.ping_all()] == [True]  # listening again
        assert len(rec.of("No online peer answered")) == 1
        # A peer that was never online going quiet is not a reason to rebuild.
        await peer.stop()
        await ours.ping_all()  # the peer is online before this round: one more rebuild
        assert ours.status()["listening"]["rebuilds"] == 2
        await ours.ping_all()  # now it is offline: silence proves nothing about the node's hearing
        assert ours.status()["listening"]["rebuilds"] == 2
    finally:
        for node in (ours, peer):
            await node.stop()
        await server.stop()
