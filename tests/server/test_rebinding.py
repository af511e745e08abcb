"""Issue 12, item 1: DNS rebinding. A page on ``rebind.example`` whose name resolves to 127.0.0.1 reaches a
loopback Igloo with its own name in ``Host`` (and ``Origin``). With AUTH_ENABLED=false that used to be
enough to read the full status, sign and open the event stream; now only this server's names are answered,
and the event stream's Origin must match scheme, host and port."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from config.settings import ConfigError, Settings
from handlers.gate import HostPolicy
from handlers.proxy import origin_allowed
from tests.server.conftest import API_KEY, Igloo, read_frame

AUTH_OFF = {"AUTH_ENABLED": "false"}
REBOUND = "rebind.example"


def rebound(igloo: Igloo, **extra: str) -> dict[str, str]:
    """The headers a rebinding page's requests carry: its own host name, with the server's port."""
    return {"Host": f"{REBOUND}:{igloo.port}", "Origin": f"http://{REBOUND}:{igloo.port}", **extra}


@pytest.mark.parametrize("overrides", [AUTH_OFF])
async def test_a_rebound_name_gets_nothing_with_auth_off(igloo: Igloo) -> None:
    json_type = {"Content-Type": "application/json"}
    for method, path, body in (("GET", "/api/status", None), ("GET", "/api/env", None),
                               ("POST", "/api/sign", '{"message":"' + "11" * 32 + '"}'),
                               ("GET", "/dashboard", None), ("POST", "/api/demo/start", "{}")):
        resp = await igloo.fetch(path, method=method, body=body, headers=rebound(igloo, **json_type))
        assert resp.code == 421, (path, resp.code, resp.body)
        assert b"serverRunning" not in resp.body and b"relays" not in resp.body
    refused = await igloo.fetch("/api/status", headers=rebound(igloo))
    assert "add this name to ALLOWED_HOSTS" in json.loads(refused.body)["error"]

    with pytest.raises(tornado.httpclient.HTTPClientError) as upgrade:
        await igloo.ws(headers=rebound(igloo))
    assert upgrade.value.code == 421

    # The same requests by this server's own names work (auth is off: everything is open to them).
    for host in (f"127.0.0.1:{igloo.port}", f"localhost:{igloo.port}", "127.0.0.1"):
        ok = await igloo.fetch("/api/status", headers={"Host": host})
        assert ok.code == 200 and "relays" in json.loads(ok.body), host
    ws = await igloo.ws(headers={"Origin": f"http://127.0.0.1:{igloo.port}"})
    assert (await read_frame(ws))["type"] == "system"
    ws.close()


@pytest.mark.parametrize("overrides", [{**AUTH_OFF, "ALLOWED_HOSTS": "igloo.example, other.example:8443"}])
async def test_configured_names_and_ports(igloo: Igloo) -> None:
    cases = {"igloo.example": 200, f"IGLOO.example:{igloo.port}": 200, "other.example:8443": 200,
             "other.example:8444": 421, "other.example": 421, "igloo.example.evil": 421, "": 421}
    for host, expected in cases.items():
        resp = await igloo.fetch("/api/auth/status", headers={"Host": host})
        assert resp.code == expected, host


@pytest.mark.parametrize("overrides", [{"TRUST_PROXY": "true", "ALLOWED_HOSTS": "igloo.example"}])
async def test_behind_a_proxy_the_forwarded_host_is_checked(igloo: Igloo) -> None:
    ok = await igloo.fetch("/api/auth/status", headers={"X-Forwarded-Host": "igloo.example"})
    assert ok.code == 200
    refused = await igloo.fetch("/api/auth/status", headers={"X-Forwarded-Host": REBOUND})
    assert refused.code == 421
    # The last value is the one the nearest proxy wrote.
    last = await igloo.fetch("/api/auth/status", headers={"X-Forwarded-Host": f"igloo.example, {REBOUND}"})
    assert last.code == 421


@pytest.mark.parametrize("overrides", [AUTH_OFF])
async def test_the_relay_answers_every_name(igloo: Igloo) -> None:
    info = await igloo.fetch("/", headers={"Host": REBOUND, "Accept": "application/nostr+json"})
    assert info.code == 200 and json.loads(info.body)["software"] == "igloo"
    relay = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
        f"ws://127.0.0.1:{igloo.port}/", headers={"Host": REBOUND}))
    relay.write_message(json.dumps(["REQ", "s", {"limit": 1}]))
    assert json.loads(await asyncio.wait_for(relay.read_message(), 3))[0] == "EOSE"
    relay.close()


async def test_event_stream_origin_compares_scheme_host_and_port(igloo: Igloo) -> None:
    own = f"http://127.0.0.1:{igloo.port}"
    assert await stream_origin_ok(igloo, own)
    assert await stream_origin_ok(igloo, own + "/")
    for other in (f"https://127.0.0.1:{igloo.port}", f"http://127.0.0.1:{igloo.port + 1}",
                  "http://127.0.0.1", "null", "file://127.0.0.1"):
        assert not await stream_origin_ok(igloo, other), other


async def stream_origin_ok(igloo: Igloo, origin: str) -> bool:
    """True when the event stream keeps a socket opened with ``origin`` (a refused one closes with 1008)."""
    ws = await igloo.ws(headers={"X-API-Key": API_KEY, "Origin": origin})
    first = await read_frame(ws)
    if first is None:
        assert ws.close_code == 1008
        return False
    ws.close()
    return True


def test_host_policy_defaults() -> None:
    config = Settings(allowed_origins=("https://dash.example",), nip46_auth_url="https://auth.example/x")
    policy = HostPolicy(config)
    allowed = ["127.0.0.1:8002", "localhost", "LOCALHOST:1", "[::1]:8002", "10.1.2.3", "[2001:db8::1]:80",
               "dash.example", "auth.example:443", "localhost."]
    for host in allowed:
        assert policy.allows(host), host
    refused = (REBOUND, "127.0.0.1.nip.io", "localhost.evil.example", "0x7f.1", "", ":80", "dash.example.x")
    for host in refused:
        assert not policy.allows(host), host
    wildcard = HostPolicy(Settings(host_name="0.0.0.0"))
    assert not wildcard.allows(REBOUND) and wildcard.allows("192.0.2.7:8002")


def test_any_host_is_refused_with_auth_off() -> None:
    with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
        Settings.from_env({"ALLOWED_HOSTS": "*", "AUTH_ENABLED": "false"})
    assert HostPolicy(Settings.from_env({"ALLOWED_HOSTS": "*"})).allows(REBOUND)


@pytest.mark.parametrize("overrides", [AUTH_OFF])
async def test_refused_names_are_logged_once(igloo: Igloo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="igloo.http")
    for _ in range(20):
        await igloo.fetch("/api/status", headers={"Host": REBOUND})
    lines = [r for r in caplog.records if "refused a request for host" in r.getMessage()]
    assert len(lines) == 1 and REBOUND in lines[0].getMessage()


def test_origin_allowed_compares_the_scheme_too() -> None:
    class Request:
        protocol, host, headers = "https", "igloo.example", {}

    request: Any = Request()
    assert origin_allowed(None, request, False, ())  # not a browser
    assert origin_allowed("https://igloo.example:443", request, False, ())
    assert not origin_allowed("http://igloo.example", request, False, ())
    assert origin_allowed("http://igloo.example", request, False, ("http://igloo.example",))
    assert origin_allowed("https://x.example", request, False, ("*",))
