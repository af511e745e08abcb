"""/api/nip46/* and the NIP-46 pages through the real application on a loopback port (its embedded relay
carries the NIP-46 traffic): auth and XSRF, every route's shapes and status codes, the events each state
change publishes (once per change), and that a secret never appears in a response or an event."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.escape
import tornado.web

from config.settings import Settings
from node.nip46.bunker import Bunker, BunkerOptions
from node.nostr.event import Event, verify_event
from node.transport.pool import RelayPool
from server import build_application, open_state
from store.nip46 import Nip46Store
from tests.nip46.client import Nip46Client
from tests.nip46.conftest import Clock, KeySigner, until

pytestmark = pytest.mark.timeout(60)
API_KEY = "n" * 40
AUTH = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


class World:
    def __init__(self, tmp: Path, port: int, clock: Any = time.time, **options: Any) -> None:
        self.config = Settings(data_dir=tmp, api_key=API_KEY, credentials_key=secrets.token_bytes(32),
                               host_port=port)
        self.db, self.hub = open_state(self.config)
        self.relay = f"ws://127.0.0.1:{port}/"
        self.signer = KeySigner()
        self.signer.relays = [self.relay]
        self.bunker = Bunker(self.signer, Nip46Store(self.db, self.config.credentials_key or b""),
                             emit=self.hub.publish, pool_factory=RelayPool,
                             options=BunkerOptions(tick_interval=3600, connect_wait=1, publish_timeout=2,
                                                   **options), clock=clock)
        self.frames: list[dict[str, Any]] = []
        self.hub.add_listener(self.frames.append)

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f["type"] == type_]

    async def start(self) -> None:
        await self.bunker.start()
        assert await self.bunker._listener.wait_subscribed([self.relay], 5) == [self.relay]


@pytest.fixture
def bunker_options() -> dict[str, Any]:
    """Extra ``BunkerOptions`` for the world's bunker (a test parametrizes this); ``clock`` is its clock."""
    return {}


@pytest.fixture
def world(tmp_path: Path, http_server_port: tuple[Any, int], io_loop: Any,
          bunker_options: dict[str, Any]) -> Any:
    options = dict(bunker_options)
    w = World(tmp_path, http_server_port[1], options.pop("clock", time.time), **options)
    yield w
    io_loop.run_sync(w.bunker.stop, timeout=10)


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    return build_application(world.config, world.db, world.hub, None, bunker=world.bunker, bcrypt_rounds=4)


async def call(client: Any, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"method": method, "headers": AUTH if headers is None else headers,
                              "raise_error": False, "allow_nonstandard_methods": True}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method in ("POST", "PUT"):
        kwargs["body"] = "{}"
    response = await client.fetch(path, **kwargs)
    text = response.body.decode() if response.body else ""
    try:
        return response.code, json.loads(text) if text else None
    except json.JSONDecodeError:
        return response.code, text


def note(kind: int = 1) -> str:
    return json.dumps({"kind": kind, "created_at": int(time.time()), "tags": [], "content": "via the API"})


async def pair(c: Any, world: World) -> Nip46Client:
    code, link = await call(c, "POST", "/api/nip46/bunker")
    assert code == 200, link
    client = await Nip46Client([world.relay], link["pubkey"]).start()
    answer = await client.call("connect", [link["pubkey"], link["uri"].split("secret=")[1]])
    assert answer["result"] == "ack"
    return client


async def test_every_route_needs_auth_and_the_bunker(http_server_client: Any, world: World) -> None:
    c = http_server_client
    session = f"/api/nip46/sessions/{'ab' * 32}"
    routes = [("GET", "/api/nip46/bunker"), ("POST", "/api/nip46/bunker"), ("GET", "/api/nip46/transport"),
              ("POST", "/api/nip46/transport"), ("GET", "/api/nip46/relays"), ("PUT", "/api/nip46/relays"),
              ("POST", "/api/nip46/relays"), ("GET", "/api/nip46/requests"), ("POST", "/api/nip46/requests"),
              ("DELETE", "/api/nip46/requests"), ("POST", "/api/nip46/connect"),
              ("GET", "/api/nip46/sessions"), ("PUT", session + "/policy"), ("PUT", session + "/status"),
              ("DELETE", session)]
    for method, path in routes:
        code, body = await call(c, method, path, headers={"Content-Type": "application/json"})
        # without any credential (and no session cookie to forge) every call is a 401
        assert code == 401 and body["error"] == "Authentication required", (method, path)
        code, body = await call(c, method, path)
        assert code == 503 and "NIP-46 is not available" in body["error"], (method, path, body)
    response = await c.fetch("/nip46", follow_redirects=False, raise_error=False)
    assert response.code == 302 and response.headers["Location"].startswith("/login")


