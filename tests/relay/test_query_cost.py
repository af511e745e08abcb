"""Bounded cost per query: indexed candidates, work charged to the client, results streamed to slow
readers."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from typing import Any

import pytest
import tornado.web

from handlers.relay import RelayHandler
from node.nostr.filters import Filter
from relay import ClientAddress, RelayLimits, RelayState
from tests.relay.helpers import RawClient, RelayClient, make_event, pubkey

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000


def tagged_store(count: int = 300, tags: int = 100) -> RelayState:
    """Events of kind 1 from five authors, each with many ``t`` tags no filter below asks for."""
    relay = RelayState(RelayLimits(max_events=10_000, max_limit=500))
    for i in range(count):
        event = make_event(i % 5, tags=[["t", f"{i}-{j}"] for j in range(tags)], content=str(i),
                           created_at=T0 + i)
        assert relay.publish(event, f"10.0.{i % 200}.1") == (True, "")
    return relay


@pytest.fixture(scope="module")
def store() -> RelayState:
    return tagged_store()


@pytest.mark.parametrize(
    ("flt", "most_work"),
    [
        ({"#t": ["nothing"]}, 5),  # the old relay scanned 300 events x 100 tags here
        ({"kinds": [1], "#t": ["17-3"]}, 20),  # the tag index is smaller than the kind index
        ({"#e": ["0" * 64], "kinds": [1]}, 5),
        ({"authors": ["f" * 64]}, 5),
        ({"ids": ["0" * 64, "1" * 64]}, 5),
        ({"kinds": [1], "limit": 3}, 10),  # newest first: stops after three
        ({"since": T0 + 290}, 15),  # the time range is found by bisection, not by a scan
        ({"until": T0 + 9, "limit": 5}, 15),
    ],
)
def test_a_filter_touches_only_its_candidates(store: RelayState, flt: dict[str, Any], most_work: int) -> None:
    query = store.query([Filter.from_json(flt)])
    found = query.run()
    assert query.work <= most_work, f"{flt}: {query.work} work units"
    expected = [r for r in sorted(store.store.by_id.values(), key=lambda r: r.key)
                if Filter.from_json(flt).matches(json_event(r.data))]
    limit = flt.get("limit", 500)
    assert [r.id for r in found] == [r.id for r in expected][:limit]


def json_event(data: bytes) -> Any:
    from node.nostr.event import Event

    return Event.from_json(json.loads(data))


def test_work_counts_every_candidate_and_its_tags() -> None:
    # 100 kind-1 events with 100 tags each; 150 kind-7 events tagged t=w: the kind index is the smaller,
    # and every one of its candidates has its tags compared before it is refused.
    relay = RelayState(RelayLimits(max_events=1000))
    for i in range(100):
        tags = [["t", f"v{j}"] for j in range(100)]
        relay.publish(make_event(i % 5, tags=tags, content=str(i)), f"10.1.{i}.1")
    for i in range(150):
        relay.publish(make_event(i % 5, kind=7, tags=[["t", "w"]], content=str(i)), f"10.2.{i}.1")
    query = relay.query([Filter.from_json({"kinds": [1], "#t": ["w"]})] * 10)
    assert query.run() == []
    assert query.work >= 10 * 100 * (2 + 100 // 16)


def test_sliced_search_equals_a_whole_one_while_the_store_changes() -> None:
    relay = tagged_store(120, 3)
    filters = [Filter.from_json({"kinds": [1], "limit": 50}), Filter.from_json({"authors": [pubkey(1)]})]
    whole = [r.id for r in relay.query(filters).run()]
    sliced = relay.query(filters)
    added = 0
    while not sliced.done:
        sliced.step(7)
        relay.publish(make_event(1, content=f"late {added}", created_at=T0 + 1000 + added), "10.9.9.9")
        added += 1
    assert added > 10
    # Events stored after the search began are the live subscription's to send, not the search's.
    assert [r.id for r in sliced.results()] == whole


SMALL_BUFFER = RelayLimits(max_send_buffer=64 * 1024, max_limit=200, max_events=1000, max_bytes=1 << 30,
                           address_quota=1 << 30, author_quota=1 << 30, max_query_work=50_000,
                           event_rate=1000.0, event_burst=400.0)


@pytest.fixture
def clock() -> list[float]:
    """The token buckets' clock: it moves only when a test moves it."""
    return [0.0]


@pytest.fixture
def relay_settings(request: pytest.FixtureRequest, clock: list[float]) -> dict[str, Any]:
    """A small send buffer, room for big results, and buckets on the test's clock."""
    limits = getattr(request, "param", SMALL_BUFFER)
    return {"relay": RelayState(limits, monotonic=lambda: clock[0])}


async def fill(relay_url: str, count: int, size: int = 0) -> list[str]:
    """Half kind 1 without tags, half kind 7 tagged t=a: no kind-1 event has t=a."""
    client = await RelayClient.connect(relay_url)
    ids = []
    for i in range(count):
        odd = i % 2 == 1
        event = make_event(i % 5, kind=7 if odd else 1, tags=[["t", "a"]] if odd else [],
                           content=f"{i}:" + "z" * size, created_at=T0 + i)
        await client.send(["EVENT", event.to_json()])
        ids.append(event.id)
    for _ in ids:
        assert (await client.recv())[2] is True
    client.close()
    return ids


DISJOINT = {"kinds": [1], "#t": ["a"]}
"""75 candidates in either index, none matching."""


