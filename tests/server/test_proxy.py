"""handlers/proxy.py: what a trusted reverse proxy's headers mean, and that only they count with TRUST_PROXY.

The parsing rules as tables, then a real app on a loopback port: the login limiter keys on the
X-Forwarded-For hop the proxy appended (never on X-Real-Ip or what the client put first), the origin check
uses X-Forwarded-Host, and without TRUST_PROXY none of these headers count. tests/proxy runs the same
behind a real nginx and Caddy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from handlers.proxy import forwarded_client, forwarded_scheme, origin_allowed, origin_matches_host, valid_host
from tests.server.conftest import API_KEY, PASSWORD, Igloo, read_frame


@pytest.mark.parametrize(("header", "trusted", "client"), [
    (None, frozenset(), "10.0.0.9"),
    ("", frozenset(), "10.0.0.9"),
    ("203.0.113.5", frozenset(), "203.0.113.5"),
    ("198.51.100.1, 203.0.113.5", frozenset(), "203.0.113.5"),  # the client wrote the first entry
    (" 198.51.100.1 ,203.0.113.5 ", frozenset(), "203.0.113.5"),
    ("198.51.100.1, 203.0.113.5", frozenset({"203.0.113.5"}), "198.51.100.1"),  # one more trusted hop
    ("198.51.100.1, not-an-address", frozenset(), "10.0.0.9"),  # a proxy never writes that: use the peer
    ("2001:db8::1", frozenset(), "2001:db8::1"),
])
def test_forwarded_client(header: str | None, trusted: frozenset[str], client: str) -> None:
    assert forwarded_client("10.0.0.9", header, trusted) == client


@pytest.mark.parametrize(("header", "scheme"), [
    ("https", "https"), ("HTTP", "http"), ("http, https", "https"), ("ftp", None), ("", None), (None, None),
])
def test_forwarded_scheme(header: str | None, scheme: str | None) -> None:
    assert forwarded_scheme(header) == scheme


@pytest.mark.parametrize(("value", "valid"), [
    ("igloo.example.com", "igloo.example.com"), ("Igloo.Example.com:8443", "igloo.example.com:8443"),
    ("127.0.0.1:8002", "127.0.0.1:8002"), ("[::1]:8002", "[::1]:8002"), ("[::1]", "[::1]"),
    ("bad host", None), ("a/b", None), ("[nothex]:1", None), ("[::1]x", None), ("x" * 300, None), ("", None),
])
def test_valid_host(value: str, valid: str | None) -> None:
    assert valid_host(value) == valid


@pytest.mark.parametrize(("origin", "host", "same"), [
    ("http://127.0.0.1:8002", "127.0.0.1:8002", True),
    ("http://127.0.0.1:9999", "127.0.0.1:8002", False),
    ("https://igloo.example.com", "igloo.example.com", True),
    ("https://igloo.example.com", "igloo.example.com:443", True),
    ("https://igloo.example.com:8443", "igloo.example.com", True),  # nginx's $host carries no port
    ("https://evil.example", "igloo.example.com", False),
    ("https://igloo.example.com.evil.example", "igloo.example.com", False),
    ("null", "igloo.example.com", False),
    ("file://igloo.example.com", "igloo.example.com", False),
])
def test_origin_matches_host(origin: str, host: str, same: bool) -> None:
    assert origin_matches_host(origin, host) is same


def test_origin_allowed_lists() -> None:
    request: Any = type("R", (), {"headers": {}, "host": "igloo.example.com"})()
    assert origin_allowed(None, request, False, ())  # not a browser
    assert origin_allowed("https://ui.example", request, False, ("https://ui.example",))
    assert origin_allowed("https://any.example", request, False, ("*",))
    assert not origin_allowed("https://ui.example", request, False, ())


async def login(igloo: Igloo, headers: dict[str, str], password: str = "wrong password") -> int:
    resp = await igloo.fetch("/api/auth/login", method="POST", body=json.dumps({"username": "alice",
                                                                               "password": password}),
                             headers={"Content-Type": "application/json", **headers})
    return resp.code


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "RATE_LIMIT_LOGIN_MAX": "2"}])
async def test_limiter_counts_the_hop_the_proxy_appended(igloo: Igloo) -> None:
    igloo.add_user()
    client_a = {"X-Forwarded-For": "198.51.100.1"}
    assert [await login(igloo, client_a) for _ in range(2)] == [401, 401]
    assert await login(igloo, client_a) == 429
    # What a client writes before the proxy's entry, or in X-Real-Ip, does not make it someone else.
    spoofed = {"X-Forwarded-For": "192.0.2.77, 198.51.100.1", "X-Real-Ip": "192.0.2.78"}
    assert await login(igloo, spoofed) == 429
    # Another client (another appended hop) is not limited, even when it claims client A's address first.
    assert await login(igloo, {"X-Forwarded-For": "198.51.100.1, 198.51.100.2"}) == 401
    assert await login(igloo, {"X-Forwarded-For": "198.51.100.3"}, PASSWORD) == 200


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_LOGIN_MAX": "2"}])
async def test_without_trust_proxy_forwarded_headers_count_for_nothing(igloo: Igloo) -> None:
    igloo.add_user()
    assert await login(igloo, {"X-Forwarded-For": "198.51.100.1"}) == 401
    assert await login(igloo, {"X-Forwarded-For": "198.51.100.2"}) == 401
    assert await login(igloo, {"X-Forwarded-For": "198.51.100.3", "X-Real-Ip": "198.51.100.4"}) == 429


async def stream(igloo: Igloo, headers: dict[str, str]) -> tornado.websocket.WebSocketClientConnection:
    request = tornado.httpclient.HTTPRequest(igloo.ws_url(), headers={"X-API-Key": API_KEY, **headers})
    return await tornado.websocket.websocket_connect(request)


PROXIED_PAGE = {"Origin": "https://igloo.example.com", "X-Forwarded-Host": "igloo.example.com",
                "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "ALLOWED_HOSTS": "igloo.example.com"}])
async def test_origin_check_uses_the_forwarded_host(igloo: Igloo) -> None:
    # The proxy talks to 127.0.0.1:PORT (its Host), the page is https://igloo.example.com.
    ws = await stream(igloo, PROXIED_PAGE)
    assert (await read_frame(ws))["message"] == "Connected to event stream"  # type: ignore[index]
    ws.close()
    foreign = await stream(igloo, {**PROXIED_PAGE, "Origin": "https://evil.example"})
    assert await read_frame(foreign) is None and foreign.close_code == 1008


async def test_forwarded_host_is_not_believed_without_trust_proxy(igloo: Igloo) -> None:
    ws = await stream(igloo, PROXIED_PAGE)
    assert await read_frame(ws) is None and ws.close_code == 1008
