"""Fuzz the web server's limits (issue 12): random sequences of requests from random client addresses (behind
a trusting proxy: the last X-Forwarded-For address, whatever else the client writes), with right and wrong
credentials, logins, limited routes, foreign Host names and lying Content-Lengths; and random opens and
closes of half-sent connections from three addresses.

Must hold, with a frozen clock so no bucket refills: never a 500 or an unhandled exception; per client
address (IPv6 by /64) no more wrong API keys / Bearer / Basic answered 401 than RATE_LIMIT_LOGIN_MAX, and a
right key refused once they are spent; no more authenticated API requests, signatures, recoveries or env
writes let through than their limits; no more failed logins per address and username since its last
success than RATE_LIMIT_LOGIN_MAX; a foreign Host always 421, a body over 64 KiB always 413; the limiters'
tables within their bounds. For connections: the server's per-address count equals the open half-sent
connections, a request is answered unless its address (or the server) is at its cap, then 429 (503), and
nothing is left counted once all are closed.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
import tornado.testing
from hypothesis import given
from hypothesis import strategies as st

from handlers.auth import ADDRESS_FACTOR, LoginLimiter
from handlers.connections import IglooHTTPServer, build_http_server
from handlers.gate import MAX_BODY
from handlers.throttle import (
    API,
    CREDENTIALS,
    ENV_WRITE,
    RECOVERY,
    SIGN,
    ClientThrottle,
    Throttles,
)
from relay import address_key
from tests.clock import ManualClock
from tests.fuzz.conftest import (
    API_KEY,
    BASIC_USER,
    PASSWORD,
    USERNAME,
    ErrorTrap,
    World,
    build_request,
    fuzz_settings,
    make_world,
    raw_http,
    run,
    scales,
)

LOGIN_MAX, API_MAX, RECOVERY_MAX, ENV_MAX = 3, 6, 2, 2
MAX_CLIENTS, MAX_KEYS = 6, 12
ADDRESSES = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.4", "203.0.113.5", "10.0.0.6",
             "2001:db8:1::1", "2001:db8:1::ffff", "2001:db8:2::1", "::ffff:192.0.2.1"]
SPOOFED = st.sampled_from([b"", b"1.2.3.4", b"::1", b"127.0.0.1", b"\xe9", b"unknown", b"1.1.1.1, 2.2.2.2"])
WRONG = {
    "api-key": ("X-API-Key", b"wrong-key-000000000000"),
    "bearer": ("Authorization", b"Bearer wrong-key-1"),
    "basic": ("Authorization", b"Basic " + base64.b64encode(BASIC_USER.encode() + b":wrong-pass")),
}
RIGHT = ("X-API-Key", API_KEY.encode())
JSON_TYPE = ("Content-Type", b"application/json")
LIMITED_ROUTES = {  # right-key requests: (method, path, body, their own limit)
    "status": ("GET", "/api/auth/status", b"", None),
    "sign": ("POST", "/api/sign", b'{"message":"' + b"11" * 32 + b'"}', SIGN),
    "cipher": ("POST", "/api/nip44/encrypt", b'{"content":"x","peer_pubkey":"' + b"22" * 32 + b'"}', SIGN),
    "recover": ("POST", "/api/recover", b'{"groupCredential":"x","shareCredentials":["y"]}', RECOVERY),
    "env": ("POST", "/api/env", b'{"RELAYS":[]}', ENV_WRITE),
}
OWN_LIMITS = {SIGN: API_MAX, RECOVERY: RECOVERY_MAX, ENV_WRITE: ENV_MAX}
ALLOWED_STATUS = {200, 400, 401, 403, 404, 409, 413, 415, 421, 429, 503}

step = st.one_of(
    st.tuples(st.just("guess"), st.sampled_from(sorted(WRONG))),
    st.tuples(st.just("right"), st.sampled_from(sorted(LIMITED_ROUTES))),
    st.tuples(st.just("login"), st.sampled_from([USERNAME, "ALICE", "bob", "x" * 64]), st.booleans()),
    st.tuples(st.just("host"),
              st.sampled_from(["rebind.example", "127.0.0.1.nip.io", "localhost.evil", "LOCALHOST.evil:80"])),
    st.tuples(st.just("big"), st.integers(MAX_BODY + 1, 10**12)),
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world("idle", tmp_path, trust_proxy=True, rate_limit_enabled=True, rate_limit_max=API_MAX,
                      rate_limit_login_max=LOGIN_MAX, rate_limit_recovery_max=RECOVERY_MAX,
                      rate_limit_env_write_max=ENV_MAX, http_max_per_ip=1000)


@pytest.fixture
def server(world: World, io_loop: tornado.ioloop.IOLoop) -> Iterator[tuple[IglooHTTPServer, int]]:
    sock, port = tornado.testing.bind_unused_port()
    http = build_http_server(world.app, world.config)
    http.add_sockets([sock])
    yield http, port
    http.stop()
    run(io_loop, http.close_all_connections)


def fresh_limits(world: World) -> tuple[Throttles, LoginLimiter]:
    """New limits on a frozen clock, with small tables, for one example."""
    clock = ManualClock()
    throttles = Throttles.from_config(world.config, clock=clock)
    for name, throttle in list(throttles.by_name.items()):
        throttles.by_name[name] = ClientThrottle(throttle.limit, clock, max_clients=MAX_CLIENTS)
    limiter = LoginLimiter(LOGIN_MAX, 900, clock=clock, max_keys=MAX_KEYS)
    world.app.settings["throttles"] = throttles
    world.app.settings["login_limiter"] = limiter
    return throttles, limiter


def request_for(action: tuple[Any, ...], address: str, spoofed: bytes) -> bytes:
    proxy = [("X-Forwarded-For", spoofed + b", " + address.encode() if spoofed else address.encode()),
             ("X-Real-Ip", spoofed or b"203.0.113.250")]
    kind = action[0]
    if kind == "guess":
        return build_request("GET", "/api/peers", [*proxy, WRONG[action[1]]], b"")
    if kind == "right":
        method, path, body, _ = LIMITED_ROUTES[action[1]]
        return build_request(method, path, [*proxy, RIGHT, JSON_TYPE], body)
    if kind == "login":
        body = json.dumps({"username": action[1], "password": PASSWORD if action[2] else "wrong"}).encode()
        return build_request("POST", "/api/auth/login", [*proxy, JSON_TYPE], body)
    if kind == "host":
        return build_request("GET", "/api/status", [*proxy, ("X-Forwarded-Host", action[1].encode())], b"")
    head = (f"POST /api/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {action[1]}\r\n"
            f"Connection: close\r\n\r\n").encode()
    return head + b"{" * 100  # a start, never the whole announced body


class Model:
    """What the limits allow per client address, counted from the answers."""

    def __init__(self) -> None:
        self.guesses_answered: Counter[str] = Counter()
        self.passed: Counter[tuple[str, str]] = Counter()
        self.failed_logins: Counter[tuple[str, str]] = Counter()
        self.login_attempts: Counter[str] = Counter()

    def check(self, action: tuple[Any, ...], key: str, status: int) -> None:
        assert status in ALLOWED_STATUS, (action, status)
        kind = action[0]
        if kind == "guess":
            assert status in (401, 429), (action, status)
            if status == 401:
                self.guesses_answered[key] += 1
            assert self.guesses_answered[key] <= LOGIN_MAX
        elif kind == "right":
            if self.guesses_answered[key] >= LOGIN_MAX:
                assert status == 429, "a right key went through after the guesses were spent"
            if status != 429:
                assert status != 401, action
                self.passed[key, API] += 1
                own = LIMITED_ROUTES[action[1]][3]
                if own is not None:
                    self.passed[key, own] += 1
                    assert self.passed[key, own] <= OWN_LIMITS[own], (action, key)
                assert self.passed[key, API] <= API_MAX, (action, key)
        elif kind == "login":
            pair = (key, action[1].lower())
            if status == 200:
                self.failed_logins[pair] = 0
            elif status == 401:
                self.failed_logins[pair] += 1
                self.login_attempts[key] += 1
            else:
                assert status == 429, (action, status)
            assert self.failed_logins[pair] <= LOGIN_MAX
            assert self.login_attempts[key] <= ADDRESS_FACTOR * LOGIN_MAX
        elif kind == "host":
            assert status == 421, (action, status)
        else:
            assert status == 413, (action, status)


@pytest.mark.parametrize("examples", scales(25))
def test_request_limits_hold(world: World, server: tuple[IglooHTTPServer, int],
                             io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap, examples: int) -> None:
    port = server[1]

    @fuzz_settings(examples)
    @given(steps=st.lists(st.tuples(step, st.sampled_from(ADDRESSES), SPOOFED), min_size=1, max_size=25))
    def case(steps: list[tuple[tuple[Any, ...], str, bytes]]) -> None:
        throttles, limiter = fresh_limits(world)
        model = Model()
        for action, address, spoofed in steps:
            request = request_for(action, address, spoofed)
            response = run(io_loop, lambda request=request: raw_http(port, request))  # type: ignore[misc]
            errors.check()
            model.check(action, address_key(address), response.status)
            assert all(len(t) <= MAX_CLIENTS for t in throttles.by_name.values())
            assert len(limiter) <= MAX_KEYS
            assert len(throttles.by_name[CREDENTIALS]) <= MAX_CLIENTS

    case()
    ok = run(io_loop, lambda: raw_http(port, build_request("GET", "/api/status", [], b"")))
    assert ok.status == 200


# ---------------------------------------------------------------------------------- connection caps

PER_ADDRESS, TOTAL = 2, 5
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
connection_step = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(SOURCES), st.sampled_from([b"", b"GET / HTTP/1.1\r\nHo",
                                                                          b"POST /api/sign HTTP/1.1\r\n"])),
    st.tuples(st.just("close"), st.integers(0, 10), st.just(b"")),
    st.tuples(st.just("request"), st.sampled_from(SOURCES), st.just(b"")),
)


@pytest.fixture
def capped(tmp_path: Path, io_loop: tornado.ioloop.IOLoop) -> Iterator[tuple[IglooHTTPServer, int]]:
    world = make_world("none", tmp_path / "capped", http_max_per_ip=PER_ADDRESS, http_max_connections=TOTAL,
                       http_header_timeout=3600.0)
    sock, port = tornado.testing.bind_unused_port()
    http = build_http_server(world.app, world.config)
    http.add_sockets([sock])
    yield http, port
    http.stop()
    run(io_loop, http.close_all_connections)


async def settle(http: IglooHTTPServer, expected: Counter[str]) -> None:
    """Wait until the server has accepted (or dropped) what the client did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while Counter({k: v for k, v in http.per_address.items() if v}) != +expected:
        assert loop.time() < deadline, (http.per_address, expected)
        await asyncio.sleep(0.005)


