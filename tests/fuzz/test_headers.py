"""Fuzz credentials and other request headers: session cookies (garbage and tampered signed values),
X-API-Key, Authorization (Bearer / Basic with malformed or non-ASCII base64), X-Session-ID, Origin,
Sec-WebSocket-Protocol, X-Forwarded-* (behind a trusting proxy setup), odd query strings. The node
manager has no credentials, so an authenticated node route answers 503.

Header values are raw bytes (any byte but CR/LF), sent with a raw HTTP client. Every answer is one of
200/101/3xx/400/401/403/404/405/415/421/426/429/503 (never 500), and no unhandled exception is logged.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web
from hypothesis import given
from hypothesis import strategies as st

from handlers.connections import build_http_server
from tests.fuzz.conftest import (
    API_KEY,
    BASIC_PASS,
    BASIC_USER,
    ErrorTrap,
    RawResponse,
    World,
    build_request,
    fuzz_settings,
    make_world,
    run,
    scales,
)
from tests.fuzz.strategies import text

ALLOWED = {101, 200, 204, 301, 302, 303, 304, 307, 400, 401, 403, 404, 405, 411, 415, 421, 426, 429, 431, 503}
TARGETS = [("GET", "/api/status"), ("GET", "/api/auth/status"), ("GET", "/api/peers"), ("GET", "/api/env"),
           ("GET", "/api/events"), ("GET", "/dashboard"), ("GET", "/login"), ("POST", "/api/auth/logout"),
           ("POST", "/logout"), ("POST", "/api/sign"), ("GET", "/")]

header_bytes = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    text.map(lambda s: s.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")),
    st.integers(1_000, 20_000).map(lambda n: b"A" * n),
    st.sampled_from([b"", b" ", b"\x00", b"\xff\xfe", b"\xe9", API_KEY.encode(), API_KEY.encode() + b"\xe9"]),
)


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


authorization = st.one_of(
    st.builds(lambda v: b"Bearer " + v, header_bytes),
    st.builds(lambda v: b"Basic " + v, header_bytes),
    st.builds(basic, st.sampled_from([BASIC_USER.encode(), b"", b"\xe9", b"\xff"]),
              st.sampled_from([BASIC_PASS.encode(), b"", b":", b"\xc3\x28", b"\xe9" * 3])),
    st.sampled_from([b"Basic", b"Basic ", b"Basic =", b"Basic ====", b"Basic \xe9\xe9==", b"Bearer",
                     b"bearer " + API_KEY.encode(), b"BASIC " + base64.b64encode(b"x:y"), b"Digest x"]),
    header_bytes,
)


def tampered_cookies(world: World) -> st.SearchStrategy[bytes]:
    """Signed session cookies with one character changed, cut, or re-signed garbage; plus junk."""
    secret = world.app.settings["cookie_secret"]
    good = tornado.web.create_signed_value(secret, "igloo_session", "not-a-real-session")

    def flip(pos: int, ch: int) -> bytes:
        raw = bytearray(good)
        raw[pos % len(raw)] = 33 + ch % 90
        return bytes(raw)

    return st.one_of(
        st.builds(flip, st.integers(0, len(good)), st.integers(0, 200)),
        st.integers(0, len(good)).map(lambda k: good[:k]),
        st.builds(lambda v: tornado.web.create_signed_value(secret, "igloo_session", v), header_bytes),
        st.sampled_from([b"2|", b"2|1:0|10:0|13:igloo_session|0:|", b"1|x|y", good.replace(b"2|", b"1|"),
                         b'"' + good + b'"']),
        header_bytes,
    )


def headers_for(world: World) -> st.SearchStrategy[list[tuple[str, bytes]]]:
    """A random subset of credential and proxy headers with hostile values."""
    cookie = st.builds(lambda v, extra: b"igloo_session=" + v + extra, tampered_cookies(world),
                       st.sampled_from([b"", b"; _xsrf=2|x|y|z", b"; a=b; ;;", b"; \xe9=\xff"]))
    fields: dict[str, st.SearchStrategy[bytes]] = {
        "Cookie": st.one_of(cookie, header_bytes),
        "X-API-Key": header_bytes,
        "Authorization": authorization,
        "X-Session-ID": header_bytes,
        "Origin": st.one_of(header_bytes, st.sampled_from([b"null", b"http://evil.example", b"http://127.0.0.1",
                                                         b"http://127.0.0.1:1/", b"file://"])),
        "Sec-WebSocket-Protocol": st.one_of(
            header_bytes, st.lists(st.sampled_from([b"apikey." + API_KEY.encode(), b"apikey.x", b"bearer.",
                                                    b"session.\xe9", b"igloo.v1", b"", b"a" * 100]),
                                   max_size=4).map(lambda ps: b", ".join(ps))),
        "X-Forwarded-For": st.one_of(header_bytes, st.sampled_from(
            [b"1.2.3.4", b"::1, 10.0.0.1", b"999.1.1.1", b"unknown", b"1.2.3.4, \xe9"])),
        "X-Real-Ip": header_bytes,
        "X-Forwarded-Host": st.one_of(header_bytes, st.sampled_from(
            [b"127.0.0.1", b"rebind.example", b"[::1]:80", b"a, localhost", b"", b":", b"[", b"\xe9"])),
        "X-Forwarded-Proto": st.one_of(header_bytes,
                                       st.sampled_from([b"https", b"http", b"wss", b"HTTPS, http"])),
        "X-XSRFToken": header_bytes,
        "Content-Type": st.sampled_from([b"application/json", b"text/plain", b"\xe9"]),
    }
    return st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=5).flatmap(
        lambda names: st.tuples(*(st.tuples(st.just(n), fields[n]) for n in names)).map(list))


def _q(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"))


queries = st.one_of(
    st.just(""),
    text.map(lambda s: "?apiKey=" + _q(s)),
    text.map(lambda s: "?sessionId=" + _q(s)),
    text.map(lambda s: "?since=" + _q(s) + "&apiKey=" + API_KEY),
    st.sampled_from(["?%ff=%fe", "?since=%C2%B2&apiKey=" + API_KEY, "?next=//evil", "?a=" + "b" * 5000]),
)
upgrade = [("Upgrade", b"websocket"), ("Connection", b"Upgrade"), ("Sec-WebSocket-Version", b"13"),
           ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==")]


async def send(port: int, request: bytes) -> RawResponse:
    """Raw request; the answer is read up to its Content-Length (an upgrade may keep the socket open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await asyncio.wait_for(reader.read(65536), 20)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = await asyncio.wait_for(reader.read(65536), 20)
            if not chunk:
                break
            body += chunk
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    return RawResponse(status, {}, body)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world("idle", tmp_path, trust_proxy=True)


@pytest.fixture
def port(world: World, io_loop: tornado.ioloop.IOLoop) -> Iterator[int]:
    """The app behind Igloo's HTTP server, trusting X-Forwarded-* (TRUST_PROXY=true)."""
    sock, number = tornado.testing.bind_unused_port()
    server = build_http_server(world.app, world.config)
    server.add_sockets([sock])
    yield number
    server.stop()
    run(io_loop, server.close_all_connections)


@pytest.mark.parametrize("examples", scales(60))
def test_headers_never_break_auth(
    world: World, port: int, io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap, examples: int
) -> None:
    """Hostile headers to pages, APIs and the event stream: 4xx/101/2xx/3xx, never a 500."""

    @fuzz_settings(examples)
    @given(target=st.sampled_from(TARGETS), headers=headers_for(world), ws=st.booleans(), query=queries)
    def case(target: tuple[str, str], headers: list[tuple[str, bytes]], ws: bool, query: str) -> None:
        method, path = target
        all_headers = headers + (upgrade if ws and method == "GET" else [])
        response = run(io_loop, lambda: send(port, build_request(method, path + query, all_headers, b"")))
        errors.check()
        assert response.status in ALLOWED, (response.status, response.body[:300])

    case()
