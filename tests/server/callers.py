"""Callers of every kind for the role tests: an administrator and a user (each by session cookie with its XSRF
token, and by X-Session-ID), a full and a read-only stored API key, API_KEY and ADMIN_SECRET."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import tornado.httpclient

from store.apikeys import ApiKeyStore
from tests.server.conftest import ADMIN_SECRET, API_KEY, PASSWORD, Igloo

XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')


@dataclass
class Session:
    """A logged-in account: its session id, and a cookie header with a matching XSRF token."""

    username: str
    session_id: str
    cookie: str
    xsrf: str

    def header(self) -> dict[str, str]:
        """Header credentials (no XSRF token needed)."""
        return {"X-Session-ID": self.session_id}

    def browser(self) -> dict[str, str]:
        """What a browser sends with a form or a script's write: the cookies and the XSRF header."""
        return {"Cookie": self.cookie, "X-XSRFToken": self.xsrf}


@dataclass
class Callers:
    """Every kind of caller of one running Igloo."""

    admin: Session
    user: Session
    full_key: str
    read_key: str

    @staticmethod
    def env_key() -> dict[str, str]:
        """API_KEY from the environment (an administrator)."""
        return {"X-API-Key": API_KEY}

    @staticmethod
    def admin_secret() -> dict[str, str]:
        """ADMIN_SECRET as a Bearer token (an administrator)."""
        return {"Authorization": f"Bearer {ADMIN_SECRET}"}


async def xsrf_for(igloo: Igloo, cookie: str) -> tuple[str, str]:
    """An XSRF token for a signed-in browser, taken from a rendered form; returns (token, cookie header)."""
    resp = await igloo.fetch("/account", headers={"Cookie": cookie})
    assert resp.code == 200, resp.body[:300]
    token = XSRF_FIELD.search(resp.body.decode())
    assert token is not None
    cookies = [cookie]
    for set_cookie in resp.headers.get_list("Set-Cookie"):
        name_value = set_cookie.split(";", 1)[0]
        if name_value.split("=", 1)[0] in ("_xsrf", "__Host-xsrf"):
            cookies.append(name_value)
    return token.group(1), "; ".join(cookies)


async def session(igloo: Igloo, username: str, password: str = PASSWORD) -> Session:
    """Log in and prepare a browser's cookie and XSRF token."""
    cookie, session_id = await igloo.login(username, password)
    token, cookies = await xsrf_for(igloo, cookie)
    return Session(username, session_id, cookies, token)


async def make_callers(igloo: Igloo) -> Callers:
    """alice (the first account: administrator), bob (user), a full and a read-only key."""
    igloo.users.create_sync("alice", PASSWORD)
    igloo.users.create_sync("bob", PASSWORD, role="user")
    keys: ApiKeyStore = igloo.app.settings["api_keys"]
    _, full = keys.create("full key", "full")
    _, read = keys.create("read key", "read")
    return Callers(await session(igloo, "alice"), await session(igloo, "bob"), full, read)


async def call(
    igloo: Igloo, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tornado.httpclient.HTTPResponse:
    """One request; a JSON body when ``body`` is not None."""
    send = dict(headers)
    payload = None
    if body is not None:
        send["Content-Type"] = "application/json"
        payload = json.dumps(body)
    elif method in ("POST", "PUT", "PATCH"):
        payload = ""
    return await igloo.fetch(path, method=method, headers=send, body=payload, allow_nonstandard_methods=True)


def json_of(resp: tornado.httpclient.HTTPResponse) -> Any:
    """The JSON body (AssertionError naming what came instead)."""
    assert resp.headers.get("Content-Type", "").startswith("application/json"), (resp.code, resp.body[:200])
    return json.loads(resp.body)
