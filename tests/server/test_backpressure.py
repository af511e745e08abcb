"""A client that stops reading is closed (1013) once WS_MAX_BUFFER bytes wait for it; memory stays flat
and other clients keep getting events promptly."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import pytest

from tests.conftest import until
from tests.server.conftest import API_KEY, Igloo, read_frame

EVENT_BYTES = 10_000
EVENTS = 1000  # 10 MB in total


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the kernel from absorbing megabytes
    sock.settimeout(3)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {API_KEY}\r\n\r\n").encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("overrides", [{"EVENT_BUFFER_SIZE": "50"}])
async def test_stalled_client_dropped_memory_flat(igloo: Igloo) -> None:
    loop = asyncio.get_running_loop()
    slow = await loop.run_in_executor(None, stalled_client, igloo.port)
    for _ in range(100):
        if igloo.hub.connection_count == 1:
            break
        await asyncio.sleep(0.01)
    [slow_handler] = igloo.hub.sockets()
    fast = await igloo.ws_key()
    await read_frame(fast)
    pad = "x" * EVENT_BYTES
    max_unsent = 0
    latencies = []
    before = rss_bytes()
    for n in range(EVENTS):
        sent_at = time.monotonic()
        igloo.hub.publish("info", "bulk", {"n": n, "pad": pad})
        if slow_handler.ws_connection is not None and slow_handler in slow_handler.open_sockets:
            max_unsent = max(max_unsent, slow_handler.unsent_bytes())
        frame = await read_frame(fast, timeout=2)
        latencies.append(time.monotonic() - sent_at)
        assert frame["data"]["n"] == n  # type: ignore[index]
    grown = rss_bytes() - before
    assert grown < 4 * 1024 * 1024, f"RSS grew by {grown} bytes while 10 MB were published"
    assert slow_handler not in slow_handler.open_sockets  # dropped (1013)
    assert igloo.hub.connection_count == 1
    assert max_unsent <= igloo.config.ws_max_buffer + EVENT_BYTES + 64
    assert max(latencies) < 0.5
    slow.close()


@pytest.mark.parametrize("overrides", [{"WS_PING_INTERVAL": "0.2", "WS_PING_TIMEOUT": "0.3"}])
async def test_protocol_ping_finds_dead_clients(igloo: Igloo) -> None:
    loop = asyncio.get_running_loop()
    dead = await loop.run_in_executor(None, stalled_client, igloo.port)  # never answers pings
    for _ in range(100):
        if igloo.hub.connection_count == 1:
            break
        await asyncio.sleep(0.01)
    [dead_handler] = igloo.hub.sockets()
    live = await igloo.ws_key()  # tornado's client answers pings
    await read_frame(live)
    # After the ping timeout the server starts the closing handshake (the marker); the live client is kept.
    await until(lambda: dead_handler.ws_connection is None or dead_handler.ws_connection.is_closing(),
                what="the dead client's closing handshake")
    sent = igloo.hub.publish("info", "tick")
    assert await read_frame(live) == sent
    await until(lambda: igloo.hub.connection_count == 1, what="the dead client leaving the live set")
    dead.close()
    live.close()
