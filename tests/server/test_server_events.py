"""Events the server itself publishes (logins, logouts, onboarding) and the 404 answers."""

from __future__ import annotations

import json
from typing import Any

from tests.server.conftest import PASSWORD, Igloo


def recorded(igloo: Igloo) -> list[dict[str, Any]]:
    """Every event body the hub has published so far (from its ring)."""
    return [json.loads(event.payload) for event in igloo.hub.ring.since(0).events]


async def test_login_success_failure_and_logout_are_events(igloo: Igloo) -> None:
    igloo.add_user("alice")
    bad = await igloo.fetch(
        "/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
        body=json.dumps({"username": "alice", "password": "not the password"}),
    )
    assert bad.code == 401
    _cookie, session_id = await igloo.login("alice")
    logout = await igloo.fetch(
        "/api/auth/logout", method="POST", body="", headers={"X-Session-ID": session_id}
    )
    assert logout.code == 200
    events = [(e["type"], e["message"], e["data"]) for e in recorded(igloo)]
    assert ("warn", "Login failed", {"address": "127.0.0.1"}) in events  # never the typed name
    assert ("info", "User logged in", {"username": "alice", "address": "127.0.0.1"}) in events
    assert ("info", "User logged out", {"username": "alice"}) in events
    text = json.dumps(events)
    assert "not the password" not in text and PASSWORD not in text and session_id not in text


async def test_unknown_paths_get_404_pages_and_json(igloo: Igloo) -> None:
    page = await igloo.fetch("/no-such-page")
    assert page.code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert b"Not found" in page.body
    api = await igloo.fetch("/api/no-such-endpoint", method="POST", body="{}")
    assert api.code == 404 and json.loads(api.body) == {"error": "Not found"}
