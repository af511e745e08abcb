"""NodeService triples over the queue network: ping, echo, sign, ECDH, policies, budget, approvals,
responder rejections and online-first peer choice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from node import protocol
from node.crypto import curve
from node.crypto.keygen import generate_dealer_pkg_gen, recover_secret
from node.crypto.session import create_session
from node.service import NodeOptions, NodeService, NodeTimeout, NodeUnavailable
from tests.node.fakenet import FakeNetwork

pytestmark = pytest.mark.timeout(30)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    def messages(self, type_: str | None = None) -> list[str]:
        return [m for t, m, _ in self.events if type_ is None or t == type_]

    async def wait_for(self, fragment: str, timeout: float = 3.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages():
                if fragment in message:
                    return message
            await asyncio.sleep(0.01)
        raise AssertionError(f"no event containing {fragment!r}; got {self.messages()}")


class Group:
    def __init__(self, threshold: int = 2, total: int = 3) -> None:
        self.group, self.shares = generate_dealer_pkg_gen(threshold, total)
        self.net = FakeNetwork()
        self.nodes: list[NodeService] = []
        self.recs: list[Recorder] = []

    async def start(self, indexes: list[int] | None = None,
                    opts: dict[int, dict[str, Any]] | None = None) -> list[NodeService]:
        opts = opts or {}
        for i in indexes if indexes is not None else range(len(self.shares)):
            rec = Recorder()
            options = NodeOptions(**{"sign_timeout": 1.0, "ping_interval": 3600, **opts.get(i, {})})
            node = NodeService(self.group, self.shares[i], ["fake://relay"], emit=rec,
                               pool_factory=self.net.factory, options=options)
            await node.start()
            self.nodes.append(node)
            self.recs.append(rec)
        await asyncio.sleep(0)
        return self.nodes

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()

    def secret(self) -> int:
        return int.from_bytes(recover_secret(self.group, self.shares[: self.group.threshold]), "big")


def verify(entry: tuple[str, str, str], group_pubkey: str | None = None) -> bool:
    sighash, tweaked, sig = entry
    key = bytes.fromhex(tweaked)[1:] if group_pubkey is None else bytes.fromhex(group_pubkey)
    return curve.schnorr_verify(key, bytes.fromhex(sighash), bytes.fromhex(sig))


async def test_ping_echo_sign_batch_and_ecdh() -> None:
    g = Group()
    a, b, c = await g.start()
    try:
        policy, latency = await a.ping(b.pubkey)
        assert policy.send and policy.recv and latency >= 0
        assert a.peer_table.is_online(b.pubkey)
        pings = [d for t, _, d in g.recs[0].events if t == "peer-ping-internal"]
        assert pings[-1]["pubkey"] == b.pubkey and pings[-1]["success"] is True
        assert pings[-1]["status"]["online"] is True
        assert "Ping request" in g.recs[1].messages("bifrost")

        assert await a.echo("c0ffee") == "c0ffee"

        msg = "11" * 32
        [entry] = await a.sign(msg)
        assert entry[0] == msg and verify(entry, a.group_pubkey)

        tweak = "22" * 32
        batch = [["33" * 32], ["44" * 32, tweak], ["55" * 32]]
        entries = await b.sign(batch)
        assert [e[0] for e in entries] == ["33" * 32, "44" * 32, "55" * 32]
        assert all(verify(e) for e in entries)
        assert verify(entries[0], a.group_pubkey) and not verify(entries[1], a.group_pubkey)
        assert "Signature shares aggregated" in g.recs[1].messages("sign")
        responders = [r for r in (g.recs[0], g.recs[2]) if "Signature response sent" in r.messages("sign")]
        assert responders

        peer_priv = bytes.fromhex("77" * 32)
        peer_pub = curve.pubkey_of(peer_priv)[1:].hex()
        shared = await c.ecdh(peer_pub)
        assert shared == curve.point_mul(bytes.fromhex("02" + peer_pub), g.secret())
        assert curve.xonly(shared) == curve.ecdh_x(peer_priv, curve.base_mul(g.secret()))
        assert await c.ecdh(peer_pub) == shared  # cached
    finally:
        await g.stop()
    text = json.dumps([r.events for r in g.recs])
    for share in g.shares:
        assert share.seckey.hex() not in text and share.hidden_sn.hex() not in text


async def test_send_and_recv_policies() -> None:
    g = Group()
    a, b, c = await g.start()
    try:
        a.policies.set(b.pubkey, send=False)
        a.policies.set(c.pubkey, send=False)
        with pytest.raises(NodeUnavailable, match="not enough peers"):
            await a.sign("11" * 32)
        a.policies.set(c.pubkey, send=True)
        c.policies.set(a.pubkey, recv=False)
        with pytest.raises(NodeTimeout):
            await a.sign("12" * 32, timeout=0.5)
        await g.recs[2].wait_for("Signature request rejected: unauthorized")
        # ping bypasses the recv policy and reports it
        policy, _ = await a.ping(c.pubkey)
        assert policy.recv is False and policy.send is True
        # ECDH goes through the same policy
        with pytest.raises(NodeTimeout):
            await a.ecdh(b.pubkey, timeout=0.5)
        await g.recs[2].wait_for("ECDH request rejected: unauthorized")
    finally:
        await g.stop()


async def test_budget_exhaustion_refuses_with_reason() -> None:
    g = Group()
    a, b, _ = await g.start(None, {1: {"sign_budget": 4, "sign_timeout": 1.0}})
    try:
        a.policies.set(g.nodes[2].pubkey, send=False)  # only b can co-sign
        await a.sign([["01" * 32], ["02" * 32], ["03" * 32]])
        with pytest.raises(NodeTimeout):
            await a.sign([["04" * 32], ["05" * 32]], timeout=0.5)
        reason = await g.recs[1].wait_for("budget exhausted")
        assert "asked for 2, 1 left of 4" in reason
        [entry] = await a.sign("06" * 32)  # one still fits
        assert verify(entry, a.group_pubkey)
        assert b.budget.remaining(a.pubkey) == 0
    finally:
        await g.stop()


async def test_approval_mode_approve_deny_timeout() -> None:
    g = Group()
    a, b, c = await g.start(None, {1: {"approval_mode": True, "sign_timeout": 1.0}})
    a.policies.set(c.pubkey, send=False)
    try:
        async def decide_when_pending(approve: bool) -> None:
            for _ in range(200):
                if b.approvals.pending():
                    approval = b.approvals.pending()[0]
                    assert approval.kind == "sign" and approval.peer == a.pubkey
                    assert approval.summary["sighashes"]
                    assert b.decide(approval.id, approve)
                    return
                await asyncio.sleep(0.01)

        results = await asyncio.gather(a.sign("a1" * 32, timeout=3), decide_when_pending(True))
        assert verify(results[0][0], a.group_pubkey)
        with pytest.raises(NodeTimeout):
            await asyncio.gather(a.sign("a2" * 32, timeout=0.8), decide_when_pending(False))
        await g.recs[1].wait_for("Signature request rejected: approval denied")
        with pytest.raises(NodeTimeout):
            await a.sign("a3" * 32, timeout=0.5)
        await g.recs[1].wait_for("Signature request rejected: approval timeout", timeout=3)
        assert "Signature request awaiting approval" in g.recs[1].messages("sign")
        assert not b.decide("nope", True)
    finally:
        await g.stop()


async def _send_raw(g: Group, sender_seckey: bytes, recipient: str, tag: str, data: str) -> None:
    event = protocol.seal(sender_seckey, recipient, tag, protocol.new_msg_id(), data, int(time.time()))
    g.net.deliver(event, ignore_filters=True)


async def test_responder_rejections() -> None:
    g = Group()
    a, b, _ = await g.start()
    try:
        rec = g.recs[1]
        now = int(time.time())
        members = protocol.members_for(g.group, [a.pubkey, b.pubkey])

        def session_json(**changes: Any) -> str:
            s = create_session(g.group, members, [["ab" * 32]], stamp=changes.pop("stamp", now)).to_json()
            s.update(changes)
            return json.dumps(s)

        # a foreign key, delivered by a relay that ignores the authors filter
        foreign = bytes.fromhex("99" * 32)
        await _send_raw(g, foreign, b.pubkey, protocol.SIGN_REQ, session_json())
        await rec.wait_for("Message bounced: sender is not a group member")
        assert not any("Signature request received" in m for m in rec.messages())

        ask = g.shares[0].seckey
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, session_json(sid="00" * 32))
        await rec.wait_for("session id does not match")
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, session_json(stamp=now - 3600))
        await rec.wait_for("stamp is outside")
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, session_json(gid="00" * 32))
        await rec.wait_for("group id does not match")
        big = create_session(g.group, members, [[f"{i:064x}"] for i in range(1, 150)], stamp=now)
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, json.dumps(big.to_json()))
        await rec.wait_for("1 to 100 sighash vectors")
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, session_json(members=[members[0]]))
        await rec.wait_for("below the threshold")
        await _send_raw(g, ask, b.pubkey, protocol.SIGN_REQ, "{not json")
        await rec.wait_for("not valid JSON")
        assert len(g.net.published) == 7  # the seven requests above, not one reply
        assert "Signature response sent" not in rec.messages("sign")
    finally:
        await g.stop()


async def test_one_peer_down_online_first_and_fallback() -> None:
    g = Group()
    a, b = await g.start([0, 1], {0: {"sign_timeout": 2.0}})
    dead = next(pk for pk in a.peers if pk != b.pubkey)
    try:
        # Without status: the first attempt may pick the dead peer; fallback still lands in time.
        for i in range(3):
            started = time.monotonic()
            [entry] = await a.sign(f"{i + 1:064x}")
            assert verify(entry, a.group_pubkey)
            assert time.monotonic() - started < 2.0
        results = {r["pubkey"]: r["success"] for r in await a.ping_all(timeout=0.3)}
        assert results == {b.pubkey: True, dead: False}
        # With fresh pings: online first, each sign is quick.
        for i in range(5):
            started = time.monotonic()
            [entry] = await a.sign(f"{i + 100:064x}")
            assert verify(entry, a.group_pubkey)
            assert time.monotonic() - started < 0.5
        peers = {p["pubkey"]: p for p in a.peers_json()}
        assert peers[b.pubkey]["online"] and not peers[dead]["online"]
    finally:
        await g.stop()


async def test_first_ping_shortly_after_start_marks_peers() -> None:
    g = Group()
    a, b, c = await g.start(opts={0: {"first_ping_delay": 0.05}})
    try:
        for _ in range(100):
            if a.peer_table.is_online(b.pubkey) and a.peer_table.is_online(c.pubkey):
                break
            await asyncio.sleep(0.02)
        assert a.peer_table.is_online(b.pubkey) and a.peer_table.is_online(c.pubkey)
        # the others keep the default (no first ping): nobody pinged them back yet
        assert "Ping request" not in g.recs[0].messages("bifrost")
    finally:
        await g.stop()
