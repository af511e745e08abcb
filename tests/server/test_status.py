"""GET /api/status, the legacy 426 on /api/events, the dashboard page, log redaction."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from server import build_application
from tests.server.conftest import API_KEY, Igloo

CREDS = {"GROUP_CRED": "bfgroup1secretgroupvalue", "SHARE_CRED": "bfshare1secretsharevalue"}


@pytest.mark.parametrize("overrides", [CREDS])
async def test_status_secret_free(igloo: Igloo) -> None:
    igloo.hub.publish("info", "hello")
    resp = await igloo.fetch("/api/status", headers={"X-API-Key": API_KEY})
    assert resp.code == 200
    status = json.loads(resp.body)
    for key in ("serverRunning", "nodeActive", "hasCredentials", "relayCount", "relays", "timestamp",
                "version", "uptime", "connections", "lastSeq"):
        assert key in status, key
    assert status["serverRunning"] is True and status["nodeActive"] is False
    assert status["hasCredentials"] is True and status["relayCount"] == 1
    assert status["relays"] == [f"ws://127.0.0.1:{igloo.config.host_port}/"]
    assert status["lastSeq"] == igloo.hub.last_seq == 1 and status["timestamp"].endswith("Z")
    text = resp.body.decode()
    for secret in [*CREDS.values(), API_KEY]:
        assert secret not in text


async def test_status_counts_connections(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await ws.read_message()
    status = json.loads((await igloo.fetch("/api/status", headers={"X-API-Key": API_KEY})).body)
    assert status["connections"] == 1
    ws.close()


class FakeNode:
    """The node seam: status() contributes public fields."""

    def status(self) -> dict[str, Any]:
        return {"nodeActive": True, "hasCredentials": True, "relays": ["wss://relay.example"]}


async def test_status_uses_node_hook(igloo: Igloo) -> None:
    igloo.app.settings["node"] = FakeNode()
    status = json.loads((await igloo.fetch("/api/status", headers={"X-API-Key": API_KEY})).body)
    assert status["nodeActive"] is True and status["relays"] == ["wss://relay.example"]
    assert status["relayCount"] == 1


def test_build_application_accepts_node(igloo: Igloo) -> None:
    node = FakeNode()
    app = build_application(igloo.config, igloo.db, igloo.hub, node)
    assert app.settings["node"] is node


@pytest.mark.parametrize("overrides", [{"ALLOWED_HOSTS": "igloo.example"}])
async def test_legacy_events_get(igloo: Igloo) -> None:
    unauth = await igloo.fetch("/api/events")
    assert unauth.code == 401 and json.loads(unauth.body) == {"error": "Authentication required"}
    resp = await igloo.fetch("/api/events", headers={"X-API-Key": API_KEY, "Host": "igloo.example:8443"})
    assert resp.code == 426 and resp.headers["Upgrade"] == "websocket"
    assert json.loads(resp.body) == {
        "error": "Event streaming has been migrated to WebSocket",
        "message": "Please connect using WebSocket to ws://igloo.example:8443/api/events",
        "upgrade": "websocket",
        "endpoint": "/api/events",
    }


async def test_legacy_events_keep_alive_headers(igloo: Igloo) -> None:
    # tornado's test client always sends "Connection: close"; a browser keeps the connection alive.
    reader, writer = await asyncio.open_connection("127.0.0.1", igloo.port)
    writer.write(f"GET /api/events HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {API_KEY}\r\n\r\n".encode())
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)).decode().lower()
    writer.close()
    assert head.startswith("http/1.1 426")
    assert "\r\nupgrade: websocket\r\n" in head and "\r\nconnection: upgrade\r\n" in head


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "ALLOWED_HOSTS": "igloo.example"}])
async def test_legacy_events_says_wss_over_https(igloo: Igloo) -> None:
    resp = await igloo.fetch("/api/events", headers={"X-API-Key": API_KEY, "X-Forwarded-Proto": "https",
                                                     "Host": "igloo.example"})
    assert json.loads(resp.body)["message"].endswith("wss://igloo.example/api/events")


async def test_dashboard_requires_login(igloo: Igloo) -> None:
    resp = await igloo.fetch("/dashboard")
    assert resp.code == 302 and resp.headers["Location"] == "/login?next=%2Fdashboard"
    igloo.add_user()
    cookie, _ = await igloo.login()
    page = await igloo.fetch("/dashboard", headers={"Cookie": cookie})
    assert page.code == 200 and b"alice" in page.body


async def test_access_log_redacts_secrets(igloo: Igloo, caplog: pytest.LogCaptureFixture) -> None:
    igloo.add_user()
    caplog.set_level(logging.DEBUG)
    cookie, session_id = await igloo.login()
    await igloo.fetch(f"/api/events?apiKey={API_KEY}&sessionId={session_id}")
    ws = await igloo.ws(f"?apiKey={API_KEY}")
    await ws.read_message()
    ws.close()
    await igloo.fetch("/api/status?apiKey=" + API_KEY)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/events" in text and "/api/status" in text
    for secret in (API_KEY, session_id, cookie.split("=", 1)[1], "correct horse"):
        assert secret not in text