async def one_request(port: int, source: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"GET /api/auth/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


@pytest.mark.parametrize("examples", scales(15))
def test_connection_caps_hold(capped: tuple[IglooHTTPServer, int], io_loop: tornado.ioloop.IOLoop,
                              errors: ErrorTrap, examples: int) -> None:
    http, port = capped

    @fuzz_settings(examples)
    @given(steps=st.lists(connection_step, min_size=1, max_size=20))
    def case(steps: list[tuple[str, Any, bytes]]) -> None:
        async def scenario() -> None:
            held: list[tuple[str, asyncio.StreamWriter]] = []
            expected: Counter[str] = Counter()
            try:
                for kind, arg, prefix in steps:
                    if kind == "open":
                        if sum(expected.values()) >= TOTAL or expected[arg] >= PER_ADDRESS:
                            continue  # turned away: covered by "request" below
                        _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(arg, 0))
                        writer.write(prefix)
                        held.append((arg, writer))
                        expected[arg] += 1
                    elif kind == "close" and held:
                        source, writer = held.pop(arg % len(held))
                        writer.close()
                        expected[source] -= 1
                    elif kind == "request":
                        await settle(http, expected)
                        answer = await one_request(port, arg)
                        if sum(expected.values()) >= TOTAL:
                            assert answer.startswith(b"HTTP/1.1 503"), answer[:40]
                        elif expected[arg] >= PER_ADDRESS:
                            assert answer.startswith(b"HTTP/1.1 429"), answer[:40]
                        else:
                            assert answer.startswith(b"HTTP/1.1 200"), answer[:40]
                    await settle(http, expected)
                    assert all(v <= PER_ADDRESS for v in http.per_address.values())
                    assert len(http._connections) <= TOTAL
            finally:
                for _, writer in held:
                    writer.close()
            await settle(http, Counter())

        run(io_loop, scenario, timeout=60)
        errors.check()

    case()