async def test_bunker_link_relays_transport_and_sessions(http_server_client: Any, world: World) -> None:
    await world.start()
    c = http_server_client
    code, status = await call(c, "GET", "/api/nip46/bunker")
    assert code == 200 and status["pubkey"] == world.bunker.pubkey and status["relays"] == [world.relay]
    assert status["listening"] is True and status["relayStatus"][0]["connected"] is True
    code, link = await call(c, "POST", "/api/nip46/bunker")
    assert code == 200 and set(link) == {"uri", "pubkey", "relays", "expiresAt"}
    assert link["uri"].startswith(f"bunker://{world.bunker.pubkey}?relay=")
    assert (await call(c, "GET", "/api/nip46/transport"))[1] == {"pubkey": world.bunker.pubkey}

    code, body = await call(c, "PUT", "/api/nip46/relays", {"relays": ["http://nope"]})
    assert code == 400 and body["error"].startswith("relays:")
    code, body = await call(c, "PUT", "/api/nip46/relays", {})
    assert code == 400 and body["error"].startswith("relays:")
    extra = "ws://127.0.0.1:1/"
    code, body = await call(c, "POST", "/api/nip46/relays", {"relays": [extra]})
    assert code == 200 and body == {"relays": [world.relay, extra], "source": "custom"}
    assert world.bunker._listener.urls == [world.relay, extra]  # live, no restart
    code, body = await call(c, "PUT", "/api/nip46/relays", {"relays": None})
    assert code == 200 and body == {"relays": [world.relay], "source": "node"}
    assert world.bunker._listener.urls == [world.relay]

    client = await pair(c, world)
    try:
        code, body = await call(c, "GET", "/api/nip46/sessions")
        [session] = body["sessions"]
        assert session["pubkey"] == client.pubkey and session["status"] == "active"
        assert session["policy"]["methods"]["sign_event"] == "ask"
        path = f"/api/nip46/sessions/{client.pubkey}"
        code, body = await call(c, "PUT", path + "/policy", {"kinds": {"1": True, "4": "deny"}})
        assert code == 200 and body["session"]["policy"]["kinds"] == {"1": "allow", "4": "deny"}
        code, body = await call(c, "PUT", path + "/policy", {"methods": {"nope": True}})
        assert code == 400 and body["error"].startswith("policy.methods")
        assert (await call(c, "PUT", f"/api/nip46/sessions/{'cd' * 32}/policy", {"kinds": {}}))[0] == 404
        assert (await call(c, "PUT", "/api/nip46/sessions/xyz/policy", {"kinds": {}}))[0] == 400
        signed = await client.call("sign_event", [note()])
        verify_event(Event.from_json(json.loads(signed["result"])))
        code, body = await call(c, "PUT", path + "/status", {"status": "paused"})
        assert code == 200 and body["session"]["status"] == "paused"
        assert (await call(c, "PUT", path + "/status", {"status": "weird"}))[0] == 400
        code, body = await call(c, "DELETE", path)
        assert code == 200 and body == {"ok": True}
        assert (await call(c, "DELETE", path))[0] == 404
        assert "unauthorized" in (await client.call("ping"))["error"]
        changes = [d["change"] for d in world.of("nip46:session_pending")]
        assert changes == ["paired", "policy", "paused", "revoked"]  # one event per change

        code, body = await call(c, "POST", "/api/nip46/transport")
        assert code == 200 and body["pubkey"] != client.bunker
        assert world.bunker._listener.pubkey == body["pubkey"]
    finally:
        await client.close()


