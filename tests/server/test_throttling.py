"""Issue 12, item 4: per-client limits where there were none. Wrong API keys, Bearer tokens and Basic
passwords, /api/recover, /api/sign and the NIP-44/NIP-04 routes, /api/env writes and event-stream upgrade
attempts each spend from a token bucket per client address (the ``RATE_LIMIT_*`` settings); over it: 429
with Retry-After, one log line and one event per client and window, and bounded memory under a spray."""

from __future__ import annotations

import base64
import json
import logging
import tracemalloc

import pytest
import tornado.httpclient

from handlers.throttle import CREDENTIALS, ClientThrottle, RateLimit, Throttles
from tests.clock import ManualClock
from tests.server.conftest import API_KEY, Igloo, read_frame

JSON = {"Content-Type": "application/json"}


def manual_throttles(igloo: Igloo) -> ManualClock:
    """Replace the app's limits by the same ones on a clock the test moves."""
    clock = ManualClock()
    igloo.app.settings["throttles"] = Throttles.from_config(igloo.config, clock=clock)
    return clock


def limit_events(igloo: Igloo, limit: str) -> list[dict[str, object]]:
    frames = [json.loads(e.payload) for e in igloo.hub.ring.recent(1000)]
    return [f for f in frames if f["message"] == f"Rate limit reached: {limit}"]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_LOGIN_MAX": "3", "BASIC_AUTH_USER": "ops",
                                        "BASIC_AUTH_PASS": "basic-password-1"}])
@pytest.mark.parametrize("wrong", [{"X-API-Key": "guess-0000000000000000"},
                                   {"Authorization": "Bearer guess-0000000000000000"},
                                   {"Authorization": basic("ops", "guess-0000")}])
async def test_guessed_credentials_are_limited(igloo: Igloo, wrong: dict[str, str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="igloo.http")
    clock = manual_throttles(igloo)
    for _ in range(3):
        assert (await igloo.fetch("/api/peers", headers=wrong)).code == 401
    refused = [await igloo.fetch("/api/peers", headers=wrong) for _ in range(10)]
    assert {r.code for r in refused} == {429} and refused[0].headers["Retry-After"] == "300"
    # No oracle: the right key is refused too until the bucket refills (900 s / 3 per token).
    right = await igloo.fetch("/api/peers", headers={"X-API-Key": API_KEY})
    assert right.code == 429
    assert len(limit_events(igloo, CREDENTIALS)) == 1
    assert sum("rate limit 'credentials' reached" in r.getMessage() for r in caplog.records) == 1
    # A session cookie is not a guess and is not held up.
    igloo.add_user()
    cookie, _ = await igloo.login()
    assert (await igloo.fetch("/api/auth/status", headers={"Cookie": cookie})).code == 200
    clock.advance(300)
    assert (await igloo.fetch("/api/peers", headers={"X-API-Key": API_KEY})).code == 503  # no node: past auth


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_LOGIN_MAX": "2"}])
async def test_guessed_keys_on_the_event_stream_are_limited(igloo: Igloo) -> None:
    manual_throttles(igloo)
    for attempt in ("?apiKey=wrong-key-0000000000", "?apiKey=wrong-key-1111111111"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await igloo.ws(attempt)
        assert refused.value.code == 401
    with pytest.raises(tornado.httpclient.HTTPClientError) as limited:
        await igloo.ws(subprotocols=[f"apikey.{API_KEY}"])
    assert limited.value.code == 429


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_RECOVERY_MAX": "2"}])
async def test_recovery_is_limited(igloo: Igloo) -> None:
    manual_throttles(igloo)
    body = json.dumps({"groupCredential": "bfgroup1x", "shareCredentials": ["bfshare1x"]})
    headers = {"X-API-Key": API_KEY, **JSON}
    codes = [(await igloo.fetch("/api/recover", method="POST", body=body, headers=headers)).code
             for _ in range(4)]
    assert codes == [400, 400, 429, 429]
    assert len(limit_events(igloo, "recovery")) == 1


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_MAX": "3"}])
async def test_sign_and_cipher_routes_share_a_budget(igloo: Igloo) -> None:
    clock = manual_throttles(igloo)
    headers = {"X-API-Key": API_KEY, **JSON}
    sign = '{"message":"' + "11" * 32 + '"}'
    codes = [(await igloo.fetch("/api/sign", method="POST", body=sign, headers=headers)).code
             for _ in range(2)]
    cipher = await igloo.fetch("/api/nip44/encrypt", method="POST", body='{"content":"x"}', headers=headers)
    limited = await igloo.fetch("/api/nip04/decrypt", method="POST", body='{"content":"x"}', headers=headers)
    assert codes == [503, 503] and cipher.code == 503 and limited.code == 429  # 503: no node here
    assert int(limited.headers["Retry-After"]) == 300  # RATE_LIMIT_WINDOW 900 s / 3
    clock.advance(300)
    assert (await igloo.fetch("/api/sign", method="POST", body=sign, headers=headers)).code == 503


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_ENV_WRITE_MAX": "2"}])
async def test_env_writes_are_limited_and_reads_are_not(igloo: Igloo) -> None:
    manual_throttles(igloo)
    headers = {"X-API-Key": API_KEY, **JSON}
    codes = [(await igloo.fetch("/api/env", method="POST", body='{"RELAYS":[]}', headers=headers)).code
             for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2]
    assert (await igloo.fetch("/api/env", headers={"X-API-Key": API_KEY})).code != 429


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_WS_UPGRADE_MAX": "3"}])
async def test_event_stream_upgrades_are_limited(igloo: Igloo) -> None:
    manual_throttles(igloo)
    ws = await igloo.ws_key()
    assert (await read_frame(ws))["type"] == "system"
    ws.close()
    with pytest.raises(tornado.httpclient.HTTPClientError):
        await igloo.ws()  # no credentials: 401, but the attempt counts
    ws = await igloo.ws_key()
    ws.close()
    with pytest.raises(tornado.httpclient.HTTPClientError) as limited:
        await igloo.ws_key()
    assert limited.value.code == 429
    assert len(limit_events(igloo, "ws-upgrade")) == 1


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_MAX": "5"}])
async def test_authenticated_api_requests_have_a_general_limit(igloo: Igloo) -> None:
    manual_throttles(igloo)
    codes = [(await igloo.fetch("/api/auth/status", headers={"X-API-Key": API_KEY})).code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    assert (await igloo.fetch("/api/status")).code == 200  # anonymous health checks are not counted


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_MAX": "1",
                                        "RATE_LIMIT_LOGIN_MAX": "1"}])
