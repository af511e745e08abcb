"""One explicit case per bug the fuzzers found, so each fix stays proven in the normal suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
import tornado.web

from tests.fuzz.conftest import (
    API_KEY,
    ErrorTrap,
    World,
    build_request,
    make_world,
    raw_http,
    run,
    start_world,
    stop_world,
)

JSON_HEADERS = [("X-API-Key", API_KEY.encode()), ("Content-Type", b"application/json")]


@pytest.fixture
def world(io_loop: tornado.ioloop.IOLoop, tmp_path: Path) -> Iterator[World]:
    """A running node behind the app."""
    w = make_world("running", tmp_path)
    run(io_loop, lambda: start_world(w))
    yield w
    run(io_loop, lambda: stop_world(w))


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    """The application ``http_server`` serves."""
    return world.app


async def post(port: int, path: str, body: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
    request = build_request("POST", path, JSON_HEADERS if headers is None else headers, body)
    return await raw_http(port, request)


async def test_deeply_nested_json_body_is_a_400(
    http_server: Any, http_server_port: tuple[Any, int], errors: ErrorTrap
) -> None:
    """``[[[…]]]`` nested past Python's recursion limit made json.loads raise RecursionError: a 500."""
    port = http_server_port[1]
    for path in ("/api/auth/login", "/api/sign", "/api/env"):
        response = await post(port, path, b"[" * 5000 + b"]" * 5000)
        assert response.status == 400, (path, response.status)
        assert json.loads(response.body) == {"error": "Invalid JSON body"}
    errors.check()
