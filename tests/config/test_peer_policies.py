"""PEER_POLICIES: parsed in Igloo Server's format and applied to the node when it starts.

Before, the variable was ignored: a peer blocked in Igloo Server became allowed here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient

from config.kinds import PeerPolicySetting
from config.settings import ConfigError, Settings
from node import NodeManager, NodeOptions, NodeService, keytools
from node.crypto.credentials import decode_group, encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nostr.nip19 import npub_encode
from node.policy import PolicyBook, StoredPolicy
from node.service import NodeTimeout, NodeUnavailable
from tests.config.serverproc import clean_environment, free_port, launch
from tests.node.fakenet import FakeNetwork

pytestmark = pytest.mark.timeout(60)
A, B, C = "aa" * 32, "bb" * 32, "cc" * 32


def policies(value: object) -> tuple[PeerPolicySetting, ...]:
    text = value if isinstance(value, str) else json.dumps(value)
    return Settings.from_env({"PEER_POLICIES": text}).peer_policies


def test_igloo_server_forms_are_read() -> None:
    npub = npub_encode(bytes.fromhex(B))
    parsed = policies([
        {"pubkey": "02" + A.upper(), "allowSend": False, "label": "laptop", "source": "config"},
        {"pubkey": npub, "recv": False, "roles": ["x"], "metadata": {"k": 1}},
        {"pubkey": C, "policy": {"send": True, "recv": False}},
    ])
    assert parsed == (
        PeerPolicySetting(A, False, None, "laptop", None),
        PeerPolicySetting(B, None, False, None, None),
        PeerPolicySetting(C, True, False, None, None),
    )
    assert policies({"pubkey": A, "allowReceive": False}) == (PeerPolicySetting(A, None, False, None, None),)


@pytest.mark.parametrize(("value", "fragment"), [
    ('[{"pubkey": "aa"}]', "entry 1: pubkey must be 64 hex characters"),
    ('[{"pubkey": "npub1xyz"}]', "entry 1: pubkey is not a valid npub"),
    (json.dumps([{"pubkey": A, "allowRecieve": False}]), "entry 1: unknown field 'allowRecieve'"),
    (json.dumps([{"pubkey": A, "allowSend": "false"}]), "entry 1: allowSend must be true or false"),
    (json.dumps([{"pubkey": A}, {"pubkey": "03" + A, "allowSend": False}]), "entry 2: a second entry"),
    (json.dumps([{"pubkey": A, "policy": "deny"}]), "entry 1: policy must be an object"),
    ('[{"pubkey": ', "expected JSON"),
    ("[1]", "entry 1: expected an object with a pubkey"),
])
def test_a_policy_that_cannot_be_read_stops_start_up(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"PEER_POLICIES": value})
    assert str(info.value).startswith(f"PEER_POLICIES: {fragment}")


class MemoryPolicyStore:
    def __init__(self, *entries: StoredPolicy) -> None:
        self.entries = {e.pubkey: e for e in entries}
        self.saved: list[StoredPolicy] = []

    def load_policies(self) -> list[StoredPolicy]:
        return list(self.entries.values())

    def save_policy(self, policy: StoredPolicy) -> None:
        self.saved.append(policy)
        self.entries[policy.pubkey] = policy

    def delete_policy(self, pubkey: str) -> bool:
        return self.entries.pop(pubkey, None) is not None


def test_configured_policies_lie_over_stored_ones_in_memory_only() -> None:
    store = MemoryPolicyStore(StoredPolicy(A, False, True, 1.0))
    book = PolicyBook([A, B], store, clock=lambda: 5.0)
    unknown = book.apply_configured([
        PeerPolicySetting(A, None, False, None, "from .env"),
        PeerPolicySetting(B, False, None, "phone", None),
        PeerPolicySetting(C, False, False, None, None),
    ])
    assert unknown == [C]
    assert (book.get(A).send, book.get(A).recv) == (False, False)  # the stored send=False is kept
    assert (book.get(B).send, book.get(B).recv) == (False, True)
    assert book.summary(B)["source"] == "config" and book.summary(B)["label"] == "phone"
    assert book.summary(A)["note"] == "from .env" and store.saved == []  # nothing written to the store
    book.set(B, send=True)  # a dashboard change wins until the next start
    assert book.get(B).send and book.summary(B)["source"] == "user" and book.summary(B)["label"] is None
    assert book.remove(A) and book.get(A).recv and book.summary(A)["status"] == "default"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    async def wait_for(self, fragment: str, timeout: float = 3.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if any(fragment in message for _, message, _ in self.events):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no event containing {fragment!r}")


async def test_the_node_booted_from_the_environment_obeys_them() -> None:
    group, shares = generate_dealer_pkg_gen(2, 3)
    net = FakeNetwork()
    options = NodeOptions(sign_timeout=1.0, ping_interval=3600)
    peers = [NodeService(group, share, ["fake://relay"], emit=lambda *a: None, pool_factory=net.factory,
                         options=options) for share in shares[1:]]
    b, c = peers
    stranger = secrets.token_hex(32)
    config = Settings.from_env({
        "GROUP_CRED": encode_group(group), "SHARE_CRED": encode_share(shares[0]),
        "PEER_POLICIES": json.dumps([
            {"pubkey": npub_encode(bytes.fromhex(b.pubkey)), "allowReceive": False},
            {"pubkey": "02" + c.pubkey, "policy": {"send": False}},
            {"pubkey": stranger, "allowSend": False},
        ]),
    })
    rec = Recorder()
    manager = NodeManager(emit=rec, options=options, default_relays=["fake://relay"],
                          env_group=config.group_cred, env_share=config.share_cred, pool_factory=net.factory,
                          peer_policies=config.peer_policies)
    for peer in peers:
        await peer.start()
    await manager.boot()
    try:
        a = manager.service
        assert a is not None
        await rec.wait_for("Applied 2 peer policies from PEER_POLICIES")
        warn = next(data for type_, message, data in rec.events
                    if type_ == "warn" and "PEER_POLICIES" in message)
        assert warn == {"pubkeys": [stranger]}
        # send=false for c: only b is asked, and b co-signs.
        assert len(await a.sign("11" * 32)) == 1
        a.policies.set(b.pubkey, send=False)  # now nobody may be asked
        with pytest.raises(NodeUnavailable, match="not enough peers"):
            await a.sign("12" * 32)
        # recv=false for b: b's request, which only this node may answer, is refused.
        b.policies.set(c.pubkey, send=False)
        with pytest.raises(NodeTimeout):
            await b.sign("13" * 32, timeout=0.5)
        await rec.wait_for("Signature request rejected: unauthorized")
    finally:
        await manager.stop()
        for peer in peers:
            await peer.stop()


async def test_a_real_server_applies_them_at_boot(tmp_path: Path) -> None:
    keys = keytools.keygen(threshold=2, total=3)
    members = decode_group(keys["group"]).member_pubkeys()
    port = free_port()
    api_key = secrets.token_hex(16)
    env = clean_environment(
        HOST_PORT=str(port), DATA_DIR=str(tmp_path / "data"), API_KEY=api_key, IGLOO_DEMO="false",
        GROUP_CRED=keys["group"], SHARE_CRED=keys["shares"][0], PEER_POLICIES=json.dumps(
            [{"pubkey": members[1], "allowReceive": False, "label": "old laptop"}]),
    )
    server = await launch(tmp_path, env, port)
    try:
        client = tornado.httpclient.AsyncHTTPClient()
        response = await client.fetch(f"{server.base}/api/peers", headers={"X-API-Key": api_key})
        by_key = {p["pubkey"]: p["policy"] for p in json.loads(response.body)["peers"]}
        assert by_key[members[1]]["source"] == "config" and by_key[members[1]]["label"] == "old laptop"
        assert (by_key[members[1]]["effectiveReceive"], by_key[members[1]]["effectiveSend"]) == (False, True)
        assert by_key[members[2]]["status"] == "default" and by_key[members[2]]["effectiveReceive"]
    finally:
        await server.stop()
