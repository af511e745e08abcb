"""Accounts, login pages and APIs, sessions, API key / bearer / basic auth, rate limiting."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from handlers.auth import LoginLimiter
from tests.clock import ManualClock
from tests.server.conftest import (
    ADMIN_SECRET,
    API_KEY,
    PASSWORD,
    Igloo,
    base_env,
    read_frame,
    read_until_closed,
    start_igloo,
    stop_igloo,
)


def xsrf_pair(resp_headers: object) -> tuple[str, str]:
    """(_xsrf token, Cookie header) taken from a page response."""
    cookies = resp_headers.get_list("Set-Cookie")  # type: ignore[attr-defined]
    xsrf = next(c for c in cookies if c.startswith("_xsrf=")).split(";", 1)[0]
    return xsrf.split("=", 1)[1], xsrf


async def test_onboarding_creates_first_admin(igloo: Igloo) -> None:
    resp = await igloo.fetch("/login")
    assert resp.code == 302 and resp.headers["Location"] == "/onboarding"
    page = await igloo.fetch("/onboarding")
    assert page.code == 200 and b'name="admin_secret"' in page.body
    token, cookie = xsrf_pair(page.headers)
    form = "_xsrf={}&admin_secret={}&username=root&password=" + PASSWORD.replace(" ", "+")
    bad = await igloo.fetch("/onboarding", method="POST", headers={"Cookie": cookie},
                            body=form.format(token, "wrong-secret-value"))
    assert bad.code == 401 and igloo.users.count() == 0
    no_xsrf = await igloo.fetch("/onboarding", method="POST", body=form.format("", ADMIN_SECRET))
    assert no_xsrf.code == 403 and igloo.users.count() == 0
    ok = await igloo.fetch("/onboarding", method="POST", headers={"Cookie": cookie},
                           body=form.format(token, ADMIN_SECRET))
    assert ok.code == 302 and ok.headers["Location"] == "/dashboard"
    assert any(c.startswith("igloo_session=") for c in ok.headers.get_list("Set-Cookie"))
    assert igloo.users.count() == 1
    again = await igloo.fetch("/onboarding")
    assert again.code == 302 and again.headers["Location"] == "/login"


@pytest.mark.parametrize("overrides", [{"ADMIN_SECRET": ""}])
async def test_onboarding_locked_without_admin_secret(igloo: Igloo) -> None:
    page = await igloo.fetch("/onboarding")
    assert page.code == 200 and b"ADMIN_SECRET" in page.body and b"adduser" in page.body
    token, cookie = xsrf_pair(page.headers)
    resp = await igloo.fetch("/onboarding", method="POST", headers={"Cookie": cookie},
                             body=f"_xsrf={token}&admin_secret=x&username=root&password=long+enough+pw")
    assert resp.code == 403 and igloo.users.count() == 0


@pytest.mark.parametrize("overrides", [{"ADMIN_SECRET": ""}])
async def test_onboarding_with_the_one_time_setup_token(igloo: Igloo) -> None:
    token_file = igloo.config.data_dir / "setup-token"
    token_file.write_text("f" * 32)
    page = await igloo.fetch("/onboarding")
    assert page.code == 200 and b"Setup token" in page.body and b"DATA_DIR/setup-token" in page.body
    assert str(igloo.config.data_dir).encode() not in page.body  # no install path for an anonymous visitor
    assert b"f" * 32 not in page.body
    token, cookie = xsrf_pair(page.headers)
    form = "_xsrf={}&admin_secret={}&username=root&password=long+enough+pw"
    bad = await igloo.fetch("/onboarding", method="POST", headers={"Cookie": cookie},
                            body=form.format(token, "e" * 32))
    assert bad.code == 401 and igloo.users.count() == 0
    ok = await igloo.fetch("/onboarding", method="POST", headers={"Cookie": cookie},
                           body=form.format(token, "f" * 32))
    assert ok.code == 302 and igloo.users.count() == 1
    assert not token_file.exists()  # used once


async def test_login_form_next_and_errors(igloo: Igloo) -> None:
    igloo.add_user()
    page = await igloo.fetch("/login?next=/dashboard")
    assert page.code == 200 and b'value="/dashboard"' in page.body
    token, cookie = xsrf_pair(page.headers)
    headers = {"Cookie": cookie}
    wrong = await igloo.fetch("/login", method="POST", headers=headers,
                              body=f"_xsrf={token}&username=alice&password=nope&next=/dashboard")
    assert wrong.code == 401 and b"Invalid credentials" in wrong.body
    missing = await igloo.fetch("/login", method="POST", body="username=alice&password=x")
    assert missing.code == 403  # XSRF
    cases = [("//evil.example/x", "/dashboard"), ("https://evil.example/", "/dashboard"),
             ("/\\evil.example", "/dashboard"), ("/dashboard?tab=peers", "/dashboard?tab=peers")]
    for target, expected in cases:
        body = f"_xsrf={token}&username=alice&password={PASSWORD.replace(' ', '+')}&next={target}"
        ok = await igloo.fetch("/login", method="POST", headers=headers, body=body)
        assert ok.code == 302 and ok.headers["Location"] == expected


async def test_api_login_cookie_and_status(igloo: Igloo) -> None:
    igloo.add_user()
    form = await igloo.fetch("/api/auth/login", method="POST", body="username=alice&password=x")
    assert form.code == 415  # only application/json: a cross-site form cannot log anyone in
    resp = await igloo.fetch("/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
                             body=json.dumps({"username": "alice", "password": PASSWORD}))
    body = json.loads(resp.body)
    # expiresIn in milliseconds, as Igloo Server
    assert resp.code == 200 and body["success"] is True and body["expiresIn"] == 3_600_000 and body["userId"]
    set_cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Secure" not in set_cookie
    assert body["sessionId"] not in set_cookie  # the cookie is signed, not the bare id
    cookie = set_cookie.split(";", 1)[0]
    status = json.loads((await igloo.fetch("/api/auth/status", headers={"Cookie": cookie})).body)
    assert status["authenticated"] is True and status["username"] == "alice"
    assert status["authEnabled"] is True and 3_598_000 <= status["expiresIn"] <= 3_600_000
    anon = json.loads((await igloo.fetch("/api/auth/status")).body)
    assert anon == {"authenticated": False, "authEnabled": True, "enabled": True,
                    "methods": ["api-key", "session"], "rateLimiting": True, "sessionTimeout": 3600}


async def test_api_login_failures(igloo: Igloo) -> None:
    igloo.add_user()
    headers = {"Content-Type": "application/json"}
    wrong = await igloo.fetch("/api/auth/login", method="POST", headers=headers,
                              body=json.dumps({"username": "alice", "password": "wrong"}))
    assert wrong.code == 401 and json.loads(wrong.body) == {"success": False, "error": "Invalid credentials"}
    long = await igloo.fetch("/api/auth/login", method="POST", headers=headers,
                             body=json.dumps({"username": "alice", "password": "x" * 73}))
    assert long.code == 400 and "72 bytes" in json.loads(long.body)["error"]
    junk = await igloo.fetch("/api/auth/login", method="POST", headers=headers, body="{not json")
    assert junk.code == 400 and "error" in json.loads(junk.body)


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_LOGIN_MAX": "3"}])
async def test_failed_logins_rate_limited(igloo: Igloo) -> None:
    igloo.add_user()
    configured: LoginLimiter = igloo.app.settings["login_limiter"]
    assert (configured.max_failures, configured.window) == (3, 900)  # RATE_LIMIT_LOGIN_WINDOW's default
    clock = ManualClock()
    igloo.app.settings["login_limiter"] = LoginLimiter(3, 900, clock=clock)
    headers = {"Content-Type": "application/json"}

    async def login(password: str) -> tuple[int, str | None]:
        resp = await igloo.fetch("/api/auth/login", method="POST", headers=headers,
                                 body=json.dumps({"username": "alice", "password": password}))
        return resp.code, resp.headers.get("Retry-After")

    for _ in range(3):
        assert await login("wrong") == (401, None)
        clock.advance(100)
    assert await login(PASSWORD) == (429, "600")  # the first failure leaves the window 900 s after it
    clock.advance(599)
    assert await login(PASSWORD) == (429, "1")
    clock.advance(1)
    assert await login(PASSWORD) == (200, None)


def test_login_limiter_counts_attempts_per_address_and_username_in_a_sliding_window() -> None:
    clock = ManualClock()
    limiter = LoginLimiter(max_failures=2, window=60, clock=clock)
    assert limiter.begin("10.0.0.1", "alice") == 0
    clock.advance(10)
    assert limiter.begin("10.0.0.1", "Alice") == 0  # the same account, whatever the case
    assert limiter.begin("10.0.0.1", "alice") == 50  # refused, and not counted
    assert limiter.begin("10.0.0.2", "alice") == 0 and limiter.begin("10.0.0.1", "bob") == 0
    clock.advance(49.5)
    assert limiter.retry_after("10.0.0.1", "alice") == 1  # whole seconds, rounded up
    clock.advance(0.5)
    assert limiter.retry_after("10.0.0.1", "alice") == 0  # the first attempt has left the window
    assert limiter.begin("10.0.0.1", "alice") == 0
    limiter.succeeded("10.0.0.1", "alice")  # the right password forgives this account's misses here
    assert limiter.retry_after("10.0.0.1", "alice") == 0 and limiter.begin("10.0.0.1", "alice") == 0


async def test_logout_ends_session(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, _ = await igloo.login()
    page = await igloo.fetch("/dashboard", headers={"Cookie": cookie})
    assert page.code == 200
    token, xsrf_cookie = xsrf_pair(page.headers)
    both = f"{cookie}; {xsrf_cookie}"
    refused = await igloo.fetch("/api/auth/logout", method="POST", headers={"Cookie": both}, body=b"")
    assert refused.code == 403  # a cookie-authenticated POST needs X-XSRFToken
    ok = await igloo.fetch("/api/auth/logout", method="POST", body=b"",
                           headers={"Cookie": both, "X-XSRFToken": token})
    assert ok.code == 200 and json.loads(ok.body) == {"success": True}
    after = await igloo.fetch("/dashboard", headers={"Cookie": cookie})
    assert after.code == 302 and after.headers["Location"] == "/login?next=%2Fdashboard"


async def test_logout_form(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, _ = await igloo.login()
    page = await igloo.fetch("/dashboard", headers={"Cookie": cookie})
    token, xsrf_cookie = xsrf_pair(page.headers)
    resp = await igloo.fetch("/logout", method="POST", headers={"Cookie": f"{cookie}; {xsrf_cookie}"},
                             body=f"_xsrf={token}")
    assert resp.code == 302 and resp.headers["Location"] == "/login"
    assert (await igloo.fetch("/api/events", headers={"Cookie": cookie})).code == 401


async def test_session_expires_when_idle(io_loop: object, tmp_path: Path) -> None:
    clock = ManualClock()
    igloo = start_igloo(base_env(tmp_path / "data"), clock=clock)  # SESSION_TIMEOUT 3600
    try:
        igloo.add_user()
        cookie, _ = await igloo.login()

        async def events_code() -> int:
            return (await igloo.fetch("/api/events", headers={"Cookie": cookie})).code

        async def expires_in() -> int:
            status = await igloo.fetch("/api/auth/status", headers={"Cookie": cookie})
            return int(json.loads(status.body).get("expiresIn", -1000) // 1000)

        assert await events_code() == 426
        clock.advance(3000)
        assert await expires_in() == 3600  # every request renews the session
        clock.advance(3599)
        assert await events_code() == 426  # 6599 s after login, alive: only idle time counts
        clock.advance(3600)
        assert await events_code() == 401
        assert await expires_in() == -1  # no longer authenticated
    finally:
        stop_igloo(igloo)


async def test_session_expiry_by_the_clock_closes_event_sockets(io_loop: object, tmp_path: Path) -> None:
    clock = ManualClock()
    igloo = start_igloo(base_env(tmp_path / "data"), clock=clock)
    try:
        igloo.add_user()
        cookie, _ = await igloo.login()
        ws = await igloo.ws(headers={"Cookie": cookie})
        assert (await read_frame(ws) or {}).get("message") == "Connected to event stream"
        clock.advance(3599)
        igloo.hub.sweep_sessions()  # what the hub's periodic sweep does
        marker = igloo.hub.publish("info", "marker")  # would come after a close frame on the same socket
        for _ in range(5):  # "User logged in" may come first
            frame = await read_frame(ws)
            if frame is None or frame == marker:
                break
        assert frame == marker and ws.close_code is None
        clock.advance(1)
        igloo.hub.sweep_sessions()
        await read_until_closed(ws, timeout=3)
        assert ws.close_code == 4401
    finally:
        stop_igloo(igloo)


async def test_sessions_survive_restart(io_loop: object, tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    first = start_igloo(env)
    first.add_user()
    cookie, _ = await first.login()
    stop_igloo(first)
    second = start_igloo(env)
    try:
        assert (await second.fetch("/api/events", headers={"Cookie": cookie})).code == 426
    finally:
        stop_igloo(second)


@pytest.mark.parametrize("overrides", [{"BASIC_AUTH_USER": "ops", "BASIC_AUTH_PASS": "basic-password"}])
async def test_api_key_bearer_and_basic(igloo: Igloo) -> None:
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    accepted = [{"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"},
                {"Authorization": basic("ops", "basic-password")}]
    refused = [{}, {"X-API-Key": API_KEY[:-1] + "X"}, {"Authorization": "Bearer nope"},
               {"Authorization": basic("ops", "wrong")}, {"Authorization": "Basic !!!"},
               {"X-Session-ID": "made-up"}]
    for headers in accepted:
        assert (await igloo.fetch("/api/events", headers=headers)).code == 426, headers
    for headers in refused:
        resp = await igloo.fetch("/api/events", headers=headers)
        assert resp.code == 401 and json.loads(resp.body) == {"error": "Authentication required"}, headers


@pytest.mark.parametrize("overrides", [{"AUTH_ENABLED": "false"}])
async def test_auth_disabled_opens_every_route(igloo: Igloo) -> None:
    assert (await igloo.fetch("/api/events")).code == 426
    assert (await igloo.fetch("/dashboard")).code == 200
    status = json.loads((await igloo.fetch("/api/auth/status")).body)
    assert status["authEnabled"] is False and status["authenticated"] is True


def test_startup_warning_when_open_on_network(tmp_path: Path) -> None:
    from config.settings import Settings
    from server import startup_warnings

    def warnings(**env: str) -> list[str]:
        return startup_warnings(Settings.from_env({"DATA_DIR": str(tmp_path), **env}))

    assert warnings() == []
    loud = warnings(AUTH_ENABLED="false", HOST_NAME="0.0.0.0")
    assert len(loud) == 1 and re.search(r"OPEN TO THE NETWORK", loud[0])
    assert "NETWORK" not in warnings(AUTH_ENABLED="false")[0]


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true"}])
async def test_secure_cookie_behind_https_proxy(igloo: Igloo) -> None:
    igloo.add_user()
    resp = await igloo.fetch("/api/auth/login", method="POST",
                             headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"},
                             body=json.dumps({"username": "alice", "password": PASSWORD}))
    assert resp.code == 200 and "Secure" in resp.headers["Set-Cookie"]


async def test_forwarded_proto_ignored_without_trust_proxy(igloo: Igloo) -> None:
    igloo.add_user()
    resp = await igloo.fetch("/api/auth/login", method="POST",
                             headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"},
                             body=json.dumps({"username": "alice", "password": PASSWORD}))
    assert resp.code == 200 and "Secure" not in resp.headers["Set-Cookie"]


async def test_cookie_posts_to_node_apis_need_the_xsrf_token(igloo: Igloo) -> None:
    igloo.add_user()
    session_cookie, _ = await igloo.login()
    # The session's own token (a page it sees carries it); a token from before the login does not do.
    page = await igloo.fetch("/dashboard", headers={"Cookie": session_cookie})
    token, xsrf_cookie = xsrf_pair(page.headers)
    json_type = {"Content-Type": "application/json"}
    for path, body in (
        ("/api/approvals/abc", '{"action":"approve"}'),
        ("/api/sign", '{"message":"' + "11" * 32 + '"}'),
        ("/api/env", '{"RELAYS":[]}'),
    ):
        refused = await igloo.fetch(
            path, method="POST", body=body, headers={"Cookie": session_cookie, **json_type}
        )
        assert refused.code == 403, path
        allowed = await igloo.fetch(path, method="POST", body=body, headers={
            "Cookie": f"{session_cookie}; {xsrf_cookie}", "X-XSRFToken": token, **json_type})
        assert allowed.code not in (401, 403), (path, allowed.body)