async def test_requests_are_decided_over_rest_with_one_event_per_change(
        http_server_client: Any, world: World) -> None:
    await world.start()
    c = http_server_client
    client = await pair(c, world)
    try:
        rid = await client.send("sign_event", [note()])
        await until(lambda: world.bunker.pending())
        code, body = await call(c, "GET", "/api/nip46/requests?status=pending")
        [pending] = body["requests"]
        assert code == 200 and pending["requestId"] == rid and pending["status"] == "pending"
        assert "params" not in pending and "via the API" in pending["preview"]["content"]
        assert (await call(c, "GET", "/api/nip46/requests?status=nope"))[0] == 400
        assert (await call(c, "GET", "/api/nip46/requests?limit=0"))[0] == 400
        maybe = {"id": pending["id"], "action": "maybe"}
        assert (await call(c, "POST", "/api/nip46/requests", maybe))[0] == 400
        assert (await call(c, "POST", "/api/nip46/requests", {"action": "approve"}))[0] == 400
        assert (await call(c, "POST", "/api/nip46/requests", {"id": "nope", "action": "approve"}))[0] == 404
        code, body = await call(c, "DELETE", "/api/nip46/requests", {"id": pending["id"]})
        assert code == 409
        code, body = await call(c, "POST", "/api/nip46/requests", {"id": pending["id"], "action": "approve"})
        assert code == 200 and body["request"]["status"] == "approved"
        code, body = await call(c, "POST", "/api/nip46/requests", {"id": pending["id"], "action": "approve"})
        assert code == 409 and "no longer" in body["error"]
        verify_event(Event.from_json(json.loads((await client.wait(rid))[0]["result"])))
        await world.bunker.settle()
        [queued] = world.of("nip46:request")
        assert queued["id"] == pending["id"] and queued["status"] == "pending"
        assert [d["status"] for d in world.of("nip46:request_status")] == ["approved", "completed"]
        assert len(world.signer.signed) == 1
        code, body = await call(c, "DELETE", "/api/nip46/requests", {"id": pending["id"]})
        assert code == 200 and body == {"ok": True}
        assert (await call(c, "GET", "/api/nip46/requests"))[1] == {"requests": []}
    finally:
        await client.close()


async def test_nostrconnect_over_rest(http_server_client: Any, world: World) -> None:
    await world.start()
    c = http_server_client
    client = Nip46Client([world.relay], world.bunker.pubkey or "")
    await client.start()
    try:
        uri = f"nostrconnect://{client.pubkey}?relay={world.relay}&secret=abc123&perms=sign_event:1&name=Web"
        assert (await call(c, "POST", "/api/nip46/connect", {"uri": "nostrconnect://x"}))[0] == 400
        code, body = await call(c, "POST", "/api/nip46/connect", {"uri": uri, "grant": ["nip04_decrypt"]})
        assert code == 400 and body["error"].startswith("grant")
        code, body = await call(c, "POST", "/api/nip46/connect", {"uri": uri, "grant": ["sign_event:1"]})
        assert code == 200 and body["success"] is True and body["relays"][0]["accepted"] is True
        assert body["session"]["policy"]["kinds"] == {"1": "allow"}
        assert body["session"]["origin"] == "nostrconnect"
        await until(lambda: [r for r in client.responses if r.get("result") == "abc123"])
        dead = "ws://127.0.0.1:1/"
        code, body = await call(c, "POST", "/api/nip46/connect",
                                {"uri": f"nostrconnect://{'ef' * 32}?relay={dead}&secret=s"})
        assert code == 502 and body["success"] is False and body["relays"][0]["accepted"] is False
    finally:
        await client.close()


LIMIT_CLOCK = Clock()


@pytest.mark.parametrize("bunker_options",
                         [{"clock": LIMIT_CLOCK, "session_limit": 1, "session_window": 600}])
