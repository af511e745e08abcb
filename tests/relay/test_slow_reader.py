"""A client that stops reading is closed instead of growing the relay's memory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
import tornado.web

from relay import RelayLimits, RelayState
from tests.relay.helpers import RelayClient, make_event

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """A small send buffer and no practical rate limit."""
    limits = RelayLimits(max_content_length=60_000, max_send_buffer=65536, event_rate=1e4, event_burst=1e4)
    return {"relay": RelayState(limits)}


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

    hub = app.settings["relay"]
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
        assert (await pub.recv())[2] is True
        sent += 1
    assert hub.connections() == [], f"slow reader still subscribed after {sent} events"
    raw.close()
    after = make_event(1, content="after")
    assert await pub.publish(after) == ["OK", after.id, True, ""]
