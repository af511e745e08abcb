"""Helpers shared by the relay and transport tests: keys, signed events, a small relay client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Any

from tornado import websocket
from tornado.httpclient import HTTPRequest

from node.nostr.event import Event, sign_event
from node.nostr.messages import build_event

KEYS = [bytes.fromhex(f"{i:064x}") for i in range(1, 6)]


def pubkey(index: int) -> str:
    """The x-only public key (hex) of test key ``index``."""
    return make_event(index, content="pk").pubkey


def make_event(
    key: int = 0,
    *,
    kind: int = 1,
    tags: list[list[str]] | None = None,
    content: str = "hello",
    created_at: int | None = None,
) -> Event:
    """A validly signed event from test key ``key``."""
    when = int(time.time()) if created_at is None else created_at
    return sign_event(KEYS[key], kind, tags or [], content, when, bytes(32))


class RelayClient:
    """A real WebSocket client with bounded reads."""

    def __init__(self, conn: websocket.WebSocketClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str | HTTPRequest, **kwargs: Any) -> RelayClient:
        """Open a connection to ``url``."""
        return cls(await websocket.websocket_connect(url, **kwargs))

    @classmethod
    async def connect_from(cls, url: str, source: str, **kwargs: Any) -> RelayClient:
        """Open a connection to ``url`` from the loopback address ``source`` (127.0.0.2, ...)."""
        return await cls.connect(HTTPRequest(url, network_interface=source, **kwargs))

    async def send(self, message: Any) -> None:
        """Send a JSON value (or a raw string as-is)."""
        await self.conn.write_message(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = 3.0) -> Any:
        """The next frame decoded, or ``None`` if the connection closed."""
        text = await asyncio.wait_for(self.conn.read_message(), timeout)
        return None if text is None else json.loads(text)

    async def publish(self, event: Event) -> list[Any]:
        """Send EVENT and return the OK frame."""
        await self.send(build_event(event))
        reply: list[Any] = await self.recv()
        assert reply is not None and reply[0] == "OK" and reply[1] == event.id, reply
        return reply

    async def req(self, sub_id: str, *filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Send REQ and return the stored events delivered before EOSE."""
        await self.send(["REQ", sub_id, *filters])
        return await self.until_eose(sub_id)

    async def until_eose(self, sub_id: str) -> list[dict[str, Any]]:
        """Collect EVENT payloads for ``sub_id`` up to its EOSE (fails on anything else)."""
        events: list[dict[str, Any]] = []
        for _ in range(10_000):
            msg = await self.recv()
            assert msg is not None, "connection closed before EOSE"
            if msg[0] == "EOSE" and msg[1] == sub_id:
                return events
            assert msg[0] == "EVENT" and msg[1] == sub_id, msg
            events.append(msg[2])
        raise AssertionError("no EOSE")

    async def assert_quiet(self, probe: str = "probe") -> None:
        """Prove nothing was queued for us: a fresh empty REQ's EOSE must be the very next frame."""
        await self.send(["REQ", probe, {"ids": ["0" * 64]}])
        msg = await self.recv()
        assert msg == ["EOSE", probe], msg
        await self.send(["CLOSE", probe])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class RawClient:
    """A WebSocket client on a bare socket with a small receive buffer, read only when the test says so.

    Tornado's client reads as fast as it can; this one lets the relay's send buffer fill up, as a slow
    reader on a thin link would.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    async def connect(cls, port: int, rcvbuf: int = 4096) -> RawClient:
        """Handshake with the relay on 127.0.0.1:``port``."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        client = cls(sock)
        while b"\r\n\r\n" not in client.buffer:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 3)
            assert chunk, "closed during the handshake"
            client.buffer += chunk
        head, client.buffer = client.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        return client

    async def send(self, message: Any) -> None:
        """Send one masked text frame with this JSON value."""
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + size.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    async def _fill(self, size: int) -> None:
        loop = asyncio.get_running_loop()
        while len(self.buffer) < size:
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 5)
            if not chunk:
                raise ConnectionError("closed by the relay")
            self.buffer += chunk

    async def recv(self) -> tuple[int, bytes]:
        """The next frame from the relay: (opcode, payload)."""
        await self._fill(2)
        opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        start = 2
        if size == 126:
            await self._fill(4)
            size, start = int.from_bytes(self.buffer[2:4], "big"), 4
        elif size == 127:
            await self._fill(10)
            size, start = int.from_bytes(self.buffer[2:10], "big"), 10
        await self._fill(start + size)
        payload, self.buffer = self.buffer[start:start + size], self.buffer[start + size:]
        return opcode, payload

    def close(self) -> None:
        """Drop the socket."""
        self.sock.close()
