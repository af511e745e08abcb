"""Issue 12, item 7: the smaller holes. Usernames cannot be told apart by timing; the XSRF check is not
skipped for a browser whose cookie authenticates, whatever headers come along; the XSRF token is bound to
the session and travels in a ``__Host-`` cookie over https; cross-site form posts are refused; pages carry a
Content-Security-Policy that needs no inline script or style (checked against every template and script),
nosniff, HSTS over https and a ``Server`` header without a version; onboarding shows anonymous visitors no
path; ``igloo-server adduser`` removes the setup token."""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import time
from pathlib import Path

import pytest

from store.db import Database
from store.users import UserStore, dummy_hash
from tests.server.conftest import API_KEY, Igloo
from tests.server.test_auth import xsrf_pair
from tests.server.test_cli import run_cli, server_env

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}


async def timed_verify(users: UserStore, username: str) -> float:
    started = time.perf_counter()
    assert await users.verify(username, "not the password") is None
    return time.perf_counter() - started


async def test_unknown_and_known_usernames_take_as_long(tmp_path: Path) -> None:
    db = Database.open_in(tmp_path)
    users = UserStore(db, rounds=8)
    users.create_sync("alice", "correct horse battery")
    assert dummy_hash(8).startswith(b"$2b$08$")  # the same cost as real hashes
    known = statistics.median([await timed_verify(users, "alice") for _ in range(7)])
    unknown = statistics.median([await timed_verify(users, "nobody") for _ in range(7)])
    db.close()
    assert unknown > 0.6 * known, (unknown, known)  # cost 4 against cost 8 would be a 16th


async def session_page(igloo: Igloo, cookie: str) -> tuple[str, str]:
    """(XSRF token, its cookie) from a page the session sees."""
    return xsrf_pair((await igloo.fetch("/dashboard", headers={"Cookie": cookie})).headers)


async def post_env(igloo: Igloo, **headers: str) -> int:
    resp = await igloo.fetch("/api/env", method="POST", body='{"RELAYS":[]}', headers={**JSON, **headers})
    return resp.code


