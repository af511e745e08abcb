"""The HTTP server: time limits, connection caps, and accepting that survives running out of descriptors.

A client that opens connections and sends nothing, or its headers a byte at a time (slowloris), holds a file
descriptor each. ``IglooHTTPServer`` bounds that:

- **Time.** Headers must be complete ``HTTP_HEADER_TIMEOUT`` seconds after a connection opens or its previous
  response ends (Tornado measures the idle keep-alive wait and the header read as one span), and a body must
  arrive within ``HTTP_BODY_TIMEOUT`` seconds; bodies are at most ``MAX_BODY`` bytes.
- **Count.** At most ``HTTP_MAX_PER_IP`` open HTTP connections per address (an IPv6 address by its /64) and
  ``HTTP_MAX_CONNECTIONS`` in all. A connection over either cap is answered 429/503 and closed at once. An
  upgraded WebSocket leaves the count (the event stream and the relay have caps of their own). With
  ``TRUST_PROXY=true`` a proxy's loopback connections are not capped per address: the proxy holds everyone's.
- **Descriptors.** When ``accept()`` fails with EMFILE/ENFILE (or the kernel is out of buffers), Tornado's
  handler would raise, be called again at once and log every failure: a busy loop at 100 % CPU writing a
  line per try. Here accepting pauses for a back-off that doubles up to ``ACCEPT_BACKOFF_MAX`` seconds,
  one warning says so, and one line says when accepting resumed and how often it paused.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.iostream

from config.settings import Settings
from handlers.gate import MAX_BODY
from relay import address_key

log = logging.getLogger("igloo.http")

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_BACKOFF_FIRST = 0.05  # seconds
ACCEPT_BACKOFF_MAX = 1.0
ACCEPTS_PER_TURN = 128  # connections accepted before other work gets the loop (as Tornado's backlog)
LOOPBACK = frozenset({"127.0.0.1", "::1"})
def plain_response(status: str, text: str) -> bytes:
    """A complete ``Connection: close`` response with a text body, sent without Tornado's help."""
    body = text.encode("ascii")
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: 5\r\nConnection: close\r\nServer: Igloo\r\n\r\n")
    return head.encode("ascii") + body


TOO_MANY_FROM_ADDRESS = plain_response("429 Too Many Requests",
                                       "Too many open connections from this address.\n")
SERVER_FULL = plain_response("503 Service Unavailable", "Too many open connections.\n")


class AcceptLoop:
    """Accepts connections on one listening socket; pauses with a back-off when descriptors run out."""

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket, Any], None]) -> None:
        self.sock = sock
        self.on_connection = on_connection
        self.io_loop = tornado.ioloop.IOLoop.current()
        self.backoff = 0.0
        self.pauses = 0  # in the current shortage
        self.paused_total = 0
        self._timer: object | None = None
        self._stopped = False
        self.io_loop.add_handler(sock, self._ready, tornado.ioloop.IOLoop.READ)

    def stop(self) -> None:
        """Stop accepting (the socket is the caller's to close)."""
        self._stopped = True
        if self._timer is not None:
            self.io_loop.remove_timeout(self._timer)
            self._timer = None
        else:
            self.io_loop.remove_handler(self.sock)

    def _ready(self, fd: Any, events: int) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            if self._stopped:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                raise
            if self.pauses:
                log.warning("accepting connections again (paused %d times for lack of file descriptors)",
                            self.pauses)
                self.pauses = 0
                self.backoff = 0.0
            self.on_connection(connection, address)

    def _pause(self, exc: OSError) -> None:
        """Stop watching the socket for a while instead of failing on it again at once."""
        self.backoff = min(ACCEPT_BACKOFF_MAX, self.backoff * 2 or ACCEPT_BACKOFF_FIRST)
        if self.pauses == 0:
            log.warning("cannot accept connections: %s; pausing (up to %.0f s at a time) until descriptors "
                        "are free: raise LimitNOFILE or lower the connection caps", exc.strerror,
                        ACCEPT_BACKOFF_MAX)
        self.pauses += 1
        self.paused_total += 1
        self.io_loop.remove_handler(self.sock)
        self._timer = self.io_loop.call_later(self.backoff, self._resume)

    def _resume(self) -> None:
        self._timer = None
        if not self._stopped:
            self.io_loop.add_handler(self.sock, self._ready, tornado.ioloop.IOLoop.READ)


class IglooHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with the limits of this module (build it with ``build_http_server``)."""

    max_per_address: int
    max_connections: int
    exempt_loopback: bool

    def initialize(self, *args: Any, max_per_address: int = 32, max_connections: int = 1024,
                   exempt_loopback: bool = False, **kwargs: Any) -> None:
        """Tornado's options, plus the caps."""
        super().initialize(*args, **kwargs)
        self.max_per_address = max_per_address
        self.max_connections = max_connections
        self.exempt_loopback = exempt_loopback
        self.per_address: dict[str, int] = {}
        self.accept_loops: dict[int, AcceptLoop] = {}
        self._address_of: dict[object, str | None] = {}

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Accept on ``sockets`` with the back-off of ``AcceptLoop``."""
        for sock in sockets:
            fd = sock.fileno()
            loop = AcceptLoop(sock, self._handle_connection)
            self._sockets[fd] = sock
            self._handlers[fd] = loop.stop
            self.accept_loops[fd] = loop

    def handle_stream(self, stream: tornado.iostream.IOStream, address: Any) -> None:
        """Serve the connection unless a cap is reached (then answer 429/503 and close)."""
        peer = address[0] if isinstance(address, tuple) and address else None
        key = address_key(peer) if peer and not (self.exempt_loopback and peer in LOOPBACK) else None
        if len(self._connections) >= self.max_connections:
            self._turn_away(stream, SERVER_FULL)
            return
        if key is not None and self.per_address.get(key, 0) >= self.max_per_address:
            self._turn_away(stream, TOO_MANY_FROM_ADDRESS)
            return
        before = set(self._connections)
        super().handle_stream(stream, address)
        for conn in self._connections - before:
            self._address_of[conn] = key
        if key is not None:
            self.per_address[key] = self.per_address.get(key, 0) + 1

    def on_close(self, server_conn: object) -> None:
        """Count the connection out (also when it was upgraded to a WebSocket and left HTTP)."""
        super().on_close(server_conn)
        key = self._address_of.pop(server_conn, None)
        if key is not None:
            left = self.per_address.get(key, 0) - 1
            if left > 0:
                self.per_address[key] = left
            else:
                self.per_address.pop(key, None)

    @staticmethod
    def _turn_away(stream: tornado.iostream.IOStream, answer: bytes) -> None:
        """Best-effort answer without waiting for the client, then close."""
        try:
            if stream.socket is not None:
                stream.socket.send(answer)
        except OSError:
            pass
        stream.close()


def build_http_server(app: tornado.web.Application, config: Settings) -> IglooHTTPServer:
    """The HTTP server for ``app`` with the limits from ``config`` (not yet listening)."""
    return IglooHTTPServer(
        app,
        max_body_size=MAX_BODY,
        idle_connection_timeout=config.http_header_timeout,
        body_timeout=config.http_body_timeout,
        max_per_address=config.http_max_per_ip,
        max_connections=config.http_max_connections,
        exempt_loopback=config.trust_proxy,
    )