async def test_rate_limit_enabled_false_keeps_only_the_credential_limit(igloo: Igloo) -> None:
    for _ in range(3):
        assert (await igloo.fetch("/api/auth/status", headers={"X-API-Key": API_KEY})).code == 200
    assert (await igloo.fetch("/api/peers", headers={"X-API-Key": "wrong-0000000000000000"})).code == 401
    assert (await igloo.fetch("/api/peers", headers={"X-API-Key": "wrong-0000000000000000"})).code == 429


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "RATE_LIMIT_LOGIN_MAX": "2"}])
async def test_an_address_spray_keeps_memory_bounded_and_wins_no_tokens(igloo: Igloo) -> None:
    clock = ManualClock()
    throttles = Throttles.from_config(igloo.config, clock=clock)
    throttles.by_name[CREDENTIALS] = ClientThrottle(RateLimit(CREDENTIALS, 2, 900), clock, max_clients=50)
    igloo.app.settings["throttles"] = throttles
    wrong = {"X-API-Key": "wrong-0000000000000000"}
    for _ in range(2):
        await igloo.fetch("/api/peers", headers={**wrong, "X-Forwarded-For": "198.51.100.7"})
    for n in range(300):  # a spray of addresses, each guessing once
        forwarded = f"203.0.113.{n % 250}, 10.9.{n}.1"  # the proxy appended 10.9.n.1
        await igloo.fetch("/api/peers", headers={**wrong, "X-Forwarded-For": forwarded})
    assert len(throttles.by_name[CREDENTIALS]) <= 50
    again = await igloo.fetch("/api/peers", headers={**wrong, "X-Forwarded-For": "198.51.100.7"})
    assert again.code == 429  # the sprayer's own address got no fresh tokens from it


def test_a_throttle_stays_small_under_a_spray() -> None:
    clock = ManualClock()
    throttle = ClientThrottle(RateLimit("x", 5, 60), clock, max_clients=1000)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for n in range(50_000):
        throttle.take(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert len(throttle) <= 1000 and grown < 1_000_000, grown
    for _ in range(5):
        throttle.take("192.0.2.1")  # a newcomer while the table is full shares the overflow bucket
    assert throttle.take("192.0.2.1") > 0
    clock.advance(120)  # every bucket full again: old entries make room
    assert throttle.take("192.0.2.99") == 0 and len(throttle) <= 1000


def test_ipv6_clients_count_by_their_64() -> None:
    throttle = ClientThrottle(RateLimit("x", 2, 60), ManualClock())
    assert throttle.take("2001:db8:1:2::1") == 0 and throttle.take("2001:db8:1:2::ffff") == 0
    assert throttle.take("2001:db8:1:2:aaaa::1") > 0
    assert throttle.take("2001:db8:1:3::1") == 0
