"""The relay's plain-HTTP face (NIP-11, redirect) and its per-connection protections."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import HTTPClientError

from handlers.relay_hub import RelayLimits
from tests.relay.helpers import RelayClient, make_event

pytestmark = pytest.mark.timeout(30)

LIMITS = RelayLimits(
    max_subscriptions=4,
    max_filters=3,
    max_limit=20,
    max_event_tags=10,
    max_content_length=60_000,
    max_message_length=64 * 1024,
    event_rate=5.0,
    event_burst=30.0,
    max_send_buffer=64 * 1024,
)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """A slow event rate and a small send buffer, to reach both limits quickly."""
    return {"relay_limits": LIMITS}


async def test_nip11_document_with_cors(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/", headers={"Accept": "application/nostr+json"})
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/nostr+json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    info = json.loads(response.body)
    assert info["name"] == "Igloo embedded relay"
    assert info["supported_nips"] == [1, 11]
    assert info["limitation"]["max_subscriptions"] == 4
    assert info["limitation"]["max_filters"] == 3
    assert info["limitation"]["max_message_length"] == 64 * 1024
    assert info["limitation"]["auth_required"] is False
    assert isinstance(info["version"], str) and isinstance(info["software"], str)


async def test_cors_preflight(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/", method="OPTIONS")
    assert response.code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_browser_get_redirects_to_dashboard(http_server_client: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await http_server_client.fetch("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert info.value.code == 302
    assert info.value.response is not None
    assert info.value.response.headers["Location"] == "/dashboard"


async def test_foreign_origin_may_connect(relay_url: str) -> None:
    from tornado.httpclient import HTTPRequest

    client = await RelayClient.connect(HTTPRequest(relay_url, headers={"Origin": "https://example.org"}))
    assert await client.req("s", {"kinds": [1]}) == []


async def test_event_rate_limit(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    events = [make_event(0, content=str(i)) for i in range(40)]
    for event in events:
        await client.send(["EVENT", event.to_json()])
    replies = [await client.recv() for _ in events]
    assert [r[1] for r in replies] == [e.id for e in events]
    refused = [r for r in replies if r[2] is False]
    assert 5 <= len(refused) <= 10
    assert all(r[3].startswith("rate-limited:") for r in refused)
    assert all(r[2] is True for r in replies[:30])


async def test_slow_reader_is_closed_and_others_keep_working(
    relay_url: str, http_server_port: tuple[Any, int], app: tornado.web.Application
) -> None:
    # A raw socket that completes the handshake and then never reads.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, ("127.0.0.1", http_server_port[1]))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(raw, handshake.encode())
    assert b"101" in await asyncio.wait_for(loop.sock_recv(raw, 1024), 3)
    req = json.dumps(["REQ", "s", {"kinds": [1]}]).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(req)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(req))
    await loop.sock_sendall(raw, frame)

    hub = app.settings["relay_hub"]
    pub = await RelayClient.connect(relay_url)
    for _ in range(100):
        if hub.connections():
            break
        await asyncio.sleep(0.01)
    assert len(hub.connections()) == 1
    big = "x" * 50_000
    sent = 0
    for i in range(400):
        if not hub.connections():
            break
        await pub.send(["EVENT", make_event(1, content=f"{i}{big}").to_json()])
        reply = await pub.recv()
        if reply[2] is False:  # rate limited: wait for the bucket
            await asyncio.sleep(0.2)
        sent += 1
    assert hub.connections() == [], f"slow reader still subscribed after {sent} events"
    raw.close()
    after = make_event(1, content="after")
    for _ in range(20):
        reply = await pub.publish(after)
        if reply[2] is True:
            break
        await asyncio.sleep(0.2)  # rate limited
    assert reply == ["OK", after.id, True, ""]
