"""The embedded relay at / driven by real WebSocket clients on a loopback port."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import tornado.web

from tests.relay.helpers import RelayClient, make_event, pubkey

pytestmark = pytest.mark.timeout(30)


async def test_publish_then_subscribe_gets_stored_event(relay_url: str) -> None:
    a, b = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    event = make_event(0)
    assert await a.publish(event) == ["OK", event.id, True, ""]
    got = await b.req("s", {"authors": [event.pubkey]})
    assert got == [event.to_json()]


async def test_live_event_reaches_subscriber_after_eose(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    assert await sub.req("live", {"kinds": [1]}) == []
    event = make_event(1)
    await pub.publish(event)
    assert await sub.recv() == ["EVENT", "live", event.to_json()]


async def test_duplicate_event_is_ok_but_not_delivered_twice(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]})
    event = make_event(0)
    await pub.publish(event)
    reply = await pub.publish(event)
    assert reply[2] is True and reply[3].startswith("duplicate:")
    assert (await sub.recv())[2]["id"] == event.id
    await sub.assert_quiet()


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"kinds": [7]}, {"k7"}),
        ({"authors": ["A"]}, {"old", "k7"}),
        ({"#p": ["P"]}, {"tagged"}),
        ({"since": 1_700_000_100}, {"k7", "tagged"}),
        ({"until": 1_700_000_100}, {"old", "k7"}),
        ({"since": 1_700_000_050, "until": 1_700_000_150}, {"k7"}),
        ({"ids": ["old"]}, {"old"}),
        ({"kinds": [1], "authors": ["B"]}, {"tagged"}),
        ({"kinds": [1], "authors": ["B"], "#p": ["nobody"]}, set()),
    ],
)
async def test_filters_on_stored_and_live_events(
    relay_url: str, flt: dict[str, Any], expected: set[str]
) -> None:
    events = {
        "old": make_event(0, created_at=1_700_000_000, content="old"),
        "k7": make_event(0, kind=7, created_at=1_700_000_100, content="k7"),
        "tagged": make_event(1, tags=[["p", pubkey(2)]], created_at=1_700_000_200, content="tagged"),
    }
    names = {"A": pubkey(0), "B": pubkey(1), "P": pubkey(2)}

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [events[v].id if v in events else names.get(v, v) for v in value]
        return value

    concrete = {key: resolve(value) for key, value in flt.items()}
    by_id = {event.id: name for name, event in events.items()}

    live, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    assert await live.req("live", concrete) == []
    for event in events.values():
        await pub.publish(event)
    live_got = []
    for _ in expected:
        msg = await live.recv()
        assert msg[:2] == ["EVENT", "live"]
        live_got.append(by_id[msg[2]["id"]])
    await live.assert_quiet()
    assert set(live_got) == expected

    stored = await (await RelayClient.connect(relay_url)).req("stored", concrete)
    assert {by_id[e["id"]] for e in stored} == expected


async def test_stored_events_newest_first_and_limit(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    events = [make_event(0, created_at=1_700_000_000 + i, content=str(i)) for i in range(6)]
    for event in events:
        await client.publish(event)
    got = await client.req("s", {"kinds": [1], "limit": 3})
    assert [e["id"] for e in got] == [e.id for e in reversed(events[3:])]
    everything = await client.req("all", {"kinds": [1]})
    assert [e["created_at"] for e in everything] == sorted((e.created_at for e in events), reverse=True)
    assert await client.req("none", {"kinds": [1], "limit": 0}) == []


async def test_limit_is_capped_by_max_limit(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    for i in range(25):
        await client.publish(make_event(0, created_at=1_700_000_000 + i, content=str(i)))
    assert len(await client.req("s", {"kinds": [1], "limit": 1000})) == 20


async def test_ephemeral_event_is_delivered_but_not_stored(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    flt = {"kinds": [20004], "#p": [pubkey(1)]}
    await sub.req("eph", flt)
    event = make_event(0, kind=20004, tags=[["p", pubkey(1)]], content="frostr")
    assert (await pub.publish(event))[2] is True
    assert await sub.recv() == ["EVENT", "eph", event.to_json()]
    assert await (await RelayClient.connect(relay_url)).req("later", flt) == []


async def test_bad_signature_and_id_mismatch_are_rejected(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]})
    good = make_event(0).to_json()
    bad_sig = dict(good, sig=("0" if good["sig"][0] != "0" else "1") + good["sig"][1:])
    await pub.send(["EVENT", bad_sig])
    reply = await pub.recv()
    assert reply[:3] == ["OK", good["id"], False] and reply[3].startswith("invalid:")
    tampered = dict(good, content="tampered")
    await pub.send(["EVENT", tampered])
    reply = await pub.recv()
    assert reply[:3] == ["OK", good["id"], False] and reply[3].startswith("invalid:")
    await sub.assert_quiet()
    assert await sub.req("again", {"kinds": [1]}) == []


async def test_malformed_event_shape_gets_ok_false_or_notice(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    good = make_event(0).to_json()
    await client.send(["EVENT", dict(good, kind="1")])
    reply = await client.recv()
    assert reply[:3] == ["OK", good["id"], False] and reply[3].startswith("invalid:")
    await client.send(["EVENT", {"id": "nope"}])
    reply = await client.recv()
    assert reply[0] == "NOTICE" and reply[1].startswith("invalid:")


@pytest.mark.parametrize(
    "frame",
    ["not json", "{}", "[]", '["HELLO"]', "[1,2]", '["CLOSE"]', '["REQ"]', '["REQ", 5, {}]', "[" * 5000],
)
async def test_malformed_frames_get_notice_and_connection_survives(relay_url: str, frame: str) -> None:
    client = await RelayClient.connect(relay_url)
    await client.send(frame)
    reply = await client.recv()
    assert reply[0] == "NOTICE" and reply[1].startswith("invalid:")
    event = make_event(0)
    assert (await client.publish(event))[2] is True


async def test_binary_frame_gets_notice(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    await client.conn.write_message(b'["REQ","x",{}]', binary=True)
    reply = await client.recv()
    assert reply[0] == "NOTICE" and reply[1].startswith("invalid:")


async def test_bad_filter_gets_closed(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    await client.send(["REQ", "bad", {"kinds": ["one"]}])
    reply = await client.recv()
    assert reply[:2] == ["CLOSED", "bad"] and reply[2].startswith("invalid:")
    await client.send(["REQ", "search", {"search": "x"}])
    assert (await client.recv())[:2] == ["CLOSED", "search"]


async def test_bifrost_wrapped_filter_form_is_accepted(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    stored = make_event(0, content="stored")
    await pub.publish(stored)
    await sub.send(["REQ", "quirk", [{"kinds": [1, 20004], "#p": [pubkey(1)]}, {"ids": [stored.id]}]])
    assert [e["id"] for e in await sub.until_eose("quirk")] == [stored.id]
    live = make_event(0, kind=20004, tags=[["p", pubkey(1)]])
    await pub.publish(live)
    assert await sub.recv() == ["EVENT", "quirk", live.to_json()]


async def test_close_stops_delivery(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]})
    await sub.send(["CLOSE", "s"])
    await sub.assert_quiet("p1")  # the CLOSE has been processed once this answers
    await pub.publish(make_event(0))
    await sub.assert_quiet("p2")


async def test_req_with_same_id_replaces_subscription(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]})
    await sub.req("s", {"kinds": [7]})
    await pub.publish(make_event(0, kind=1))
    seven = make_event(0, kind=7)
    await pub.publish(seven)
    assert await sub.recv() == ["EVENT", "s", seven.to_json()]
    await sub.assert_quiet()


async def test_event_matching_two_filters_is_sent_once_per_subscription(relay_url: str) -> None:
    sub, pub = await RelayClient.connect(relay_url), await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]}, {"authors": [pubkey(0)]}, {"#p": [pubkey(3)]})
    await sub.req("t", {"kinds": [1]})
    event = make_event(0, tags=[["p", pubkey(3)]])
    await pub.publish(event)
    got = [await sub.recv(), await sub.recv()]
    assert sorted(msg[1] for msg in got) == ["s", "t"]
    await sub.assert_quiet()


async def test_disconnect_removes_subscriptions(relay_url: str, app: tornado.web.Application) -> None:
    sub = await RelayClient.connect(relay_url)
    await sub.req("s", {"kinds": [1]})
    hub = app.settings["relay"]
    assert len(hub.connections()) == 1
    sub.close()
    pub = await RelayClient.connect(relay_url)
    for _ in range(100):
        if not hub.connections():
            break
        await pub.assert_quiet()
    assert hub.connections() == []
    assert (await pub.publish(make_event(0)))[2] is True


async def test_subscription_and_filter_limits(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    for i in range(4):
        await client.req(f"s{i}", {"kinds": [1]})
    await client.req("s0", {"kinds": [2]})  # replacing does not count as a new one
    await client.send(["REQ", "s4", {"kinds": [1]}])
    reply = await client.recv()
    assert reply[:2] == ["CLOSED", "s4"] and reply[2].startswith("blocked:")
    await client.send(["CLOSE", "s3"])
    await client.req("s4", {"kinds": [1]})
    await client.send(["REQ", "many", {}, {}, {}, {}])
    reply = await client.recv()
    assert reply[:2] == ["CLOSED", "many"] and reply[2].startswith("invalid:")


async def test_event_size_limits(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    reply = await client.publish(make_event(0, tags=[["t", str(i)] for i in range(11)]))
    assert reply[2] is False and reply[3].startswith("invalid:")
    reply = await client.publish(make_event(0, content="x" * 2001))
    assert reply[2] is False and reply[3].startswith("invalid:")
    reply = await client.publish(make_event(0, created_at=int(time.time()) + 3600))
    assert reply[2] is False and reply[3].startswith("invalid:")


async def test_oversized_frame_closes_with_1009(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    await client.send(json.dumps(["EVENT", make_event(0, content="x" * 20_000).to_json()]))
    assert await client.recv() is None
    assert client.conn.close_code == 1009


async def test_store_is_bounded_by_count(relay_url: str, app: tornado.web.Application) -> None:
    client = await RelayClient.connect(relay_url)
    events = [make_event(i % 5, created_at=1_700_000_000 + i, content=str(i)) for i in range(60)]
    for event in events:
        await client.send(["EVENT", event.to_json()])
        assert (await client.recv())[2] is True
    assert app.settings["relay"].stored_count() == 50
    got = await client.req("s", {"ids": [events[0].id, events[-1].id]})
    assert [e["id"] for e in got] == [events[-1].id]
