"""The node's REST API through the real server application on a loopback port (queue network behind
the node): auth, credentials in (never out, encrypted at rest), sign, NIP-44/NIP-04, policies, ping,
recover, 4xx/503/504."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.web

from config.settings import Settings
from handlers import api
from node import NodeManager, NodeOptions, NodeService
from node.crypto import curve
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen, recover_secret
from node.nostr import nip04, nip19, nip44
from node.nostr.event import compute_event_id
from server import build_application, open_state
from store.credentials import CredentialStore
from store.policies import SqlitePolicyStore
from store.relays import RelayListStore
from tests.node.fakenet import FakeNetwork

pytestmark = pytest.mark.timeout(60)
API_KEY = "k" * 40
AUTH = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


class World:
    def __init__(self, tmp: Path) -> None:
        self.key = secrets.token_bytes(32)
        self.config = Settings(data_dir=tmp, api_key=API_KEY, credentials_key=self.key, sign_timeout=1.0)
        self.db, self.hub = open_state(self.config)
        self.net = FakeNetwork()
        self.group, self.shares = generate_dealer_pkg_gen(2, 3)
        self.manager = NodeManager(
            emit=self.hub.publish,
            options=NodeOptions(sign_timeout=1.0, ping_interval=3600),
            default_relays=["fake://relay"],
            credential_store=CredentialStore(self.db, self.key),
            relay_store=RelayListStore(self.db),
            policy_store=SqlitePolicyStore(self.db),
            pool_factory=self.net.factory,
        )
        self.peers: list[NodeService] = []

    async def start_peers(self) -> None:
        for share in self.shares[1:]:
            peer = NodeService(
                self.group,
                share,
                ["fake://relay"],
                emit=lambda *a: None,
                pool_factory=self.net.factory,
                options=NodeOptions(sign_timeout=1.0),
            )
            await peer.start()
            self.peers.append(peer)


@pytest.fixture
def world(tmp_path: Path, io_loop: Any) -> Any:
    w = World(tmp_path)
    yield w
    io_loop.run_sync(w.manager.stop)


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    application = build_application(world.config, world.db, world.hub, world.manager, bcrypt_rounds=4)
    application.add_handlers(r".*", api.ROUTES)
    return application


async def call(
    client: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {
        "method": method,
        "headers": AUTH if headers is None else headers,
        "raise_error": False,
    }
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method in ("POST", "PUT"):
        kwargs["body"] = "{}"
    response = await client.fetch(path, **kwargs)
    text = response.body.decode() if response.body else ""
    return response.code, json.loads(text) if text else None


async def test_api_without_node_and_auth(http_server_client: Any, world: World) -> None:
    c = http_server_client
    code, body = await call(c, "GET", "/api/peers", headers={})
    assert code == 401
    for method, path in (
        ("GET", "/api/peers"),
        ("POST", "/api/sign"),
        ("POST", "/api/nip44/encrypt"),
        ("GET", "/api/peers/self"),
    ):
        code, body = await call(c, method, path)
        assert code == 503 and body["error"] == "Node not available"
    code, body = await call(c, "GET", "/api/env")
    assert code == 200 and body["hasCredentials"] is False and "GROUP_CRED" not in body
    code, body = await call(
        c, "POST", "/api/env", {"GROUP_CRED": encode_group(world.group), "SHARE_CRED": "bfshare1nope"}
    )
    assert code == 400 and body["error"].startswith("SHARE_CRED")
    _, other_shares = generate_dealer_pkg_gen(2, 3)
    code, body = await call(
        c,
        "POST",
        "/api/env",
        {"GROUP_CRED": encode_group(world.group), "SHARE_CRED": encode_share(other_shares[0])},
    )
    assert code == 400 and "does not belong" in body["error"]
    code, body = await call(
        c, "POST", "/api/env", {"GROUP_CRED": "bfgroup1xyz", "SHARE_CRED": encode_share(world.shares[0])}
    )
    assert code == 400 and body["error"].startswith("GROUP_CRED")
    assert world.manager.service is None


async def test_full_api_flow(http_server_client: Any, world: World, tmp_path: Path) -> None:
    c = http_server_client
    await world.start_peers()
    share_text = encode_share(world.shares[0])
    code, body = await call(
        c,
        "POST",
        "/api/env",
        {
            "GROUP_CRED": encode_group(world.group),
            "SHARE_CRED": share_text,
            "RELAYS": ["fake://relay"],
            "API_KEY": "nope",
        },
    )
    assert code == 400  # RELAYS must be ws(s)://
    code, body = await call(
        c, "POST", "/api/env", {"GROUP_CRED": encode_group(world.group), "SHARE_CRED": share_text, "X": 1}
    )
    assert code == 200 and body["success"] and body["rejectedKeys"] == ["X"]
    node = world.manager.service
    assert node is not None and node.pubkey == world.shares[0].pubkey_xonly()

    # never returned, encrypted at rest
    for path in ("/api/env", "/api/status", "/api/peers", "/api/peers/self", "/api/peers/group"):
        code, body = await call(c, "GET", path)
        assert code == 200 and share_text not in json.dumps(body)
        assert world.shares[0].seckey.hex() not in json.dumps(body)
    code, status = await call(c, "GET", "/api/status")
    assert status["nodeActive"] and status["hasCredentials"] and status["relays"] == ["fake://relay"]
    assert status["relayDetails"][0]["url"] == "fake://relay"
    assert nip19.npub_decode(status["groupNpub"]).hex() == node.group_pubkey
    for f in tmp_path.iterdir():
        if f.is_file():
            assert share_text.encode() not in f.read_bytes()

    code, group_info = await call(c, "GET", "/api/peers/group")
    assert group_info == {"pubkey": node.group_pubkey, "threshold": 2, "totalShares": 3}

    # sign a message and an event
    msg = secrets.token_hex(32)
    code, body = await call(c, "POST", "/api/sign", {"message": msg})
    assert code == 200 and body["id"] == msg
    assert curve.schnorr_verify(
        bytes.fromhex(node.group_pubkey), bytes.fromhex(msg), bytes.fromhex(body["signature"])
    )
    event = {"kind": 1, "created_at": 1_700_000_000, "tags": [["t", "x"]], "content": "hello"}
    code, body = await call(c, "POST", "/api/sign", {"event": event})
    expected_id = compute_event_id(node.group_pubkey, 1_700_000_000, 1, [["t", "x"]], "hello")
    assert code == 200 and body["id"] == expected_id
    assert curve.schnorr_verify(
        bytes.fromhex(node.group_pubkey), bytes.fromhex(expected_id), bytes.fromhex(body["signature"])
    )
    signed = {**event, "pubkey": node.group_pubkey, "id": expected_id, "sig": body["signature"]}
    assert body["event"] == signed
    code, body = await call(c, "POST", "/api/sign", {"event": {"kind": 7, "created_at": 1_700_000_001}})
    assert code == 200 and set(body["event"]) == {"kind", "created_at", "pubkey", "id", "sig"}  # as sent
    for bad, field in (
        ({"message": "zz"}, "message"),
        ({"event": {"kind": 1, "created_at": 1, "pubkey": "ab" * 32}}, "event.pubkey"),
        ({"event": {"kind": -1, "created_at": 1}}, "event.kind"),
        ({"event": {"kind": 1, "created_at": 1, "tags": "x"}}, "event.tags"),
        ({"event": {"kind": 1, "created_at": 2**53}}, "event.created_at"),  # a client could not read it back
    ):
        code, body = await call(c, "POST", "/api/sign", bad)
        assert code == 400 and body["error"].startswith(field)

    # NIP-44 / NIP-04 follow the standards: the peer decrypts with its own key and the group pubkey
    secret = recover_secret(world.group, world.shares[:2])
    group_pub = curve.base_mul(int.from_bytes(secret, "big"))
    peer_sk = secrets.token_bytes(32)
    peer_pk = curve.pubkey_of(peer_sk)[1:].hex()
    conv = nip44.conversation_key(peer_sk, group_pub[1:])
    code, body = await call(c, "POST", "/api/nip44/encrypt", {"peer_pubkey": peer_pk, "content": "hi 44"})
    assert code == 200 and nip44.decrypt(conv, body["result"]) == "hi 44"
    code, body = await call(
        c,
        "POST",
        "/api/nip44/decrypt",
        {"peer_pubkey": peer_pk, "content": nip44.encrypt_gen(conv, "back 44")},
    )
    assert code == 200 and body["result"] == "back 44"
    shared_x = curve.ecdh_x(peer_sk, group_pub)
    code, body = await call(c, "POST", "/api/nip04/encrypt", {"pubkey": peer_pk, "content": "hi 04"})
    assert code == 200 and nip04.decrypt(shared_x, body["result"]) == "hi 04"
    code, body = await call(
        c,
        "POST",
        "/api/nip04/decrypt",
        {"peer_pubkey": "02" + peer_pk, "content": nip04.encrypt_gen(shared_x, "back 04")},
    )
    assert code == 200 and body["result"] == "back 04"
    code, body = await call(c, "POST", "/api/nip44/encrypt", {"peer_pubkey": "xy", "content": "a"})
    assert code == 400 and body["error"].startswith("peer_pubkey")
    code, body = await call(c, "POST", "/api/nip44/decrypt", {"peer_pubkey": peer_pk, "content": "garbage"})
    assert code == 400 and body["error"].startswith("content")

    # policies, persisted
    peer = world.peers[0].pubkey
    code, body = await call(c, "PUT", f"/api/peers/{peer}/policy", {"allowReceive": False})
    assert code == 200 and body["policy"]["allowReceive"] is False and body["policy"]["effectiveSend"] is True
    code, body = await call(c, "GET", "/api/peers/policies")
    assert [p["pubkey"] for p in body["policies"]] == [peer]
    assert SqlitePolicyStore(world.db).load_policies()[0].recv is False
    code, body = await call(c, "PUT", f"/api/peers/{peer}/policy", {"nothing": 1})
    assert code == 400
    code, body = await call(c, "PUT", f"/api/peers/{'0' * 64}/policy", {"allowSend": True})
    assert code == 404
    code, body = await call(c, "GET", "/api/peers/nothex/policy")
    assert code == 400 and body["error"].startswith("pubkey: ")
    code, body = await call(c, "DELETE", f"/api/peers/{peer}/policy")
    assert code == 200 and body["removed"] is True
    code, body = await call(c, "DELETE", f"/api/peers/{peer}/policy")
    assert code == 404

    # ping and the peers list
    code, body = await call(c, "POST", "/api/peers/ping", {"target": "all"})
    assert code == 200 and all(r["success"] for r in body["results"])
    code, body = await call(c, "GET", "/api/peers")
    assert body["total"] == 2 and body["online"] == 2
    code, body = await call(c, "POST", "/api/peers/ping", {"target": 5})
    assert code == 400
    code, body = await call(c, "POST", "/api/peers/ping", {"target": "ab"})
    assert code == 400 and body["error"].startswith("target: ")

    # recover
    code, body = await call(
        c,
        "POST",
        "/api/recover",
        {
            "groupCredential": encode_group(world.group),
            "shareCredentials": [encode_share(s) for s in world.shares[1:]],
        },
    )
    assert code == 200 and nip19.nsec_decode(body["nsec"]) == secret
    code, body = await call(
        c,
        "POST",
        "/api/recover",
        {"groupCredential": encode_group(world.group), "shareCredentials": [share_text]},
    )
    assert code == 400 and body["success"] is False
    code, body = await call(c, "POST", "/api/recover/validate", {"type": "share", "credential": share_text})
    assert body["validation"]["isValid"] and body["decoded"]["idx"] == 1
    code, body = await call(c, "POST", "/api/recover/validate",
                            {"type": "group", "credential": encode_group(world.group)})
    assert code == 200 and body["decoded"] == {"threshold": 2, "totalShares": 3, "idx": None}
    code, body = await call(c, "POST", "/api/recover/validate", {"type": "group", "credential": share_text})
    assert code == 200 and body["validation"]["isValid"] is False and body["decoded"] is None
    assert share_text not in json.dumps(body)
    code, body = await call(c, "POST", "/api/recover/validate", {"type": "nsec", "credential": "x"})
    assert code == 400 and body["success"] is False

    # peers gone: 504 within the timeout
    for p in world.peers:
        await p.stop()
    code, body = await call(c, "POST", "/api/sign", {"message": secrets.token_hex(32)})
    assert code == 504
    # events went through the one publisher, without secrets
    frames = [e.payload.decode() for e in world.hub.ring.recent(1000)]
    assert any("Signature shares aggregated" in f for f in frames)
    assert not any(share_text in f or world.shares[0].seckey.hex() in f for f in frames)


async def test_approval_mode_through_the_api(http_server_client: Any, world: World) -> None:
    c = http_server_client
    world.manager.options = NodeOptions(sign_timeout=3.0, ping_interval=3600, approval_mode=True)
    code, _ = await call(c, "POST", "/api/env", {"GROUP_CRED": encode_group(world.group),
                                                 "SHARE_CRED": encode_share(world.shares[0])})
    assert code == 200
    await world.start_peers()
    requester = world.peers[0]
    ours = world.manager.service
    assert ours is not None and ours.options.approval_mode

    async def pending() -> list[dict[str, Any]]:
        for _ in range(100):
            code, body = await call(c, "GET", "/api/approvals")
            assert code == 200 and body["approvalMode"] is True
            if body["approvals"]:
                return body["approvals"]  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)
        raise AssertionError("no request is waiting for approval")

    async def sign_via() -> Any:
        with contextlib.suppress(Exception):
            return await requester.sign(secrets.token_hex(32), timeout=2.5)
        return None

    await world.peers[1].stop()  # share 3 offline: our node is the requester's only co-signer
    # Approve: the peer (share 2) asks our node, the owner approves, the peer gets a signature.
    task = asyncio.ensure_future(sign_via())
    [waiting] = await pending()
    assert waiting["kind"] == "sign" and waiting["peer"] == requester.pubkey
    code, body = await call(c, "POST", f"/api/approvals/{waiting['id']}", {"action": "approve"})
    assert code == 200 and body["action"] == "approve"
    entries = await task
    assert "Signature response sent" in [m for _, m, _ in recorded(world)]
    assert entries and curve.schnorr_verify(bytes.fromhex(ours.group_pubkey), bytes.fromhex(entries[0][0]),
                                            bytes.fromhex(entries[0][2]))
    code, _ = await call(c, "POST", f"/api/approvals/{waiting['id']}", {"action": "deny"})
    assert code == 404  # already decided

    # Deny: nothing is sent back, so the peer's request fails; our node never signs it.
    sent_before = [m for _, m, _ in recorded(world) if m == "Signature response sent"]
    task = asyncio.ensure_future(sign_via())
    [waiting] = await pending()
    code, _ = await call(c, "POST", f"/api/approvals/{waiting['id']}", {"approve": False})
    assert code == 200
    assert await task is None
    assert [m for _, m, _ in recorded(world) if m == "Signature response sent"] == sent_before
    code, body = await call(c, "POST", "/api/approvals/nope", {"action": "maybe"})
    assert code == 400 and body["error"].startswith("action:")
    await requester.stop()


def recorded(world: World) -> list[tuple[str, str, Any]]:
    """Every event the hub published: (type, message, data)."""
    events = [json.loads(e.payload) for e in world.hub.ring.since(0).events]
    return [(e["type"], e["message"], e["data"]) for e in events]


def test_node_failures_get_their_status_codes_in_the_web_layer_only() -> None:
    from handlers.base import NODE_ERROR_STATUS, node_error_status
    from node import NodeError, NodeTimeout, NodeUnavailable, PeerResponseError, RelayUnavailable

    expected = {NodeUnavailable: 503, NodeTimeout: 504, PeerResponseError: 502, RelayUnavailable: 502}
    assert {kind: node_error_status(kind("x")) for kind in expected} == expected
    assert node_error_status(NodeError("x")) == 500
    assert {kind for kind, _ in NODE_ERROR_STATUS} == set(NodeError.__subclasses__())  # none left out
    assert not any(hasattr(kind, "status") for kind in [NodeError, *NodeError.__subclasses__()])


async def test_configure_page_form_validates_relays_one_per_line(
    http_server_client: Any, world: World
) -> None:
    c = http_server_client
    page = await c.fetch("/configure", headers={"X-API-Key": API_KEY}, raise_error=False)
    assert page.code == 200 and b'name="relays"' in page.body
    xsrf = next(v.split(";")[0].split("=", 1)[1] for v in page.headers.get_list("Set-Cookie")
                if v.startswith("_xsrf="))

    async def submit(relays: str) -> tuple[int, str]:
        form = urlencode({"_xsrf": xsrf, "group_cred": encode_group(world.group),
                          "share_cred": encode_share(world.shares[0]), "relays": relays})
        response = await c.fetch("/configure", method="POST", body=form, raise_error=False,
                                 headers={"X-API-Key": API_KEY, "Cookie": f"_xsrf={xsrf}"})
        return response.code, response.body.decode()

    code, html = await submit("ws://127.0.0.1:1/ ws://127.0.0.1:2/")  # two URLs on one line
    assert code == 400 and "RELAYS:" in html and world.manager.service is None
    code, html = await submit("ws://127.0.0.1:1/\nws://127.0.0.1:2/, ws://127.0.0.1:1/")
    assert code == 200 and "Credentials saved" in html
    assert world.manager.relays() == ["ws://127.0.0.1:1/", "ws://127.0.0.1:2/"]


async def test_partial_env_updates_as_igloo_server_scripts_send_them(http_server_client: Any,
                                                                    world: World) -> None:
    """POST /api/env with one credential keeps the other; RELAYS as the JSON string Igloo Server's UI
    sends."""
    c = http_server_client
    code, body = await call(c, "POST", "/api/env", {"SHARE_CRED": encode_share(world.shares[1])})
    assert code == 400
    assert body["error"] == "GROUP_CRED: required (no credentials are configured to keep it from)"
    code, _ = await call(c, "POST", "/api/env", {"GROUP_CRED": encode_group(world.group),
                                                "SHARE_CRED": encode_share(world.shares[0])})
    assert code == 200
    # A new share of the same group: the group is the one the node runs on.
    code, body = await call(c, "POST", "/api/env", {"SHARE_CRED": encode_share(world.shares[2])})
    assert code == 200 and body["success"] is True, body
    assert world.manager.service is not None
    assert world.manager.service.pubkey == world.shares[2].pubkey_xonly()
    # A share of another group is refused, naming the field; nothing changes.
    _, other = generate_dealer_pkg_gen(2, 3)
    code, body = await call(c, "POST", "/api/env", {"SHARE_CRED": encode_share(other[0])})
    assert code == 400 and "does not belong" in body["error"]
    assert world.manager.service.pubkey == world.shares[2].pubkey_xonly()
    # Relays alone, as a JSON string, with a key Igloo takes from its environment instead.
    relays_as_text = {"RELAYS": '["wss://relay.example"]', "GROUP_NAME": "mine"}
    code, body = await call(c, "POST", "/api/env", relays_as_text)
    assert code == 200 and body["rejectedKeys"] == ["GROUP_NAME"] and "GROUP_NAME" in body["rejectedReasons"]
    assert world.manager.relays() == ["wss://relay.example"]
    stored = CredentialStore(world.db, world.key).load()
    assert stored is not None and stored.share_cred == encode_share(world.shares[2])
    # Relays alone are stored as the dashboard's relay list (kept across restarts, until cleared); the
    # relays saved with the credentials stay what they were, the way back.
    assert RelayListStore(world.db).load() == ("wss://relay.example",) and stored.relays == ()
