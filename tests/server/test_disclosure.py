"""Issue 12, item 6: what the server tells. Without authentication, GET /api/status is a health document
(no group, share, relay, budget or approval data). Relay URLs with credentials (``ws://user:pass@host/?auth=``)
never appear in a response, an event or a log line: one redaction (``node.validate.redact_relay_url``)
is applied wherever relay URLs leave, and a redacted URL sent back keeps the credentials it stands for."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest

from node import NodeManager, NodeOptions, keytools
from node.validate import redact_relay_url, redact_urls, unredact_relay_urls
from store.credentials import CredentialStore
from tests.igloo_process import API_KEY, ServerProc, read_json
from tests.node.fakenet import FakeNetwork
from tests.server.conftest import API_KEY as LOCAL_KEY
from tests.server.conftest import Igloo

USER, PASSWORD, TOKEN = "relayuser", "relay-secret-pass", "relay-auth-token-42"


def secret_url(port: int) -> str:
    return f"ws://{USER}:{PASSWORD}@127.0.0.1:{port}/?auth={TOKEN}"


def assert_clean(text: str, where: str) -> None:
    for secret in (PASSWORD, TOKEN, f"{USER}:"):
        assert secret not in text, f"{secret!r} in {where}"


@pytest.mark.timeout(60)
async def test_relay_credentials_never_leave(tmp_path: Path) -> None:
    keys = keytools.keygen(2, 3)
    env = {"GROUP_CRED": keys["group"], "SHARE_CRED": keys["shares"][0], "LOG_LEVEL": "DEBUG",
           "NIP46_ENABLED": "false"}
    proc = ServerProc(tmp_path / "data", env=env)
    # The embedded relay ignores user info and query, so this URL connects; a second one never does.
    env["RELAYS"] = f"{secret_url(proc.port)} ws://{USER}:{PASSWORD}@127.0.0.1:1/?auth={TOKEN}"
    proc.env.update(env)
    async with proc:
        status = await proc.wait_status(lambda s: any(r.get("connected") for r in s["relayDetails"]), 15)
        assert f"ws://***@127.0.0.1:{proc.port}/?***" in json.dumps(status)
        assert_clean(json.dumps(status), "/api/status")

        code, anonymous = await proc.call("GET", "/api/status", headers={})
        assert code == 200 and set(anonymous) == {"serverRunning", "status", "timestamp"}

        code, env_doc = await proc.get("/api/env")
        assert code == 200 and f"ws://***@127.0.0.1:{proc.port}/?***" in env_doc["RELAYS"]
        assert_clean(json.dumps(env_doc), "/api/env")

        for path in ("/api/relays", "/api/user/relays"):
            code, doc = await proc.get(path)
            assert code == 200 and f"ws://***@127.0.0.1:{proc.port}/?***" in json.dumps(doc), path
            assert_clean(json.dumps(doc), path)

        ws = await proc.events(since=0)
        frames = []
        while (frame := await read_json(ws, 3)) is not None and len(frames) < 200:
            frames.append(frame)
            if any(f["message"].startswith("Relay connected") for f in frames):
                break
        ws.close()
        assert any("ws://***@" in f["message"] for f in frames)
        assert_clean(json.dumps(frames), "the event stream")

        for page in ("/dashboard", "/configure"):
            code, html = await proc.call("GET", page, headers={"X-API-Key": API_KEY})
            assert code == 200
            assert_clean(str(html), page)
    log = proc.log_path.read_text()
    assert "ws://***@127.0.0.1:1/?***" in log  # the dead relay was logged, without its credentials
    assert_clean(log, "the server log")


@pytest.mark.parametrize("overrides", [{"RELAYS": "ws://u:p@127.0.0.1:9/?auth=t", "GROUP_CRED": "",
                                        "SHARE_CRED": ""}])
async def test_anonymous_status_is_a_health_document(igloo: Igloo) -> None:
    anonymous = json.loads((await igloo.fetch("/api/status")).body)
    assert set(anonymous) == {"serverRunning", "status", "timestamp"}
    assert anonymous["serverRunning"] is True and anonymous["status"] == "ok"
    full = json.loads((await igloo.fetch("/api/status", headers={"X-API-Key": LOCAL_KEY})).body)
    assert full["relays"] == ["ws://***@127.0.0.1:9/?***"] and "version" in full and "lastSeq" in full
    assert full["relayDetails"][0]["url"] == "ws://***@127.0.0.1:9/?***"


async def test_events_are_stored_and_sent_without_relay_credentials(igloo: Igloo) -> None:
    url = secret_url(7)
    ws = await igloo.ws_key()
    await ws.read_message()
    igloo.hub.publish("warn", f"Relay disconnected: {url}", {"url": url, "nested": [{"relay": url}]})
    frame = json.loads(await asyncio.wait_for(ws.read_message(), 3))
    ws.close()
    assert frame["message"] == "Relay disconnected: ws://***@127.0.0.1:7/?***"
    assert frame["data"] == {"url": "ws://***@127.0.0.1:7/?***", "nested": [{"relay": "ws://***@127.0.0.1:7/?***"}]}
    assert_clean(igloo.hub.ring.recent(1)[0].payload.decode(), "the event ring")


async def test_a_redacted_relay_sent_back_keeps_its_credentials(igloo: Igloo) -> None:
    key = secrets.token_bytes(32)
    keys = keytools.keygen(2, 3)
    net = FakeNetwork()
    manager = NodeManager(emit=igloo.hub.publish, options=NodeOptions(ping_interval=3600),
                          default_relays=["ws://127.0.0.1:9/"], pool_factory=net.factory,
                          credential_store=CredentialStore(igloo.db, key))
    igloo.app.settings["node"] = manager
    try:
        await manager.apply_credentials(keys["group"], keys["shares"][0], [secret_url(7), "wss://open.example/"])
        headers = {"X-API-Key": LOCAL_KEY, "Content-Type": "application/json"}
        shown = json.loads((await igloo.fetch("/api/env", headers=headers)).body)["RELAYS"]
        assert shown == ["ws://***@127.0.0.1:7/?***", "wss://open.example/"]
        resp = await igloo.fetch("/api/env", method="POST", headers=headers,
                                 body=json.dumps({"RELAYS": [*shown, "wss://new.example/"]}))
        assert resp.code == 200, resp.body
        assert manager.relays() == [secret_url(7), "wss://open.example/", "wss://new.example/"]
    finally:
        await manager.stop()


def test_redaction() -> None:
    assert redact_relay_url(secret_url(7)) == "ws://***@127.0.0.1:7/?***"
    assert redact_relay_url("wss://relay.example/path") == "wss://relay.example/path"  # nothing to hide
    assert redact_relay_url("wss://relay.example/#frag") == "wss://relay.example/?***"
    assert redact_relay_url("ws://[::1]:81/x?k=v") == "ws://[::1]:81/x?***"
    in_text = redact_urls(f"cannot reach {secret_url(7)}, retrying")
    assert in_text == "cannot reach ws://***@127.0.0.1:7/?***, retrying"
    assert redact_urls("WSS://a:b@h/") == "wss://***@h/"
    assert unredact_relay_urls(["ws://***@127.0.0.1:7/?***", "wss://x/"], [secret_url(7)]) == [secret_url(7),
                                                                                               "wss://x/"]
