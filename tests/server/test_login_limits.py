"""Issue 12, item 5: the login limiter. An attempt counts when it starts (concurrent guesses cannot all be
evaluated while the first wait for bcrypt), behind a proxy only the address the proxy appended counts (a
client's own X-Real-Ip or X-Forwarded-For entries change nothing, for logins and for the event stream's
per-address cap), and the limit is keyed on the username too (one account's guesser does not lock the
others out of the same address)."""

from __future__ import annotations

import asyncio
import json

import pytest
import tornado.httpclient

from handlers.auth import ADDRESS_FACTOR, LoginLimiter
from tests.clock import ManualClock
from tests.server.conftest import API_KEY, PASSWORD, Igloo, read_frame

JSON = {"Content-Type": "application/json"}


async def login(igloo: Igloo, username: str, password: str, **headers: str) -> int:
    resp = await igloo.fetch("/api/auth/login", method="POST", headers={**JSON, **headers},
                             body=json.dumps({"username": username, "password": password}))
    return resp.code


async def test_concurrent_guesses_are_counted_when_they_start(igloo: Igloo) -> None:
    igloo.add_user()
    verified = 0
    real_verify = igloo.users.verify

    async def counting_verify(username: str, password: str) -> object:
        nonlocal verified
        verified += 1
        return await real_verify(username, password)

    igloo.users.verify = counting_verify  # type: ignore[method-assign]
    codes = await asyncio.gather(*(login(igloo, "alice", f"wrong {n}") for n in range(40)))
    assert sorted(codes) == [401] * 5 + [429] * 35  # RATE_LIMIT_LOGIN_MAX = 5
    assert verified == 5


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true"}])
async def test_behind_a_proxy_only_the_appended_address_counts(igloo: Igloo) -> None:
    igloo.add_user()
    for n in range(5):  # the client rotates what it may write; the proxy appends 192.0.2.10
        headers = {"X-Real-Ip": f"198.51.100.{n}", "X-Forwarded-For": f"203.0.113.{n}, 192.0.2.10"}
        assert await login(igloo, "alice", "wrong", **headers) == 401
    rotated = {"X-Real-Ip": "198.51.100.99", "X-Forwarded-For": "203.0.113.99, 192.0.2.10"}
    assert await login(igloo, "alice", PASSWORD, **rotated) == 429
    # Another client behind the same proxy is someone else.
    assert await login(igloo, "alice", PASSWORD, **{"X-Forwarded-For": "192.0.2.11"}) == 200


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "WS_MAX_PER_IP": "2"}])
async def test_the_event_stream_cap_ignores_client_sent_addresses(igloo: Igloo) -> None:
    sockets = []
    for n in range(2):
        ws = await igloo.ws(headers={"X-API-Key": API_KEY, "X-Real-Ip": f"198.51.100.{n}",
                                     "X-Forwarded-For": "192.0.2.20"})
        assert (await read_frame(ws))["type"] == "system"
        sockets.append(ws)
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await igloo.ws(headers={"X-API-Key": API_KEY, "X-Real-Ip": "198.51.100.77",
                                "X-Forwarded-For": "192.0.2.20"})
    assert refused.value.code == 429
    for ws in sockets:
        ws.close()


async def test_one_account_guessed_does_not_lock_out_the_others(igloo: Igloo) -> None:
    igloo.add_user("alice")
    igloo.add_user("bob")
    for _ in range(5):
        assert await login(igloo, "alice", "wrong") == 401
    assert await login(igloo, "alice", PASSWORD) == 429
    assert await login(igloo, "bob", PASSWORD) == 200  # same address, other account


async def test_one_address_cannot_spray_usernames_without_end(igloo: Igloo) -> None:
    clock = ManualClock()
    igloo.app.settings["login_limiter"] = LoginLimiter(2, 900, clock=clock)
    codes = [await login(igloo, f"user{n}", "wrong") for n in range(2 * ADDRESS_FACTOR + 3)]
    assert codes.count(401) == 2 * ADDRESS_FACTOR and codes[-3:] == [429] * 3


async def test_failed_logins_publish_no_username(igloo: Igloo) -> None:
    igloo.add_user()
    assert await login(igloo, "alice", "my-real-password-in-the-name-field") == 401
    assert await login(igloo, "my-real-password-typed-as-name", "x") == 401
    stored = b"".join(e.payload for e in igloo.hub.ring.recent(100))
    assert b"Login failed" in stored and b"my-real-password" not in stored and b"alice" not in stored
    igloo.hub.make_durable()
    rows = igloo.db.query_all("SELECT frame FROM events")
    assert rows and all("my-real-password" not in str(row[0]) for row in rows)


def test_the_limiter_is_bounded_under_a_spray() -> None:
    clock = ManualClock()
    limiter = LoginLimiter(5, 900, clock=clock, max_keys=1000)
    for n in range(5000):
        limiter.begin(f"10.0.{n >> 8}.{n & 255}", f"user{n}")
    assert len(limiter) <= 1000
    assert limiter.begin("192.0.2.1", "admin") > 0  # no room: refused until the oldest entries expire
    clock.advance(901)
    assert limiter.begin("192.0.2.1", "admin") == 0 and len(limiter) <= 1000
