"""Connections: a cap per address, slots only the node's own (local) connections may take, proxied
clients counted as outsiders, and a closed connection's subscriptions freed at once."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import HTTPClientError

from relay import ClientAddress, RelayLimits, RelayState, address_key
from relay.limits import LOCAL_ADDRESSES
from tests.relay.helpers import RelayClient, make_event

pytestmark = pytest.mark.timeout(30)

LIMITS = RelayLimits(max_connections=10, max_connections_per_address=3, local_reserved=4)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """Ten slots: four only local connections may take, three per outside address."""
    return {"relay": RelayState(LIMITS)}


async def refused(url: str, source: str | None = None, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(HTTPClientError) as info:
        if source is None:
            await RelayClient.connect(url) if headers is None else await RelayClient.connect(
                tornado.httpclient.HTTPRequest(url, headers=headers))
        else:
            await RelayClient.connect_from(url, source, headers=headers)
    return info.value.code


async def works(client: RelayClient, note: str) -> None:
    event = make_event(1, content=note)
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert [e["id"] for e in await client.req(note, {"ids": [event.id]})] == [event.id]


async def test_one_address_at_its_cap_while_another_and_the_node_keep_working(relay_url: str) -> None:
    crowd = [await RelayClient.connect_from(relay_url, "127.0.0.2") for _ in range(3)]
    assert await refused(relay_url, "127.0.0.2") == 429
    other = await RelayClient.connect_from(relay_url, "127.0.0.3")
    await works(other, "other address")
    node = await RelayClient.connect(relay_url)  # 127.0.0.1, no proxy header: the node's own kind
    await works(node, "node")
    await works(crowd[0], "the capped address still has its three")


async def test_outsiders_cannot_take_the_reserved_slots(relay_url: str, app: tornado.web.Application) -> None:
    outsiders = [await RelayClient.connect_from(relay_url, source) for source in ("127.0.0.2", "127.0.0.3")
                 for _ in range(3)]
    assert await refused(relay_url, "127.0.0.4") == 503  # six outsiders: the rest is reserved
    locals_ = [await RelayClient.connect(relay_url) for _ in range(4)]
    await works(locals_[-1], "a reserved slot")
    assert await refused(relay_url) == 503  # ten in all
    outsiders[0].close()
    relay: RelayState = app.settings["relay"]
    for _ in range(200):
        if relay.admission.open_count() < 10:
            break
        await asyncio.sleep(0.01)
    late = await RelayClient.connect_from(relay_url, "127.0.0.5")
    await works(late, "a slot freed by an outsider")


async def test_a_proxied_loopback_connection_is_an_outsider(relay_url: str) -> None:
    proxied = {"X-Forwarded-For": "203.0.113.7"}
    # Without TRUST_PROXY the proxy's own address counts: its clients share one outsider cap.
    held = [await RelayClient.connect(tornado.httpclient.HTTPRequest(relay_url, headers=proxied))
            for _ in range(3)]
    assert await refused(relay_url, headers=proxied) == 429
    forged = {"X-Real-IP": "127.0.0.1"}
    assert await refused(relay_url, headers=forged) == 429  # a forged header gains nothing
    node = await RelayClient.connect(relay_url)
    await works(node, "direct loopback")
    assert held


@pytest.mark.parametrize(
    ("remote_ip", "headers", "expected"),
    [
        ("127.0.0.1", {}, ClientAddress("127.0.0.1", True)),
        ("::1", {}, ClientAddress("::1", True)),
        ("::ffff:127.0.0.1", {}, ClientAddress("127.0.0.1", True)),
        ("127.0.0.2", {}, ClientAddress("127.0.0.2", False)),
        ("127.0.0.1", {"X-Forwarded-For": "198.51.100.1"}, ClientAddress("127.0.0.1", False)),
        ("127.0.0.1", {"Forwarded": "for=198.51.100.1"}, ClientAddress("127.0.0.1", False)),
        ("198.51.100.1", {"X-Real-Ip": "198.51.100.1"}, ClientAddress("198.51.100.1", False)),
        ("2001:db8:1:2:3:4:5:6", {}, ClientAddress("2001:db8:1:2::/64", False)),
        (None, {}, ClientAddress("unknown", False)),
    ],
)
def test_client_address(remote_ip: str | None, headers: dict[str, str], expected: ClientAddress) -> None:
    assert ClientAddress.of(remote_ip, headers, LOCAL_ADDRESSES) == expected


def test_ipv6_neighbours_share_one_address() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") != address_key("2001:db8:0:1::1")


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def test_closed_connection_frees_its_subscriptions_without_the_cycle_collector(
    relay_url: str, app: tornado.web.Application, no_cycle_collector: None
) -> None:
    relay: RelayState = app.settings["relay"]
    client = await RelayClient.connect(relay_url)
    many = [{"authors": [f"{i:064x}" for i in range(j * 150, j * 150 + 150)]} for j in range(10)]
    for n in range(5):
        await client.req(f"s{n}", *many[2 * n:2 * n + 2], {"kinds": [1, 7], "#p": ["a" * 64]}, {})
    (conn,) = relay.connections()
    subs = relay.subscriptions.of(conn)
    assert len(subs) == 5
    alive = [weakref.ref(sub) for sub in subs]
    del subs, conn
    client.close()
    for _ in range(300):
        if relay.open_count() == 0:
            break
        await asyncio.sleep(0.01)
    assert relay.open_count() == 0 and relay.connections() == []
    assert [ref() for ref in alive] == [None] * 5  # freed by reference counting alone
