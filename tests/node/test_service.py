"""NodeService triples over the queue network: ping, echo, sign, ECDH, policies, budget, approvals,
responder rejections and online-first peer choice."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import weakref
from typing import Any

import pytest

from node import protocol
from node.crypto import curve
from node.crypto.keygen import generate_dealer_pkg_gen, recover_secret
from node.crypto.session import create_session
from node.nostr import nip04, nip44
from node.nostr.event import verify_event
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
        assert pings[-1]["eventType"] == "/ping/res"  # Igloo Server's field: the message tag behind it
        # b saw a's ping request: its peer-status event names the tag, as Igloo Server's did.
        seen = [d for t, _, d in g.recs[1].events if t == "peer-status-internal" and d["pubkey"] == a.pubkey]
        assert seen and seen[0]["eventType"] == "/ping/req" and seen[0]["success"] is True
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
        assert await c.ecdh(peer_pub) == shared  # a fresh round (nothing unproven is cached) agrees
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


async def test_sign_message_and_sign_event_through_the_services_queue() -> None:
    g = Group()
    a, _, _ = await g.start()
    try:
        entry = await a.sign_message("AB" * 32)  # upper case accepted, answered in lower case
        assert entry[0] == "ab" * 32 and verify(entry, a.group_pubkey)
        template = {"kind": 1, "created_at": 1_700_000_000, "content": "hello"}
        event = await a.sign_event(template)
        verify_event(event)  # id recomputed from the fields, signature checked
        assert (event.pubkey, event.tags, event.content) == (a.group_pubkey, [], "hello")
        assert a.sign_queue.sessions == 2
        for bad, field in (("zz", "message"), (None, "message")):
            with pytest.raises(ValueError, match=f"^{field}: "):
                await a.sign_message(bad)
        for bad_template, field in (
            ({"kind": 1}, "event.created_at"),
            ({"kind": True, "created_at": 1}, "event.kind"),
            ({"kind": 1, "created_at": 1, "tags": [[1]]}, "event.tags"),
            ({"kind": 1, "created_at": 1, "content": 5}, "event.content"),
            ({"kind": 1, "created_at": 1, "pubkey": "ab" * 32}, "event.pubkey"),
            ([], "event"),
        ):
            with pytest.raises(ValueError, match=f"^{field}: "):
                await a.sign_event(bad_template)
        assert a.sign_queue.sessions == 2  # refused input never reached the co-signers
        published = len(g.net.published)
        with pytest.raises(ValueError, match=r"^message: expected 1 to 100 sighash vectors"):
            await a.sign([[f"{i:064x}"] for i in range(1, 102)])  # what our own responders would refuse
        assert len(g.net.published) == published
    finally:
        await g.stop()


async def test_stopping_a_service_closes_its_sign_queue() -> None:
    g = Group()
    [a] = await g.start([0])  # no co-signer: a request would wait its whole timeout
    in_flight = asyncio.ensure_future(a.sign_message("11" * 32))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(a.sign_message("22" * 32))
    await asyncio.sleep(0)
    started = time.monotonic()
    await a.stop()
    for request in (in_flight, queued):
        with pytest.raises(NodeUnavailable):
            await request
    assert time.monotonic() - started < 0.5  # well inside the 1 s sign timeout
    assert a.sign_queue.closed
    with pytest.raises(NodeUnavailable):
        await a.sign_message("33" * 32)


def test_no_registry_keeps_a_replaced_service_alive() -> None:
    g = Group()
    service = NodeService(g.group, g.shares[0], ["fake://relay"], emit=lambda *a: None,
                          pool_factory=g.net.factory)
    assert service.sign_queue is not NodeService(g.group, g.shares[1], [], emit=lambda *a: None,
                                                  pool_factory=g.net.factory).sign_queue
    gone = weakref.ref(service)
    del service
    gc.collect()
    assert gone() is None


async def test_encrypt_and_decrypt_with_a_counterparty_via_threshold_ecdh() -> None:
    g = Group()
    _, _, c = await g.start()
    try:
        peer_sk = bytes.fromhex("77" * 32)
        peer_pk = curve.pubkey_of(peer_sk)[1:].hex()
        group_point = curve.base_mul(g.secret())
        conv = nip44.conversation_key(peer_sk, group_point[1:])
        shared_x = curve.ecdh_x(peer_sk, group_point)
        assert nip44.decrypt(conv, await c.encrypt("nip44", peer_pk, "hi 44")) == "hi 44"
        assert await c.decrypt("nip44", "02" + peer_pk, nip44.encrypt_gen(conv, "back 44")) == "back 44"
        assert nip04.decrypt(shared_x, await c.encrypt("nip04", peer_pk, "hi 04")) == "hi 04"
        assert await c.decrypt("nip04", peer_pk, nip04.encrypt_gen(shared_x, "back 04")) == "back 04"
        rounds = g.recs[2].messages("ecdh").count("ECDH request sent")
        fresh_pk = curve.pubkey_of(bytes.fromhex("88" * 32))[1:].hex()  # no cached shared point
        off_curve = next(
            x for x in range(1, 100) if not curve.is_valid_point(b"\x02" + x.to_bytes(32, "big"))
        )
        for args, field in (
            (("nip44", "xy", "a"), "peer_pubkey"),
            (("nip44", off_curve.to_bytes(32, "big").hex(), "a"), "peer_pubkey"),
            (("nip44", fresh_pk, ""), "content"),
            (("nip04", fresh_pk, 7), "content"),
            (("nip05", fresh_pk, "a"), "scheme"),
        ):
            with pytest.raises(ValueError, match=f"^{field}: "):
                await c.encrypt(*args)
        with pytest.raises(ValueError, match=r"^content: "):
            await c.decrypt("nip44", peer_pk, "garbage")  # the shared point is cached: no new round either
        assert g.recs[2].messages("ecdh").count("ECDH request sent") == rounds  # refused before any round
    finally:
        await g.stop()
