"""RelayPool's live relay set and round-trip probes, against the embedded relay and small scripted relays
on loopback ports."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import tornado.web
from tornado import websocket

from node.transport.pool import RelayPool
from node.transport.relay import RelayConnection
from tests.relay.helpers import RelayClient
from tests.transport.conftest import LocalServer, relay_app
from tests.transport.test_pool import FAST, Recorder, frostr_event, make_pool, node_filter, until

pytestmark = pytest.mark.timeout(30)


class ScriptedRelay(websocket.WebSocketHandler):
    """Answers REQ with EOSE after ``eose_delay`` s and EVENT with OK after ``ok_delay`` s (None: never);
    records every frame and when its connections closed."""

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.settings["log"].append(("open", time.monotonic()))

    def on_close(self) -> None:
        self.settings["log"].append(("close", time.monotonic()))

    async def on_message(self, message: str | bytes) -> None:
        msg = json.loads(message)
        self.settings["log"].append((msg[0], msg[1] if msg[0] != "EVENT" else msg[1]["id"], time.monotonic()))
        if msg[0] == "REQ" and self.settings["eose_delay"] is not None:
            await asyncio.sleep(self.settings["eose_delay"])
            self.write_message(json.dumps(["EOSE", msg[1]]))
        elif msg[0] == "EVENT" and self.settings["ok_delay"] is not None:
            await asyncio.sleep(self.settings["ok_delay"])
            self.settings["log"].append(("OK sent", msg[1]["id"], time.monotonic()))
            self.write_message(json.dumps(["OK", msg[1]["id"], True, ""]))


def scripted(log: list[Any], eose_delay: float | None = 0.0, ok_delay: float | None = 0.0) -> Any:
    return lambda: tornado.web.Application([(r"/", ScriptedRelay)], log=log, eose_delay=eose_delay,
                                           ok_delay=ok_delay)


async def test_switch_subscribes_on_the_new_relay_before_leaving_the_old(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    one, two = LocalServer(relay_app).start(), LocalServer(relay_app).start()
    servers += [one, two]
    rec = Recorder()
    pool = make_pool(pools, [one.url], rec)
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    await until(lambda: ("node", one.url) in rec.eose)

    added, removed = await pool.set_urls([two.url], settle_timeout=5)
    assert (added, removed) == ([two.url], [one.url])
    # Make before break: when set_urls returns, the new relay has answered the subscription already.
    assert ("node", two.url) in rec.eose
    assert pool.urls == [two.url] and [s["url"] for s in pool.status()] == [two.url]
    states_after = len(rec.states)

    # Events addressed to us now come through the new relay; the old one is closed and says nothing.
    client = await RelayClient.connect(two.url)
    event = frostr_event(0, 1, "after the switch")
    await client.publish(event)
    await until(lambda: any(e.id == event.id for e, _ in rec.events))
    assert [url for e, url in rec.events if e.id == event.id] == [two.url]
    await asyncio.sleep(0.1)
    assert all(url == two.url for url, _ in rec.states[states_after:]), rec.states[states_after:]
    assert await pool.publish(frostr_event(1, 2), timeout=3) == [two.url]

    # A set with an unchanged relay keeps its connection (no reconnect).
    before = pool.status()[0]["connectedAt"]
    added, removed = await pool.set_urls([two.url, one.url], settle_timeout=5)
    assert (added, removed) == ([one.url], [])
    assert pool.status()[0]["connectedAt"] == before and pool.status()[0]["reconnects"] == 0
    assert pool.urls == [two.url, one.url] and all(s["connected"] for s in pool.status())


async def test_removed_relay_keeps_its_pending_publish_until_answered(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    log: list[Any] = []
    slow = LocalServer(scripted(log, ok_delay=0.4)).start()
    good = LocalServer(relay_app).start()
    servers += [slow, good]
    pool = make_pool(pools, [slow.url, good.url], Recorder())
    pool.start()
    await until(lambda: all(s["connected"] for s in pool.status()))

    event = frostr_event(0, 1)
    assert await pool.publish(event, timeout=3) == [good.url]  # the good relay answers first
    await pool.set_urls([good.url], drain_timeout=3)
    await until(lambda: any(entry[0] == "close" for entry in log), timeout=5)
    ok_at = next(entry[2] for entry in log if entry[0] == "OK sent")
    closed_at = next(entry[1] for entry in log if entry[0] == "close")
    assert closed_at >= ok_at, "the removed relay was closed before it could answer the publish in flight"


async def test_switch_to_an_unreachable_relay_is_bounded(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool], dead_url: str
) -> None:
    one = LocalServer(relay_app).start()
    servers.append(one)
    pool = make_pool(pools, [one.url], Recorder())
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    await pool.wait_connected(5)
    started = time.monotonic()
    await pool.set_urls([dead_url], settle_timeout=0.5)
    assert time.monotonic() - started < 2.0
    status = pool.status()
    assert [s["url"] for s in status] == [dead_url] and not status[0]["connected"]
    assert not await pool.wait_connected(0.1)
    with pytest.raises(ValueError):
        await pool.set_urls(["http://not-a-relay/"])
    assert pool.urls == [dead_url]


async def test_round_trip_probe_measures_req_to_eose(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    log: list[Any] = []
    relay = LocalServer(scripted(log, eose_delay=0.12)).start()
    servers.append(relay)
    rtts: list[tuple[str, float | None]] = []
    pool = RelayPool([relay.url], on_event=lambda e, u: None, on_rtt=lambda u, ms: rtts.append((u, ms)),
                     rtt_interval=0.05, **FAST)
    pools.append(pool)
    pool.start()
    await until(lambda: len(rtts) >= 2)
    url, ms = rtts[0]
    assert url == relay.url and ms is not None and 120 <= ms < 1000, rtts
    status = pool.status()[0]
    assert status["rtt"] == rtts[-1][1] and status["rttAt"].endswith("Z")
    # Each probe is a REQ matching nothing, closed once answered.
    reqs = [entry[1] for entry in log if entry[0] == "REQ"]
    closes = [entry[1] for entry in log if entry[0] == "CLOSE"]
    assert reqs[:2] == ["rtt-1", "rtt-2"] and closes[0] == "rtt-1"


async def test_round_trip_probe_without_answer_times_out(
    io_loop: Any, servers: list[LocalServer]
) -> None:
    silent = LocalServer(scripted([], eose_delay=None)).start()
    servers.append(silent)
    reported: list[float | None] = []
    conn = RelayConnection(silent.url, subscriptions={}, on_message=lambda m, c: None,
                           on_state=lambda c: None, on_rtt=lambda c: reported.append(c.rtt_ms),
                           connect_timeout=1.0)
    conn.start()
    try:
        assert await conn.wait_connected(5)
        assert await conn.wait_synced(1)  # nothing to answer: synced at once
        started = time.monotonic()
        assert await conn.measure_rtt(timeout=0.2) is None
        assert 0.2 <= time.monotonic() - started < 1.0
        assert reported == [None] and conn.rtt_ms is None
        assert conn.last_error is not None and "round-trip probe" in conn.last_error
        assert conn.connected  # a slow relay is reported, not dropped
    finally:
        await conn.close()
    assert await conn.measure_rtt(timeout=0.2) is None  # not connected: no probe


async def test_embedded_relay_round_trip_and_publish_during_switch(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    one, two = LocalServer(relay_app).start(), LocalServer(relay_app).start()
    servers += [one, two]
    rtts: list[tuple[str, float | None]] = []
    pool = RelayPool([one.url], on_event=lambda e, u: None, on_rtt=lambda u, ms: rtts.append((u, ms)),
                     rtt_interval=30, **FAST)
    pools.append(pool)
    pool.start()
    await until(lambda: any(u == one.url for u, _ in rtts))
    switch = asyncio.ensure_future(pool.set_urls([two.url]))
    # Published while the switch is under way: goes to whichever relays are in the set at that moment.
    accepted = await pool.publish(frostr_event(0, 1), timeout=3)
    assert accepted and set(accepted) <= {one.url, two.url}
    await switch
    after = len(rtts)
    await until(lambda: any(u == two.url and ms is not None for u, ms in rtts))
    await asyncio.sleep(0.1)
    assert all(u == two.url for u, _ in rtts[after:]), rtts  # the removed relay reports nothing more
