"""WebSocket helpers for the frame fuzzers: raw frames (any opcode, any bytes) and bounded reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import tornado.httpclient
import tornado.websocket
from hypothesis import strategies as st

from tests.fuzz.strategies import deep, dumps, invalid_utf8, json_values, text

WS = tornado.websocket.WebSocketClientConnection
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Frame:
    """One client frame: ``opcode`` 1 text, 2 binary, 8 close, 9 ping, 10 pong (or a reserved one)."""

    opcode: int
    payload: bytes

    @property
    def valid_text(self) -> bool:
        if self.opcode != 1:
            return False
        try:
            self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def text_frame(value: str) -> Frame:
    return Frame(1, value.encode("utf-8", "surrogatepass"))


def frames(commands: st.SearchStrategy[Any], size_limit: int) -> st.SearchStrategy[Frame]:
    """Text frames carrying ``commands`` or any JSON, deep and huge JSON, invalid UTF-8, binary, control."""
    json_text = st.builds(lambda v: dumps(v).decode(), st.one_of(commands, json_values()))
    return st.one_of(
        json_text.map(text_frame),
        json_text.map(text_frame),
        json_text.map(text_frame),
        text.map(text_frame),
        st.builds(deep, st.one_of(st.integers(900, size_limit // 2), st.integers(1, 3 * size_limit)),
                  st.sampled_from(["[", "{"])).map(text_frame),
        st.integers(size_limit - 64, size_limit + 64).map(lambda n: text_frame('"' + "a" * (n - 2) + '"')),
        st.integers(size_limit + 1, 4 * size_limit).map(lambda n: text_frame("x" * n)),
        invalid_utf8.map(lambda b: Frame(1, b)),
        st.binary(max_size=300).map(lambda b: Frame(2, b)),
        st.builds(lambda v: Frame(2, dumps(v)), commands),
        st.builds(Frame, st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xF]), st.binary(max_size=20)),
        st.builds(Frame, st.just(9), st.binary(max_size=125)),
    )


async def send_frame(ws: WS, frame: Frame) -> None:
    """Write the frame as is (masked, final) — bytes a well-behaved client library would refuse to send."""
    protocol: Any = ws.protocol
    await protocol._write_frame(True, frame.opcode, frame.payload)


async def connect(url: str, headers: dict[str, str] | None = None) -> WS:
    request = tornado.httpclient.HTTPRequest(url, headers=headers or {}, connect_timeout=5, request_timeout=5)
    return await tornado.websocket.websocket_connect(request)


async def read(ws: WS) -> str | bytes | None:
    """The next message, or None once the socket closed."""
    return await asyncio.wait_for(ws.read_message(), READ_TIMEOUT)


async def read_until_closed(ws: WS, limit: int = 1000) -> None:
    for _ in range(limit):
        if await read(ws) is None:
            return
    raise AssertionError("socket kept sending after it should have closed")


@dataclass
class Slot:
    """A client socket that reconnects after the server closed it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ws: WS | None = None
    greeting: bool = False  # the event stream greets and replays before anything else
    reconnects: int = 0

    async def get(self) -> WS:
        if self.ws is None:
            self.ws = await connect(self.url, self.headers)
            self.reconnects += 1
        return self.ws

    def drop(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