async def test_a_header_does_not_excuse_a_cookie_from_xsrf(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, _ = await igloo.login()
    for extra in ({"X-API-Key": "not-the-key-000000000000"}, {"Authorization": "Bearer wrong"},
                  {"X-API-Key": API_KEY}, {"X-Session-ID": "forged"}):
        assert await post_env(igloo, Cookie=cookie, **extra) == 403, extra
    token, xsrf_cookie = await session_page(igloo, cookie)
    both = f"{cookie}; {xsrf_cookie}"
    assert await post_env(igloo, Cookie=both, **{"X-XSRFToken": token}) == 503  # past XSRF; no node here
    assert await post_env(igloo, **{"X-API-Key": API_KEY}) == 503  # a program: no token needed


async def test_the_xsrf_token_is_bound_to_the_session(igloo: Igloo) -> None:
    igloo.add_user()
    cookie_a, _ = await igloo.login()
    cookie_b, _ = await igloo.login()
    token_a, xsrf_a = await session_page(igloo, cookie_a)
    token_b, _ = await session_page(igloo, cookie_b)
    assert token_a != token_b
    assert await post_env(igloo, Cookie=f"{cookie_b}; {xsrf_a}", **{"X-XSRFToken": token_a}) == 403
    # A planted pair: any value in both the cookie and the header (the old double submit).
    assert await post_env(igloo, Cookie=f"{cookie_a}; _xsrf=planted", **{"X-XSRFToken": "planted"}) == 403
    # The anonymous token of the login page (an attacker can fetch one for himself) does not do either.
    anon_token, anon_cookie = xsrf_pair((await igloo.fetch("/login")).headers)
    assert anon_token.startswith("a.")
    assert await post_env(igloo, Cookie=f"{cookie_a}; {anon_cookie}", **{"X-XSRFToken": anon_token}) == 403
    assert await post_env(igloo, Cookie=f"{cookie_a}; {xsrf_a}", **{"X-XSRFToken": token_a}) == 503
    # The session ends, its token with it.
    logout = await igloo.fetch("/api/auth/logout", method="POST", body="",
                               headers={"Cookie": f"{cookie_a}; {xsrf_a}", "X-XSRFToken": token_a})
    assert logout.code == 200
    assert await post_env(igloo, Cookie=f"{cookie_a}; {xsrf_a}", **{"X-XSRFToken": token_a}) in (401, 403)


async def test_anonymous_forms_need_a_signed_token_matching_the_cookie(igloo: Igloo) -> None:
    igloo.add_user()
    form = "_xsrf={}&username=alice&password=wrong"
    forged = await igloo.fetch("/login", method="POST", headers={"Cookie": "_xsrf=a.x.y"},
                               body=form.format("a.x.y"))
    assert forged.code == 403
    token, cookie = xsrf_pair((await igloo.fetch("/login")).headers)
    other_token, _ = xsrf_pair((await igloo.fetch("/login")).headers)
    mismatched = await igloo.fetch("/login", method="POST", headers={"Cookie": cookie},
                                   body=form.format(other_token))
    assert mismatched.code == 403
    ok = await igloo.fetch("/login", method="POST", headers={"Cookie": cookie}, body=form.format(token))
    assert ok.code == 401  # past the XSRF check: the password was wrong


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true"}])
async def test_over_https_the_token_cookie_is_host_prefixed(igloo: Igloo) -> None:
    igloo.add_user()  # else /login sends the visitor to onboarding
    https = await igloo.fetch("/login", headers={"X-Forwarded-Proto": "https"})
    cookie = next(c for c in https.headers.get_list("Set-Cookie") if "xsrf" in c)
    assert cookie.startswith("__Host-xsrf=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "path", "samesite"} <= attributes and "domain" not in attributes
    assert "Path=/" in cookie
    plain = await igloo.fetch("/login")
    cookie = next(c for c in plain.headers.get_list("Set-Cookie") if "xsrf" in c)
    assert cookie.startswith("_xsrf=") and "Secure" not in cookie  # http on loopback keeps working


@pytest.mark.parametrize("overrides", [{"BASIC_AUTH_USER": "ops", "BASIC_AUTH_PASS": "basic-password-1"}])
async def test_cross_site_posts_are_refused_even_with_browser_basic_auth(igloo: Igloo) -> None:
    basic = "Basic " + base64.b64encode(b"ops:basic-password-1").decode()
    rotate = await igloo.fetch("/api/env", method="POST", body='{"RELAYS":[]}',
                               headers={**JSON, "Authorization": basic, "Sec-Fetch-Site": "cross-site"})
    assert rotate.code == 403
    same = await igloo.fetch("/api/env", method="POST", body='{"RELAYS":[]}',
                             headers={**JSON, "Authorization": basic, "Sec-Fetch-Site": "same-origin"})
    assert same.code == 503  # allowed through (no node here)


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true"}])
async def test_security_headers_on_every_response(igloo: Igloo) -> None:
    for path in ("/login", "/static/js/events.js", "/api/status", "/no-such-page"):
        resp = await igloo.fetch(path)
        headers = resp.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Server"] == "Igloo", path
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    https = await igloo.fetch("/login", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I), "inline script"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "inline event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style", re.I), "style element"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]
SCRIPT_INLINE = [
    (re.compile(r"\.innerHTML\s*=[^;]*style=", re.I), "style in generated markup"),
    (re.compile(r"setAttribute\(\s*['\"](style|on[a-z]+)['\"]", re.I), "inline style or handler"),
    (re.compile(r"\beval\(|new Function\(|setTimeout\(\s*['\"]", re.I), "string evaluation"),
]


def test_templates_and_scripts_need_nothing_inline() -> None:
    found = []
    for template in sorted((ROOT / "templates").glob("*.html")):
        text = template.read_text()
        found += [f"{template.name}: {what}" for pattern, what in INLINE if pattern.search(text)]
    for script in sorted((ROOT / "static").rglob("*.js")):
        text = script.read_text()
        found += [f"{script.name}: {what}" for pattern, what in SCRIPT_INLINE if pattern.search(text)]
    assert not found, found


@pytest.mark.parametrize("overrides", [{"ADMIN_SECRET": ""}])
async def test_onboarding_names_no_path(igloo: Igloo) -> None:
    (igloo.config.data_dir / "setup-token").write_text("f" * 32)
    page = await igloo.fetch("/onboarding")
    assert page.code == 200 and b"DATA_DIR/setup-token" in page.body
    assert str(igloo.config.data_dir.resolve()).encode() not in page.body
    assert str(igloo.config.data_dir).encode() not in page.body


async def test_adduser_removes_the_setup_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    token = data / "setup-token"
    token.write_text("e" * 32)
    result = await asyncio.to_thread(run_cli, "adduser", "root", "--password-stdin",
                                     env=server_env(data), stdin="correct horse battery\n")
    assert result.returncode == 0, result.stderr
    assert not token.exists()
