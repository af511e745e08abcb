"""The dashboard's relays, peers and activity through the real application on a loopback port (a queue
network behind the node, real SQLite): /api/relays, POST /api/env {RELAYS}, /api/activity, the card fragments
and their server-rendered SVG, and the stores and charts behind them."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import jinja2
import pytest
import tornado.web

from config.settings import Settings
from handlers.charts import activity_svg, sparkline_svg
from handlers.relays import relay_settings
from node import NodeManager, NodeOptions, NodeService
from node.activity import ActivityRecord, classify
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from server import TEMPLATES_DIR, build_application, open_state
from store.activity import ActivityBucket, ActivitySeries, ActivityStore
from store.credentials import CredentialStore
from store.db import Database
from store.policies import SqlitePolicyStore
from store.relays import RelayListStore
from store.users import UserStore
from tests.node.fakenet import FakeNetwork
from tests.server.test_auth import xsrf_pair

pytestmark = pytest.mark.timeout(60)
API_KEY = "d" * 40
AUTH = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
PASSWORD = "correct horse battery"


class World:
    """This node (share 1, credentials from the environment) and its two peers on a fake network."""

    def __init__(self, tmp: Path) -> None:
        self.key = secrets.token_bytes(32)
        self.group, self.shares = generate_dealer_pkg_gen(2, 3)
        self.config = Settings(data_dir=tmp, api_key=API_KEY, credentials_key=self.key, sign_timeout=1.0,
                               relays=("ws://127.0.0.1:7001/",))
        self.db, self.hub = open_state(self.config)
        self.net = FakeNetwork()
        self.activity = ActivityStore(self.db)
        self.manager = NodeManager(
            emit=self.hub.publish,
            options=NodeOptions(sign_timeout=1.0, ping_interval=3600),
            default_relays=list(self.config.effective_relays), relays_from_env=True,
            env_group=encode_group(self.group), env_share=encode_share(self.shares[0]),
            credential_store=CredentialStore(self.db, self.key), policy_store=SqlitePolicyStore(self.db),
            relay_store=RelayListStore(self.db), activity=self.activity, pool_factory=self.net.factory,
        )
        self.peers: list[NodeService] = []

    async def start(self) -> None:
        for share in self.shares[1:]:
            peer = NodeService(self.group, share, ["ws://127.0.0.1:7001/"], emit=lambda *a: None,
                               pool_factory=self.net.factory, options=NodeOptions(sign_timeout=1.0))
            await peer.start()
            self.peers.append(peer)
        await self.manager.boot()

    async def stop(self) -> None:
        await self.manager.stop()
        for peer in self.peers:
            await peer.stop()


@pytest.fixture
def world(tmp_path: Path, io_loop: Any) -> Any:
    w = World(tmp_path)
    io_loop.run_sync(w.start)
    yield w
    io_loop.run_sync(w.stop)


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    return build_application(world.config, world.db, world.hub, world.manager, bcrypt_rounds=4)


async def call(client: Any, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"method": method, "headers": AUTH if headers is None else headers,
                              "raise_error": False}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
    elif method in ("POST", "PUT"):
        kwargs["body"] = "{}"
    response = await client.fetch(path, **kwargs)
    text = response.body.decode() if response.body else ""
    try:
        return response.code, json.loads(text) if text else None
    except json.JSONDecodeError:
        return response.code, text


async def test_relays_api_moves_the_running_node(http_server_client: Any, world: World) -> None:
    c = http_server_client
    service = world.manager.service
    assert service is not None
    assert (await call(c, "GET", "/api/relays", headers={}))[0] == 401
    code, body = await call(c, "GET", "/api/relays")
    assert code == 200 and body["relays"] == ["ws://127.0.0.1:7001/"] and body["source"] == "environment"
    assert body["override"] is False and body["warning"] is None and body["nodeActive"] is True
    assert body["relayDetails"][0]["url"] == "ws://127.0.0.1:7001/" and "rtt" in body["relayDetails"][0]

    too_many = [f"ws://127.0.0.1:{n}/" for n in range(1000, 1040)]
    for bad, field_error in [({}, "relays: required"), ({"relays": []}, "relays: at least one"),
                             ({"relays": ["http://x/"]}, "relays:"),
                             ({"relays": "ws://a ws://b\x00"}, "relays:"), ({"relays": too_many}, "relays:"),
                             ({"relays": [1]}, "relays:")]:
        code, body = await call(c, "PUT", "/api/relays", bad)
        assert code == 400 and body["error"].startswith(field_error), (bad, body)
    assert service.relays == ["ws://127.0.0.1:7001/"]

    code, body = await call(c, "PUT", "/api/relays", {"relays": "ws://127.0.0.1:7002/, ws://127.0.0.1:7003/"})
    assert code == 200 and body["applied"] is True and body["source"] == "dashboard" and body["override"]
    assert body["relays"] == ["ws://127.0.0.1:7002/", "ws://127.0.0.1:7003/"]
    assert body["default"] == {"relays": ["ws://127.0.0.1:7001/"], "source": "environment"}
    assert world.manager.service is service and service.relays == body["relays"]  # moved, not restarted
    status = (await call(c, "GET", "/api/status"))[1]
    assert [r["url"] for r in status["relayDetails"]] == body["relays"]

    # POST /api/env {RELAYS} alone does the same, with credentials from the environment too.
    code, body = await call(c, "POST", "/api/env", {"RELAYS": ["ws://127.0.0.1:7004/"]})
    assert code == 200 and body["success"] is True
    assert service.relays == ["ws://127.0.0.1:7004/"] and world.manager.service is service
    assert (await call(c, "GET", "/api/env"))[1]["RELAYS"] == ["ws://127.0.0.1:7004/"]

    code, body = await call(c, "DELETE", "/api/relays")
    assert code == 200 and body["source"] == "environment" and body["relays"] == ["ws://127.0.0.1:7001/"]
    assert service.relays == ["ws://127.0.0.1:7001/"]
    messages = [e["message"] for e in recorded(world)]
    assert "Relay list set on the dashboard (wins over RELAYS until cleared)" in messages
    assert "Relay list cleared: using the relays from environment" in messages
    assert messages.count("Relays changed") == 3


async def test_browser_writes_need_the_xsrf_token(http_server_client: Any, world: World) -> None:
    c = http_server_client
    UserStore(world.db, rounds=4).create_sync("alice", PASSWORD)
    login = await c.fetch("/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
                          body=json.dumps({"username": "alice", "password": PASSWORD}))
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    # The session's own XSRF token, as the dashboard carries it.
    token, xsrf_cookie = xsrf_pair((await c.fetch("/dashboard", headers={"Cookie": cookie})).headers)
    json_type = {"Content-Type": "application/json"}
    body = json.dumps({"relays": ["ws://127.0.0.1:7002/"]})
    refused = await c.fetch("/api/relays", method="PUT", body=body, raise_error=False,
                            headers={"Cookie": cookie, **json_type})
    assert refused.code == 403 and world.manager.relays() == ["ws://127.0.0.1:7001/"]
    allowed = await c.fetch("/api/relays", method="PUT", body=body, raise_error=False,
                            headers={"Cookie": f"{cookie}; {xsrf_cookie}", "X-XSRFToken": token, **json_type})
    assert allowed.code == 200 and world.manager.relays() == ["ws://127.0.0.1:7002/"]

    # The dashboard page shows the list, where it comes from, the way back, and the add form.
    page = (await c.fetch("/dashboard", headers={"Cookie": cookie})).body.decode()
    assert 'data-relay="ws://127.0.0.1:7002/" data-state="connected"' in page
    assert 'data-source="dashboard"' in page and "data-relay-reset" in page and "data-relay-add" in page
    assert "ws://127.0.0.1:7001/" in page  # the environment's list, shown as the way back
    fragment = await c.fetch("/dashboard/cards/relays", headers={"Cookie": cookie})
    assert fragment.code == 200 and fragment.headers["Cache-Control"] == "no-store"
    assert 'data-slot="relays-summary"' in fragment.body.decode()
    assert 'data-slot="relays-body"' in fragment.body.decode()
    assert (await c.fetch("/dashboard/cards/relays", raise_error=False)).code == 401
    assert (await c.fetch("/dashboard/cards/nope", raise_error=False, headers={"Cookie": cookie})).code == 404


async def test_peer_card_ping_history_policy_and_budget(http_server_client: Any, world: World) -> None:
    c = http_server_client
    peer2, peer3 = world.peers
    code, html = await call(c, "GET", "/dashboard/cards/peers", headers={"X-API-Key": API_KEY})
    assert code == 200
    rows = re.findall(r'<li class="peer peer-row" data-pubkey="([0-9a-f]{64})"', html)
    assert rows == [peer2.pubkey, peer3.pubkey]
    assert html.count('<svg class="spark"') == 2 and 'data-samples="0"' in html and "No pings yet" in html

    code, body = await call(c, "POST", "/api/peers/ping", {"target": "all"})
    assert code == 200 and all(r["success"] for r in body["results"])
    await call(c, "POST", "/api/peers/ping", {"target": peer2.pubkey})
    html = (await call(c, "GET", "/dashboard/cards/peers", headers={"X-API-Key": API_KEY}))[1]
    spark2, spark3 = re.findall(r'<svg class="spark"[^>]*data-samples="(\d+)"', html)
    assert (spark2, spark3) == ("2", "1")
    assert html.count('class="spark-line"') == 1 and html.count('class="spark-last"') == 2
    assert 'data-peer-online>2<' in html

    # Peer 2 asks this node to sign (only this node: its policy never asks peer 3).
    peer2.policies.set(peer3.pubkey, send=False)
    await peer2.sign_message(secrets.token_hex(32))
    html = (await call(c, "GET", "/dashboard/cards/peers", headers={"X-API-Key": API_KEY}))[1]
    assert 'data-peer-budget="1"' in html and f"budget 1/{NodeOptions().sign_budget}" in html

    # Answer off for peer 2: its next request is refused, the toggle and the Reset button say so.
    code, _ = await call(c, "PUT", f"/api/peers/{peer2.pubkey}/policy", {"allowReceive": False})
    assert code == 200
    with pytest.raises(Exception):  # noqa: B017 - the requester times out, whatever its error type
        await peer2.sign_message(secrets.token_hex(32))
    html = (await call(c, "GET", "/dashboard/cards/peers", headers={"X-API-Key": API_KEY}))[1]
    row = html[html.index(f'data-pubkey="{peer2.pubkey}"'):html.index(f'data-pubkey="{peer3.pubkey}"')]
    assert 'data-explicit="true"' in row
    assert re.search(r'data-policy="recv"[^>]*>', row) and "checked" not in re.search(
        r'data-policy="recv"[^>]*>', row).group(0)
    assert "checked" in re.search(r'data-policy="send"[^>]*>', row).group(0)
    assert 'data-peer-budget="1"' in row  # a refused request spends nothing

    code, body = await call(c, "GET", "/api/activity")
    assert code == 200 and len(body["buckets"]) == 48 and body["bucketSeconds"] == 1800
    assert body["totals"] == {"signRequested": 0, "ecdhRequested": 0, "signAnswered": 1, "ecdhAnswered": 0,
                              "failed": 0, "refused": 1}
    recent = [b["sign"]["responder"] for b in body["buckets"][-2:]]  # now, or before the half hour turned
    assert sum(r["ok"] for r in recent) == 1 and sum(r["refused"] for r in recent) == 1

    # This node signs: counted as requester. A peer that never answers: counted as failed.
    assert (await call(c, "POST", "/api/sign", {"message": secrets.token_hex(32)}))[0] == 200
    await peer3.stop()
    await call(c, "PUT", f"/api/peers/{peer2.pubkey}/policy", {"allowSend": False})
    assert (await call(c, "POST", "/api/sign", {"message": secrets.token_hex(32)}))[0] == 504
    body = (await call(c, "GET", "/api/activity?hours=1"))[1]
    assert len(body["buckets"]) == 2
    assert body["totals"]["signRequested"] == 1 and body["totals"]["failed"] == 1
    html = (await call(c, "GET", "/dashboard/cards/activity", headers={"X-API-Key": API_KEY}))[1]
    assert html.count('data-mark="refused"') == 1 and html.count('data-mark="failed"') == 1
    assert '<b data-act="signAnswered">1</b>' in html and '<b data-act="refused">1</b>' in html
    for bad in ("0", "169", "x", "-1"):
        code, body = await call(c, "GET", f"/api/activity?hours={bad}")
        assert code == 400 and body["error"].startswith("hours:")


def recorded(world: World) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in world.hub.ring.since(0).events]


def test_activity_store_buckets_retention_and_bounds(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    db = Database.open_in(tmp_path)
    store = ActivityStore(db, clock=lambda: now[0])
    store.record(ActivityRecord("sign", "requester", "ok", 3))
    store.record(ActivityRecord("sign", "requester", "ok", 2))
    store.record(ActivityRecord("ecdh", "responder", "refused"))
    store.record(ActivityRecord("sign", "responder", "ok", 10**9))  # capped
    store.record(ActivityRecord("nonsense", "requester", "ok"))  # ignored
    series = store.series(24)
    assert len(series.buckets) == 48 and series.buckets[-1].start <= now[0] < series.buckets[-1].start + 1800
    assert series.total("sign", "requester", "ok") == 5 and series.total(None, "responder", "refused") == 1
    assert series.total("sign", "responder", "ok") == 1000
    assert db.query_one("SELECT COUNT(*) FROM activity")[0] == 3

    now[0] += 3 * 86400  # three days on: outside the chart, still kept
    store.record(ActivityRecord("sign", "requester", "ok"))
    assert store.series(24).total() == 1 and store.series(96).total() == 1007
    now[0] += 8 * 86400  # past the week of retention: the old buckets are deleted on the next record
    store.record(ActivityRecord("ecdh", "requester", "ok"))
    assert db.query_one("SELECT COUNT(*) FROM activity")[0] == 1
    db.close()


@pytest.mark.parametrize(("event", "expected"), [
    (("sign", "Signature shares aggregated", {"signatures": [[1], [2]]}), ("sign", "requester", "ok", 2)),
    (("sign", "Signature response sent", {"sighashes": ["a"]}), ("sign", "responder", "ok", 1)),
    (("sign", "Signature request rejected: budget exhausted", {"from": "p"}),
     ("sign", "responder", "refused", 1)),
    (("sign", "Signature request rejected: timeout", {"sid": "s", "silent": ["p"]}),
     ("sign", "requester", "failed", 1)),
    (("sign", "Signature share aggregation failed: bad", {"peer": "p"}), ("sign", "requester", "failed", 1)),
    (("ecdh", "ECDH shares aggregated", {"ecdh_pk": "x"}), ("ecdh", "requester", "ok", 1)),
    (("ecdh", "ECDH response sent", {}), ("ecdh", "responder", "ok", 1)),
    (("ecdh", "ECDH request rejected: unauthorized", {"from": "p"}), ("ecdh", "responder", "refused", 1)),
    (("sign", "Signature request received", {"from": "p"}), None),
    (("sign", "Signature request sent", {}), None),
    (("info", "Signature response sent", {}), None),
])
def test_activity_classification(
    event: tuple[str, str, Any], expected: tuple[str, str, str, int] | None
) -> None:
    record = classify(*event)
    assert (None if record is None else (record.kind, record.role, record.outcome, record.count)) == expected


def test_sparkline_and_activity_svg() -> None:
    empty = sparkline_svg([])
    assert 'data-samples="0"' in empty and "No pings yet" in empty and "<polyline" not in empty
    spark = sparkline_svg([(1.0, 10.0), (2.0, 30.0), (3.0, None), (4.0, 20.0)])
    assert spark.count('class="spark-lost"') == 1 and spark.count("<polyline") == 1  # the lost ping splits
    assert 'class="spark-dot"' in spark and "10 to 30 ms, last 20 ms (1 lost)" in spark
    points = re.search(r'points="([^"]+)"', spark).group(1).split()  # type: ignore[union-attr]
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[1] < ys[0]  # higher latency is drawn higher
    assert len(sparkline_svg([(float(i), 5.0) for i in range(100)]).split("<polyline")) == 2
    assert 'data-samples="30"' in sparkline_svg([(float(i), 5.0) for i in range(100)])

    buckets = [ActivityBucket(i * 1800, {}) for i in range(47)]
    buckets.append(ActivityBucket(47 * 1800, {("sign", "requester", "ok"): 4, ("ecdh", "responder", "ok"): 2,
                                              ("sign", "responder", "refused"): 1}))
    svg = activity_svg(ActivitySeries(buckets, 1800, 48 * 1800.0))
    assert svg.count('class="act-col"') == 48 and 'data-max="4"' in svg
    assert svg.count('data-mark="refused"') == 1 and 'data-mark="failed"' not in svg
    last = svg[svg.rindex('<g class="act-col"'):]
    assert "asked by this signer: 4 signatures" in last and "answered for peers: 2 ECDH" in last
    assert "refused: 1" in last and "23:30 to 00:00 UTC" in last
    assert "asked for 4 signatures and 0 ECDH (0 failed)" in svg and "refused 1." in svg


async def test_dashboard_shows_the_exposed_server_warning(tmp_path: Path) -> None:
    """An exposed server whose node only has the embedded relay: the page and /api/relays carry the fix."""
    group, shares = generate_dealer_pkg_gen(2, 3)
    manager = NodeManager(emit=lambda *a: None, options=NodeOptions(ping_interval=3600),
                          default_relays=["ws://127.0.0.1:8002/"], env_group=encode_group(group),
                          env_share=encode_share(shares[0]), pool_factory=FakeNetwork().factory, exposed=True)
    await manager.boot()
    try:
        settings = relay_settings(manager)
        assert settings["source"] == "embedded" and "Fix: add a relay your peers use" in settings["warning"]
        templates = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                                       undefined=jinja2.StrictUndefined)
        html = templates.get_template("_relays.html").render(
            render_slots=True, relay_card={**settings, "editable": True, "connected": 1})
        assert 'role="alert" data-relay-warning' in html and "RELAYS=wss://relay.example.com" in html
        assert "data-relay-remove" not in html  # the only relay cannot be removed
    finally:
        await manager.stop()
