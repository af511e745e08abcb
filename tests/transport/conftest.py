"""Relays for the transport tests: the real embedded relay, and a hostile one, on loopback ports."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado import websocket

from handlers import relay
from node.transport.pool import RelayPool
from relay import RelayState
from tests.relay.helpers import make_event


class LocalServer:
    """A Tornado app served on a fixed loopback port that can be stopped and started again."""

    def __init__(self, app_factory: Any, port: int = 0) -> None:
        self.app_factory = app_factory
        self.port = port
        self.server: tornado.httpserver.HTTPServer | None = None
        self.app: tornado.web.Application | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> LocalServer:
        sockets = tornado.netutil.bind_sockets(self.port, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.app = self.app_factory()
        self.server = tornado.httpserver.HTTPServer(self.app)
        self.server.add_sockets(sockets)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            # Upgraded sockets are detached from the HTTP server: close them as a dying process would.
            assert self.app is not None
            hub = self.app.settings.get("relay")
            if hub is not None:
                hub.close_all()
            for handler in list(self.app.settings.get("sockets", ())):
                handler.close(1001)
            await self.server.close_all_connections()
            self.server = None


def relay_app() -> tornado.web.Application:
    """The embedded relay, with a fresh hub."""
    return tornado.web.Application(relay.ROUTES, relay=RelayState())


class HostileRelay(websocket.WebSocketHandler):
    """Misbehaves according to the application's ``mode`` setting."""

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.application.settings.setdefault("received", []).append("open")
        self.application.settings.setdefault("sockets", set()).add(self)
        if self.settings["mode"] == "abrupt":
            self.close(1011, "bye")

    def on_close(self) -> None:
        self.application.settings.setdefault("sockets", set()).discard(self)

    def on_message(self, message: str | bytes) -> None:
        received = self.application.settings.setdefault("received", [])
        received.append(message)
        mode = self.settings["mode"]
        msg = json.loads(message)
        if mode == "garbage" and msg[0] == "REQ":
            sub_id = msg[1]
            genuine = self.settings.get("genuine")
            frames: list[Any] = [
                "not json",
                "[]",
                "{}",
                '["EVENT"]',
                json.dumps(["EVENT", sub_id, {"id": 1}]),
                json.dumps(["OK", "zz", True, ""]),
                json.dumps(["EOSE"]),
                json.dumps(["AUTH", "challenge"]),
                json.dumps(["NOTICE", "hello"]),
                json.dumps(["CLOSED", "unknown-sub", "whatever"]),
                b"\x00\x01binary",
                "[" * 10_000,
            ]
            if genuine is not None:
                forged = dict(genuine, content="forged")  # same id, wrong content
                bad_sig = dict(genuine, sig="0" * 128)
                frames += [json.dumps(["EVENT", sub_id, forged]), json.dumps(["EVENT", sub_id, bad_sig])]
            # Valid signature, but not what was asked for.
            unasked = make_event(3, kind=4242, content="unasked").to_json()
            frames.append(json.dumps(["EVENT", sub_id, unasked]))
            frames.append(json.dumps(["EVENT", "not-our-sub", make_event(3, content="stray").to_json()]))
            frames.append(json.dumps(["EOSE", sub_id]))  # the one proper frame: tests wait for it
            for frame in frames:
                self.write_message(frame, binary=isinstance(frame, bytes))
        elif mode == "huge" and msg[0] == "REQ":
            self.write_message("[" + " " * (600 * 1024) + "]")
        elif mode == "refuse" and msg[0] == "EVENT":
            self.write_message(json.dumps(["OK", msg[1]["id"], False, "blocked: no"]))
        # "silent": never answers anything


def hostile_app(mode: str, **settings: Any) -> Any:
    return lambda: tornado.web.Application([(r"/", HostileRelay)], mode=mode, **settings)


@pytest.fixture
def servers(io_loop: Any) -> Iterator[list[LocalServer]]:
    """Servers started by a test, stopped at the end."""
    started: list[LocalServer] = []
    yield started
    for server in started:
        io_loop.run_sync(server.stop, timeout=5)


@pytest.fixture
def pools(io_loop: Any) -> Iterator[list[RelayPool]]:
    """Pools made by a test, closed at the end."""
    made: list[RelayPool] = []
    yield made
    for pool in made:
        io_loop.run_sync(pool.close, timeout=5)


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/"
