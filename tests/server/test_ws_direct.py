"""handlers/ws_direct.py: the event fan-out's direct send() on Tornado internals, on real connections.

These tests exist so that a Tornado upgrade cannot silently move the fan-out off its fast path (or break
slow-client detection, which reads the stream's write buffer): each failure names the missing part and the
installed Tornado version.
"""

from __future__ import annotations

import pytest
import tornado
import tornado.iostream
import tornado.websocket

from handlers.event_frames import encode_payload, frame_body, websocket_text_frame
from handlers.ws_direct import PRIVATE_PARTS, DirectSender, missing_private_parts
from tests.server.conftest import Igloo, read_frame, read_until_closed


def explain(missing: list[str]) -> str:
    parts = "; ".join(f"{name} ({PRIVATE_PARTS[name]})" for name in missing)
    return f"Tornado {tornado.version} no longer has {parts}: update handlers/ws_direct.py for this version"


async def server_connection(igloo: Igloo) -> tornado.websocket.WebSocketProtocol:
    [handler] = igloo.hub.sockets()
    conn = handler.ws_connection  # type: ignore[attr-defined]
    assert conn is not None
    return conn  # type: ignore[no-any-return]


async def test_installed_tornado_has_every_private_part(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    conn = await server_connection(igloo)
    missing = missing_private_parts(conn)
    assert not missing, explain(missing)
    assert conn._compressor is None, (  # type: ignore[attr-defined]
        f"Tornado {tornado.version}: WebSocketProtocol13._compressor is not None on an uncompressed "
        "connection; handlers/ws_direct.py reads it to choose shared frames"
    )
    stream = conn.stream
    assert type(stream) is tornado.iostream.IOStream, (
        f"Tornado {tornado.version}: the upgraded stream is {type(stream).__qualname__}, not IOStream"
    )
    wire = DirectSender(conn)
    assert wire.is_direct and not wire.is_compressed, explain(["IOStream._write_buffer"])
    assert wire.unsent_bytes() == 0
    ws.close()


async def test_direct_send_reaches_the_client_in_order(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    wire = DirectSender(await server_connection(igloo))
    bodies = [frame_body("info", f"direct {n}") for n in range(3)]
    joined = b"".join(websocket_text_frame(encode_payload(body)) for body in bodies)
    assert wire.try_send(joined) == b"", f"Tornado {tornado.version}: send() did not take a small frame"
    assert [await read_frame(ws) for _ in bodies] == bodies
    ws.close()


@pytest.mark.parametrize("overrides", [{"WS_COMPRESSION": "true"}])
async def test_compressed_connection_is_recognised(igloo: Igloo) -> None:
    ws = await igloo.ws_key(compression_options={})
    await read_frame(ws)
    conn = await server_connection(igloo)
    assert getattr(conn, "_compressor", None) is not None, (
        f"Tornado {tornado.version}: WebSocketProtocol13._compressor is missing or None on a "
        "permessage-deflate connection; handlers/ws_direct.py would send it uncompressed shared frames"
    )
    wire = DirectSender(conn)
    assert wire.is_compressed and not wire.is_direct
    frame = websocket_text_frame(b"{}")
    assert wire.try_send(frame) is frame  # compressed sockets never bypass the stream
    ws.close()


async def test_abort_drops_the_connection_at_once(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    conn = await server_connection(igloo)
    assert callable(getattr(conn, "_abort", None)), explain(["WebSocketProtocol._abort()"])
    DirectSender(conn).abort()
    assert await read_until_closed(ws) == []
    assert ws.close_code is None  # torn down, no closing handshake
    assert igloo.hub.sockets() == [] and igloo.hub.connection_count == 0


def test_a_tornado_without_those_parts_is_named_and_falls_back() -> None:
    """What an upgrade that renamed the internals looks like: every part named, public writes only."""

    class RenamedInternals:
        stream = object()

        def close(self) -> None:
            self.closed = True

    conn = RenamedInternals()
    assert missing_private_parts(conn) == list(PRIVATE_PARTS)  # type: ignore[arg-type]
    wire = DirectSender(conn)  # type: ignore[arg-type]
    frame = websocket_text_frame(b"{}")
    assert not wire.is_direct and not wire.is_compressed
    assert wire.try_send(frame) is frame and wire.unsent_bytes() == 0
    wire.abort()
    assert conn.closed
