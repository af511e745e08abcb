"""Fixtures for the server tests: a real Igloo app on a loopback port, real SQLite under tmp_path."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web
import tornado.websocket

from config.settings import Settings
from handlers.connections import build_http_server
from handlers.event_hub import EventHub
from handlers.events import EventStreamHandler
from node import Clock
from server import build_application, open_state
from store.db import Database
from store.users import UserStore

API_KEY = "test-api-key-0123456789abcdef"
ADMIN_SECRET = "admin-secret-for-tests"
PASSWORD = "correct horse battery"


def base_env(data_dir: Path) -> dict[str, str]:
    return {
        "DATA_DIR": str(data_dir),
        "API_KEY": API_KEY,
        "ADMIN_SECRET": ADMIN_SECRET,
        "WS_PING_INTERVAL": "0",
    }


@dataclass
class Igloo:
    """One running app: its port, shared objects, and small client helpers."""

    port: int
    app: tornado.web.Application
    config: Settings
    db: Database
    hub: EventHub
    server: tornado.httpserver.HTTPServer

    @property
    def users(self) -> UserStore:
        return self.app.settings["users"]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/api/events{query}"

    async def fetch(self, path: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
        kwargs.setdefault("raise_error", False)
        kwargs.setdefault("follow_redirects", False)
        client = tornado.httpclient.AsyncHTTPClient()
        return await client.fetch(self.url(path), **kwargs)

    def add_user(self, name: str = "alice", password: str = PASSWORD) -> None:
        self.users.create_sync(name, password)

    async def login(self, name: str = "alice", password: str = PASSWORD) -> tuple[str, str]:
        """JSON login; returns (Cookie header value, session id)."""
        resp = await self.fetch(
            "/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
            body=json.dumps({"username": name, "password": password}),
        )
        assert resp.code == 200, resp.body
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
        return cookie, json.loads(resp.body)["sessionId"]

    async def ws(self, query: str = "", headers: dict[str, str] | None = None,
                 subprotocols: list[str] | None = None, **kwargs: Any
                 ) -> tornado.websocket.WebSocketClientConnection:
        request = tornado.httpclient.HTTPRequest(self.ws_url(query), headers=headers or {})
        return await tornado.websocket.websocket_connect(request, subprotocols=subprotocols, **kwargs)

    async def ws_key(self, query: str = "", **kwargs: Any) -> tornado.websocket.WebSocketClientConnection:
        return await self.ws(query, headers={"X-API-Key": API_KEY}, **kwargs)


WS = tornado.websocket.WebSocketClientConnection


async def read_frame(ws: WS, timeout: float = 3.0) -> dict[str, Any] | None:
    """The next JSON frame, or None when the socket closed."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)


async def read_until_closed(ws: WS, timeout: float = 5.0) -> list[Any]:
    frames = []
    while True:
        frame = await read_frame(ws, timeout)
        if frame is None:
            return frames
        frames.append(frame)


def start_igloo(env: dict[str, str], sock: socket.socket | None = None, clock: Clock = time.time) -> Igloo:
    config = Settings.from_env(env)
    db, hub = open_state(config, clock=clock)
    app = build_application(config, db, hub, bcrypt_rounds=4)
    server = build_http_server(app, config)
    if sock is None:
        sock, port = tornado.testing.bind_unused_port()
    else:
        port = sock.getsockname()[1]
    server.add_sockets([sock])
    hub.start()
    return Igloo(port, app, config, db, hub, server)


def stop_igloo(igloo: Igloo) -> None:
    igloo.server.stop()
    for sock in igloo.hub.sockets():
        EventStreamHandler.open_sockets.discard(sock)
        if sock.ws_connection is not None:
            sock.ws_connection._abort()
    igloo.hub.stop()
    igloo.db.close()


@pytest.fixture
def overrides() -> dict[str, str]:
    """Environment overrides for one test (parametrize ``overrides`` to change)."""
    return {}


@pytest.fixture
def igloo(io_loop: tornado.ioloop.IOLoop, tmp_path: Path, overrides: dict[str, str]) -> Iterator[Igloo]:
    env = base_env(tmp_path / "data")
    env.update(overrides)
    running = start_igloo(env)
    yield running
    stop_igloo(running)