async def test_req_work_is_charged_to_the_address_and_paces_it(
    relay_url: str, app: tornado.web.Application, monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    await fill(relay_url, 150)
    relay: RelayState = app.settings["relay"]
    pauses: list[float] = []

    async def pause(self: RelayHandler, seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds  # the time the relay waited passes

    monkeypatch.setattr(RelayHandler, "_pause", pause)
    outsider = await RelayClient.connect_from(relay_url, "127.0.0.2")
    bucket = relay.admission.bucket(ClientAddress("127.0.0.2", False))
    filters = [DISJOINT] * 10
    frame = json.dumps(["REQ", "costly", *filters])
    search = relay.query([Filter.from_json(f) for f in filters])
    search.run()
    assert search.work >= 10 * 75
    limits = relay.limits
    cost = 1 + len(frame) / limits.frame_bytes_per_token + search.work / limits.query_work_per_token
    before = bucket.tokens
    await outsider.send(frame)
    assert await outsider.until_eose("costly") == []
    assert before - bucket.tokens == pytest.approx(cost)
    # A second connection of the same address pays from the same bucket: the burst runs out sooner.
    second = await RelayClient.connect_from(relay_url, "127.0.0.2")
    assert relay.admission.bucket(ClientAddress("127.0.0.2", False)) is bucket
    for n in range(100):
        left = bucket.tokens
        await second.send(["REQ", "costly", *filters])  # the same id replaces the subscription
        assert await second.recv() == ["EOSE", "costly"], n
        if pauses:
            break
    else:
        raise AssertionError(f"the bucket never went into debt: {bucket.tokens}")
    # The REQ that went into debt was finished only after the relay waited for the debt to be paid.
    assert left < cost and pauses == [pytest.approx((cost - left) / limits.event_rate)]
    bucket.charge(0.0)  # brings the bucket up to the clock
    assert bucket.tokens == pytest.approx(0, abs=1e-6)
    await second.send(["REQ", "after", {"ids": ["0" * 64]}])  # paid up, but no token left for a REQ
    reply = await second.recv()
    assert reply[:2] == ["CLOSED", "after"] and reply[2].startswith("rate-limited:")
    clock[0] += 2 / limits.event_rate
    await second.send(["REQ", "after", {"ids": ["0" * 64]}])
    assert await second.recv() == ["EOSE", "after"]
    assert len(pauses) == 1  # the refusal's small charge was paid by the time that passed
    local = await RelayClient.connect(relay_url)  # a local client pays from its own bucket
    assert await local.req("mine", *filters) == []
    assert len(pauses) == 1


@pytest.mark.parametrize("relay_settings", [RelayLimits(max_query_work=500, max_limit=200)], indirect=True)
async def test_req_over_the_work_budget_is_closed(relay_url: str, app: tornado.web.Application) -> None:
    await fill(relay_url, 150)
    client = await RelayClient.connect(relay_url)
    assert await client.req("fits", *[DISJOINT] * 3) == []  # about 240 units
    await client.send(["REQ", "huge", *[DISJOINT] * 10])  # about 790
    reply = await client.recv()
    assert reply[:2] == ["CLOSED", "huge"] and reply[2].startswith("rate-limited:"), reply
    relay: RelayState = app.settings["relay"]
    (conn,) = relay.connections()
    assert relay.subscriptions.has(conn, "fits") and not relay.subscriptions.has(conn, "huge")


@pytest.mark.parametrize("relay_settings", [replace(SMALL_BUFFER, event_burst=1e6)], indirect=True)
async def test_large_result_streams_to_a_slow_reader_without_1013(
    relay_url: str, http_server_port: tuple[Any, int], app: tornado.web.Application
) -> None:
    ids = await fill(relay_url, 200, 20_000)  # 2 MB of kind-1 results against a 64 KiB send buffer
    relay: RelayState = app.settings["relay"]
    raw = await RawClient.connect(http_server_port[1])
    (handler,) = relay.open_connections()
    assert isinstance(handler, RelayHandler) and handler.ws_connection is not None
    # A thin link: the kernel takes little of what the relay writes, so its own buffer must fill.
    handler.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    await raw.send(["REQ", "big", {"kinds": [1], "limit": 200}])
    for _ in range(300):  # wait until the REQ's stored events are streaming
        handlers = relay.connections()
        if handlers and "big" in getattr(handlers[0], "_held", {}):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the REQ never started streaming")
    live = make_event(3, content="live while streaming", created_at=T0 + 999)
    publisher = await RelayClient.connect(relay_url)
    assert (await publisher.publish(live))[2] is True
    got: list[Any] = []
    for _ in range(400):
        opcode, payload = await raw.recv()
        assert opcode == 1, (opcode, payload[:80])
        got.append(json.loads(payload))
        if got[-1][0] == "EVENT" and got[-1][2]["id"] == live.id:
            break
    eose = got.index(["EOSE", "big"])
    assert [m[2]["id"] for m in got[:eose]] == list(reversed(ids[::2]))
    assert got[eose + 1:] == [["EVENT", "big", live.to_json()]]  # held until after EOSE, sent once
    raw.close()


def test_every_step_makes_progress_however_small_its_budget() -> None:
    # Found by tests/fuzz/test_relay_limits.py: a filter whose index lookups alone cost more than the
    # slice's budget never moved, and its REQ never finished.
    relay = tagged_store(20, 1)
    query = relay.query([Filter.from_json({"authors": [pubkey(i) for i in range(5)], "limit": 20})])
    for _ in range(100):
        if query.done:
            break
        query.step(1)
    assert query.done and len(query.results()) == 20
