"""The one place that reaches under Tornado's public WebSocket API: the event fan-out's direct ``send()``.

``IOStream.write`` costs a Future and buffer bookkeeping per call (about 10 µs per socket per event), and
the event stream writes the same pre-built frame to every open socket. So when a socket's stream has
nothing queued, the frame goes to the kernel with one ``send()``; only a remainder the kernel does not take
goes through the stream, so frames stay in order and errors surface the stream's way.

That leans on Tornado internals it does not promise to keep (``PRIVATE_PARTS``). When one of them is
missing, ``DirectSender`` falls back to Tornado's public writes, slower but in order; an upgrade must not
fall back silently, so ``tests/server/test_ws_direct.py`` fails naming the part and the Tornado version.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sized

import tornado.iostream
import tornado.websocket

PRIVATE_PARTS = {
    "WebSocketProtocol13._compressor": "None unless permessage-deflate was negotiated for this connection",
    "IOStream._write_buffer": "the bytes queued in the stream and not yet sent (its len())",
    "type(WebSocketProtocol.stream) is IOStream": "a plain TCP stream: send() may bypass it (TLS may not)",
    "WebSocketProtocol._abort()": "tear the connection down at once, without a closing handshake",
}


def missing_private_parts(conn: tornado.websocket.WebSocketProtocol) -> list[str]:
    """The ``PRIVATE_PARTS`` an open, uncompressed, plain-TCP connection lacks (empty when all are there)."""
    missing = []
    if not hasattr(conn, "_compressor"):
        missing.append("WebSocketProtocol13._compressor")
    stream = getattr(conn, "stream", None)
    buffer = getattr(stream, "_write_buffer", None)
    if not isinstance(buffer, Sized):
        missing.append("IOStream._write_buffer")
    if type(stream) is not tornado.iostream.IOStream:
        missing.append("type(WebSocketProtocol.stream) is IOStream")
    if not callable(getattr(conn, "_abort", None)):
        missing.append("WebSocketProtocol._abort()")
    return missing


class DirectSender:
    """One upgraded connection's view for the fan-out: try a direct ``send()``, count what waits, abort."""

    __slots__ = ("_buffer", "_conn", "_socket", "is_compressed")

    def __init__(self, conn: tornado.websocket.WebSocketProtocol) -> None:
        self._conn = conn
        self.is_compressed: bool = getattr(conn, "_compressor", None) is not None
        stream = getattr(conn, "stream", None)
        # Cached once: the buffer object lives as long as the stream (cleared, not replaced, on close).
        self._buffer: Sized | None = getattr(stream, "_write_buffer", None)
        plain_tcp = type(stream) is tornado.iostream.IOStream
        direct = plain_tcp and not self.is_compressed and self._buffer is not None
        self._socket: socket.socket | None = stream.socket if direct and stream is not None else None

    @property
    def is_direct(self) -> bool:
        """True when frames can bypass the stream (plain TCP, uncompressed, internals as expected)."""
        return self._socket is not None

    def cap_kernel_buffer(self, size: int) -> None:
        """Set the kernel send buffer (SO_SNDBUF), so that a stalled client's backlog shows in the stream."""
        sock = getattr(getattr(self._conn, "stream", None), "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def try_send(self, frame: bytes) -> bytes:
        """Give ``frame`` to the kernel if nothing is queued; return what is left for the stream to write."""
        sock, buffer = self._socket, self._buffer
        if sock is None or buffer is None or len(buffer):
            return frame
        try:
            sent = sock.send(frame)
        except OSError:  # would block, or the connection failed: the stream's write reports it
            return frame
        return frame[sent:] if sent else frame

    def unsent_bytes(self) -> int:
        """Bytes queued in the stream, not yet taken by the kernel."""
        buffer = self._buffer
        return len(buffer) if buffer is not None else 0

    def abort(self) -> None:
        """Drop the connection now (after a write failed in a way Tornado did not expect)."""
        abort = getattr(self._conn, "_abort", None)
        if callable(abort):
            abort()
        else:
            self._conn.close()
