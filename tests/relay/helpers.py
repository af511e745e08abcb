"""Helpers shared by the relay and transport tests: keys, signed events, a small relay client."""

from __future__ import annotations

import asyncio
import json
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
