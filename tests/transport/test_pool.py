"""RelayPool against the embedded relay and against hostile relays, all on loopback ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from node.nostr.event import Event
from node.transport.pool import RelayPool
from tests.relay.helpers import RelayClient, make_event, pubkey
from tests.transport.conftest import LocalServer, hostile_app, relay_app

pytestmark = pytest.mark.timeout(30)

FAST = {"connect_timeout": 1.0, "backoff_initial": 0.05, "backoff_max": 0.3}


class Recorder:
    """Collects pool callbacks."""

    def __init__(self) -> None:
        self.events: list[tuple[Event, str]] = []
        self.states: list[tuple[str, str]] = []
        self.eose: list[tuple[str, str]] = []

    def on_event(self, event: Event, url: str) -> None:
        self.events.append((event, url))

    def on_state(self, url: str, state: str) -> None:
        self.states.append((url, state))

    def on_eose(self, sub_id: str, url: str) -> None:
        self.eose.append((sub_id, url))


def make_pool(pools: list[RelayPool], urls: list[str], rec: Recorder, **kwargs: Any) -> RelayPool:
    pool = RelayPool(
        urls, on_event=rec.on_event, on_state=rec.on_state, on_eose=rec.on_eose, **{**FAST, **kwargs}
    )
    pools.append(pool)
    return pool


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) for a condition to hold."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def node_filter(me: int) -> dict[str, Any]:
    return {"kinds": [20004], "#p": [pubkey(me)], "since": int(time.time()) - 60}


def frostr_event(sender: int, recipient: int, content: str = "x") -> Event:
    return make_event(sender, kind=20004, tags=[["p", pubkey(recipient)]], content=content)


async def test_publish_succeeds_with_one_relay_down(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool], dead_url: str
) -> None:
    good = LocalServer(relay_app).start()
    servers.append(good)
    rec = Recorder()
    pool = make_pool(pools, [dead_url, good.url], rec)
    pool.start()
    assert await pool.wait_connected(5)
    started = time.monotonic()
    assert await pool.publish(frostr_event(0, 1), timeout=3) == [good.url]
    assert time.monotonic() - started < 1.0
    status = {s["url"]: s for s in pool.status()}
    assert status[good.url]["state"] == "connected" and status[good.url]["connected"] is True
    assert status[good.url]["connectedAt"].endswith("Z")
    assert status[dead_url]["connected"] is False
    assert status[dead_url]["state"] in ("connecting", "disconnected")
    await until(lambda: pool.status()[0]["lastError"] is not None)


async def test_subscribe_receives_verified_events_once_across_relays(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    one, two = LocalServer(relay_app).start(), LocalServer(relay_app).start()
    servers += [one, two]
    rec = Recorder()
    pool = make_pool(pools, [one.url, two.url], rec)
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    await until(lambda: len(rec.eose) == 2)
    assert sorted(rec.eose) == sorted([("node", one.url), ("node", two.url)])

    sender = make_pool(pools, [one.url, two.url], Recorder())
    sender.start()
    event = frostr_event(0, 1, "for one")
    accepted = await sender.publish(event)
    assert accepted and set(accepted) <= {one.url, two.url}
    await until(lambda: len(rec.events) == 1)
    # Both relays pass the event on; the copy that comes second must be dropped. A relay answers OK
    # only after passing an event to its subscribers, and sends each connection's frames in order: once
    # each relay has acknowledged the event (again: "duplicate" if the sender's copy came first) and a
    # later marker of its own has reached the pool, both copies have been handled.
    clients = [await RelayClient.connect(server.url) for server in (one, two)]
    markers: dict[str, Event] = {}
    for n, (server, client) in enumerate(zip((one, two), clients, strict=True)):
        await client.publish(event)
        markers[server.url] = frostr_event(0, 1, f"marker {n}")
        await client.publish(markers[server.url])
    await until(lambda: len(rec.events) == 3)
    assert rec.events[0][0] == event
    assert sorted((e.id, url) for e, url in rec.events[1:]) == sorted((m.id, u) for u, m in markers.items())

    # Not addressed to us: filtered by the relay, never delivered (each relay gets it before a marker).
    stray = frostr_event(0, 2, "for two")
    for n, client in enumerate(clients):
        await client.publish(stray)
        await client.publish(frostr_event(0, 1, f"second marker {n}"))
    await until(lambda: len(rec.events) == 5)
    assert stray.id not in {e.id for e, _ in rec.events}


async def test_resubscribes_after_relay_restart(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    server = LocalServer(relay_app).start()
    servers.append(server)
    rec = Recorder()
    pool = make_pool(pools, [server.url], rec)
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    await until(lambda: len(rec.eose) == 1)

    await server.stop()
    await until(lambda: pool.status()[0]["state"] != "connected")
    assert pool.status()[0]["lastError"]
    server.start()  # a brand new relay (empty hub) on the same port
    await until(lambda: len(rec.eose) == 2)
    status = pool.status()[0]
    assert status["connected"] is True and status["reconnects"] >= 1

    event = frostr_event(0, 1, "after restart")
    await (await RelayClient.connect(server.url)).publish(event)
    await until(lambda: len(rec.events) == 1)
    assert rec.events[0] == (event, server.url)
    states = [state for _, state in rec.states]
    assert states[:2] == ["connecting", "connected"] and "disconnected" in states


async def test_garbage_and_forgeries_do_not_break_the_pool(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    genuine = frostr_event(0, 1, "genuine")
    hostile = LocalServer(hostile_app("garbage", genuine=genuine.to_json())).start()
    good = LocalServer(relay_app).start()
    servers += [hostile, good]
    rec = Recorder()
    pool = make_pool(pools, [hostile.url, good.url], rec)
    pool.subscribe("node", [node_filter(1), {"kinds": [1]}])
    pool.start()
    await until(lambda: ("node", good.url) in rec.eose)
    # The hostile relay ends its garbage with a proper EOSE: once that has arrived, every frame before it
    # was handled, and none was delivered.
    await until(lambda: ("node", hostile.url) in rec.eose)
    assert rec.events == []
    # The hostile relay's forged copy (same id) must not suppress the genuine event.
    await (await RelayClient.connect(good.url)).publish(genuine)
    await until(lambda: len(rec.events) == 1)
    assert rec.events == [(genuine, good.url)]
    assert await pool.publish(frostr_event(1, 0)) == [good.url]


async def test_huge_frame_drops_only_that_relay(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    huge = LocalServer(hostile_app("huge")).start()
    good = LocalServer(relay_app).start()
    servers += [huge, good]
    rec = Recorder()
    pool = make_pool(pools, [huge.url, good.url], rec, max_message_size=64 * 1024)
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    await until(lambda: pool.status()[0]["reconnects"] >= 1)
    assert pool.status()[0]["lastError"]
    event = frostr_event(0, 1)
    await (await RelayClient.connect(good.url)).publish(event)
    await until(lambda: len(rec.events) == 1)


async def test_abrupt_close_is_retried_with_backoff(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    abrupt = LocalServer(hostile_app("abrupt")).start()
    servers.append(abrupt)
    pool = make_pool(pools, [abrupt.url], Recorder(), backoff_initial=0.05, backoff_max=0.2)
    pool.start()
    await until(lambda: pool.status()[0]["reconnects"] >= 3)
    assert "1011" in (pool.status()[0]["lastError"] or "")
    assert await pool.publish(frostr_event(0, 1), timeout=0.3) == []


async def test_publish_returns_empty_within_timeout_when_nobody_accepts(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool], dead_url: str
) -> None:
    silent = LocalServer(hostile_app("silent")).start()
    refuse = LocalServer(hostile_app("refuse")).start()
    servers += [silent, refuse]
    pool = make_pool(pools, [silent.url, dead_url], Recorder())
    pool.start()
    assert await pool.wait_connected(5)
    started = time.monotonic()
    assert await pool.publish(frostr_event(0, 1), timeout=0.5) == []
    assert 0.4 < time.monotonic() - started < 1.5
    assert silent.app.settings["received"][-1].startswith('["EVENT"')  # type: ignore[union-attr]

    refusing = make_pool(pools, [refuse.url], Recorder())
    refusing.start()
    assert await refusing.wait_connected(5)
    started = time.monotonic()
    assert await refusing.publish(frostr_event(0, 1), timeout=5) == []
    assert time.monotonic() - started < 1.0  # an explicit refusal does not wait for the timeout

    invalid = LocalServer(relay_app).start()
    servers.append(invalid)
    ours = make_pool(pools, [invalid.url], Recorder())
    ours.start()
    future = make_event(0, created_at=int(time.time()) + 7200)
    assert await ours.publish(future, timeout=5) == []


async def test_status_states_and_close(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool], dead_url: str
) -> None:
    good = LocalServer(relay_app).start()
    servers.append(good)
    pool = make_pool(pools, [good.url, dead_url, good.url], Recorder())
    assert [s["url"] for s in pool.status()] == [good.url, dead_url]
    assert all(s["state"] == "disconnected" and s["connectedAt"] is None for s in pool.status())
    pool.start()
    assert await pool.wait_connected(5)
    assert pool.status()[0]["state"] == "connected"
    await pool.close()
    assert [s["state"] for s in pool.status()] == ["closed", "closed"]
    assert await pool.publish(frostr_event(0, 1), timeout=0.2) == []


async def test_wait_connected_false_when_unreachable(
    io_loop: Any, pools: list[RelayPool], dead_url: str
) -> None:
    pool = make_pool(pools, [dead_url], Recorder())
    pool.start()
    started = time.monotonic()
    assert await pool.wait_connected(0.3) is False
    assert time.monotonic() - started < 1.0


async def test_unsubscribe_and_raising_callbacks(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    server = LocalServer(relay_app).start()
    servers.append(server)
    seen: list[str] = []

    def explode(event: Event, url: str) -> None:
        seen.append(event.id)
        raise RuntimeError("node bug")

    eose: list[str] = []
    pool = RelayPool([server.url], on_event=explode, on_eose=lambda sub_id, url: eose.append(sub_id), **FAST)
    pools.append(pool)
    pool.subscribe("a", [node_filter(1)])
    pool.start()
    assert await pool.wait_connected(5)
    await until(lambda: eose == ["a"])
    client = await RelayClient.connect(server.url)
    first, second = frostr_event(0, 1, "1"), frostr_event(0, 1, "2")
    await client.publish(first)
    await client.publish(second)
    await until(lambda: seen == [first.id, second.id])
    pool.unsubscribe("a")
    # A later subscription for kind 1 only: its EOSE shows the relay has handled the CLOSE sent before it.
    pool.subscribe("b", [{"kinds": [1]}])
    await until(lambda: eose == ["a", "b"])
    after = frostr_event(0, 1, "3")
    marker = make_event(0, kind=1, content="marker")
    await client.publish(after)
    await client.publish(marker)  # passed on after ``after`` would have been
    await until(lambda: len(seen) == 3)
    assert seen == [first.id, second.id, marker.id]


async def test_tarpit_relay_times_out_without_stalling_others(
    io_loop: Any, servers: list[LocalServer], pools: list[RelayPool]
) -> None:
    # Accepts TCP connections and never answers the WebSocket handshake.
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    tarpit = await asyncio.start_server(hold, "127.0.0.1", 0)
    tarpit_url = f"ws://127.0.0.1:{tarpit.sockets[0].getsockname()[1]}/"
    good = LocalServer(relay_app).start()
    servers.append(good)
    rec = Recorder()
    pool = make_pool(pools, [tarpit_url, good.url], rec, connect_timeout=0.3)
    pool.subscribe("node", [node_filter(1)])
    pool.start()
    try:
        assert await pool.wait_connected(2)
        event = frostr_event(0, 1)
        assert await pool.publish(event, timeout=2) == [good.url]
        await until(lambda: pool.status()[0]["lastError"] is not None)
        assert "imeout" in pool.status()[0]["lastError"]
        assert pool.status()[0]["connected"] is False and accepted
    finally:
        tarpit.close()
        for writer in accepted:
            writer.close()