async def test_nostrconnect_pairings_over_the_session_limit_get_429_with_retry_after(
        http_server_client: Any, world: World) -> None:
    clock = LIMIT_CLOCK
    await world.start()
    c = http_server_client
    apps = [Nip46Client([world.relay], world.bunker.pubkey or "") for _ in range(2)]
    try:
        for app_client in apps:
            await app_client.start()
        first, second = (f"nostrconnect://{a.pubkey}?relay={world.relay}&secret=s{n}"
                         for n, a in enumerate(apps))
        code, _ = await call(c, "POST", "/api/nip46/connect", {"uri": first})
        assert code == 200
        response = await c.fetch("/api/nip46/connect", method="POST", headers=AUTH,
                                 body=json.dumps({"uri": second}), raise_error=False)
        assert response.code == 429 and response.headers["Retry-After"] == "600"
        assert "too many new sessions" in json.loads(response.body)["error"]
        assert [s.client_pubkey for s in world.bunker.sessions()] == [apps[0].pubkey]
        # the confirmation page says so too
        page = await c.fetch("/nip46", headers={"X-API-Key": API_KEY})
        token = re.search(r"_xsrf=([^;]+)", page.headers["Set-Cookie"]).group(1)  # type: ignore[union-attr]
        form = {"X-API-Key": API_KEY, "Cookie": f"_xsrf={token}"}
        confirm = await c.fetch("/nip46/connect/confirm", method="POST", headers=form, raise_error=False,
                                body=f"_xsrf={token}&uri=" + tornado.escape.url_escape(second))
        assert confirm.code == 429 and confirm.headers["Retry-After"] == "600"
        assert "try again in 600 seconds" in confirm.body.decode()
        clock.advance(600)  # one new session per 600 s: the budget is back
        code, body = await call(c, "POST", "/api/nip46/connect", {"uri": second})
        assert code == 200 and body["session"]["pubkey"] == apps[1].pubkey
    finally:
        for app_client in apps:
            await app_client.close()


async def test_pages_show_the_link_and_qr_and_confirm_nostrconnect(
        http_server_client: Any, world: World) -> None:
    await world.start()
    c = http_server_client
    response = await c.fetch("/nip46", headers={"X-API-Key": API_KEY})
    html = response.body.decode()
    assert response.code == 200 and "<svg" in html and "bunker://" in html
    uri = re.search(r'data-bunker-uri>([^<]+)<', html).group(1)  # type: ignore[union-attr]
    assert uri.startswith(f"bunker://{world.bunker.pubkey}")
    assert (await c.fetch("/nip46", method="POST", body="", raise_error=False)).code == 403  # XSRF
    token = re.search(r"_xsrf=([^;]+)", response.headers["Set-Cookie"]).group(1)  # type: ignore[union-attr]
    form = {"X-API-Key": API_KEY, "Cookie": f"_xsrf={token}"}
    response = await c.fetch("/nip46/connect", method="POST", headers=form,
                             body=f"_xsrf={token}&uri=" + "nostrconnect%3A%2F%2F" + "ab" * 32 +
                             "%3Frelay%3Dws%3A%2F%2Fa%26secret%3Ds%26perms%3Dsign_event%3A1%2Cnip44_encrypt"
                             "%26name%3DMy%2520App", raise_error=False)
    page = response.body.decode()
    assert response.code == 200 and "My App" in page
    assert page.count('type="checkbox" name="grant"') == 2 and "checked" not in page
    bad = await c.fetch("/nip46/connect", method="POST", headers=form, body=f"_xsrf={token}&uri=nope",
                        raise_error=False)
    assert bad.code == 400 and "uri:" in bad.body.decode()


async def test_no_secret_in_responses_events_or_the_database(http_server_client: Any, world: World,
                                                             tmp_path: Path) -> None:
    await world.start()
    c = http_server_client
    client = await pair(c, world)
    await client.close()
    seckey = world.bunker._sk
    assert seckey is not None
    everything = json.dumps(world.frames)
    for path in ("/api/nip46/bunker", "/api/nip46/transport", "/api/nip46/sessions", "/api/nip46/requests"):
        everything += json.dumps((await call(c, "GET", path))[1])
    assert seckey.hex() not in everything
    raw = (tmp_path / "igloo.db").read_bytes() + (tmp_path / "igloo.db-wal").read_bytes()
    assert seckey not in raw and seckey.hex().encode() not in raw


def test_the_session_limit_settings_reach_the_bunker(tmp_path: Path) -> None:
    from server import build_bunker

    config = Settings(data_dir=tmp_path, credentials_key=secrets.token_bytes(32),
                      nip46_session_rate_limit_max=7, nip46_session_rate_limit_window=60)
    db, hub = open_state(config)
    bunker = build_bunker(config, db, hub, None)  # type: ignore[arg-type]  # the node is not used to build
    assert bunker is not None
    assert (bunker.options.session_limit, bunker.options.session_window) == (7, 60.0)
    assert bunker._new_sessions.burst == 7 and bunker._new_sessions.rate == 7 / 60
