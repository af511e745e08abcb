"""Igloo's signing node against the JS reference node (@frostr/bifrost 1.0.7), as real processes on loopback.

Our side is always the real server (`python server.py`, GROUP_CRED/SHARE_CRED from the environment, reached
through its REST API and event stream); the other side is a reference `BifrostNode` (`JsNode`). Every
signature is verified here in Python (BIP-340 under the key computed from the spec, not the one the peer
reports), every ECDH result against the group secret recovered from the shares, and every NIP-44/NIP-04
result with nostr-tools.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from node import keytools
from node.crypto import curve
from node.crypto.credentials import GroupPackage, decode_group, decode_share
from node.crypto.keygen import recover_secret
from node.nostr.event import Event, verify_event
from node.service import MAX_SESSIONS_IN_FLIGHT
from tests.interop.conftest import JsNode, JsRelay, oracle
from tests.interop.igloo_proc import API_KEY, IglooServer

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")


def run(coro: Awaitable[T], limit: float = 90.0) -> T:
    """Run one scenario on a fresh asyncio loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, limit))


class Keyset:
    """A fresh 2-of-3 keyset (made by Igloo's key tools) and what the tests derive from it."""

    def __init__(self) -> None:
        made = keytools.keygen(2, 3)
        self.bfgroup: str = made["group"]
        self.bfshares: list[str] = made["shares"]
        self.group: GroupPackage = decode_group(self.bfgroup)
        self.shares = [decode_share(s) for s in self.bfshares]
        self.members = self.group.member_pubkeys()  # x-only hex, share 1, 2, 3
        self.secret = recover_secret(self.group, self.shares[:2])
        self.group_x = self.group.group_pk[1:]

    def secrets_text(self) -> list[str]:
        """Strings that must never appear in an event, a log line or a response."""
        return [*self.bfshares, *(s.seckey.hex() for s in self.shares), self.secret.hex(), API_KEY]


def tweaked_key(group_pk: bytes, tweaks: list[bytes]) -> bytes:
    """The tweaked group key of spec §3.3: per tweak, negate to even y, then add t·G."""
    point = group_pk
    for tweak in tweaks:
        if not curve.has_even_y(point):
            point = curve.negate(point)
        point = curve.point_add_base(point, curve.int_from(tweak))
    return point


def assert_valid(entry: list[str], group_pk: bytes, tweaks: list[bytes] = []) -> None:  # noqa: B006
    """A SignatureEntry [sighash, tweaked_pk33, sig64] verifies under the key we compute ourselves."""
    sighash, reported_pk, sig = entry
    expected = tweaked_key(group_pk, tweaks)
    assert reported_pk == expected.hex()
    assert curve.schnorr_verify(curve.xonly(expected), bytes.fromhex(sighash), bytes.fromhex(sig))


def verifies(xonly: bytes, sighash: str, sig: str) -> bool:
    """BIP-340 verification of hex inputs."""
    return curve.schnorr_verify(xonly, bytes.fromhex(sighash), bytes.fromhex(sig))


def random_peer() -> tuple[bytes, str]:
    """A random Nostr key pair: (seckey, x-only pubkey hex)."""
    seckey = os.urandom(32)
    return seckey, curve.pubkey_of(seckey)[1:].hex()


async def js_oracle(cases: list[dict[str, Any]]) -> list[Any]:
    """The nostr-tools/bifrost batch oracle without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, oracle, cases)


async def ensure_online(igloo: IglooServer, pubkey: str) -> None:
    """Ping a peer through our API so the node ranks it online (it then picks it as co-signer)."""
    status, body = await igloo.post("/api/peers/ping", {"target": pubkey})
    assert status == 200 and body["success"] is True, body


async def wait_events(js: JsNode, name: str, at_least: int = 1, timeout: float = 5.0) -> int:
    """How many `name` events the JS node has forwarded, once at least `at_least` arrived (bounded wait:
    the node prints its event after publishing, so our side may have finished before the line is read)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        count = sum(1 for e in js.events if e["event"] == name)
        if count >= at_least or loop.time() > deadline:
            return count
        await asyncio.sleep(0.02)


async def ecdh_requests_sent(igloo: IglooServer) -> int:
    """How many ECDH rounds Igloo has started: its stored events, read up to the greeting's lastSeq."""
    stream = await igloo.events(since=0)
    try:
        greeting = json.loads(await asyncio.wait_for(stream.read_message(), 5))  # type: ignore[arg-type]
        count, seq = 0, 0
        while seq < greeting["data"]["lastSeq"]:
            frame = json.loads(await asyncio.wait_for(stream.read_message(), 5))  # type: ignore[arg-type]
            seq = frame["seq"] or seq
            count += frame["message"] == "ECDH request sent"
        return count
    finally:
        stream.close()


def assert_no_secret(text: str, keys: Keyset) -> None:
    for secret in keys.secrets_text():
        assert secret not in text


# ------------------------------------------------------------------------------------------ 1. JS → us


def test_js_node_pings_signs_and_ecdhs_with_our_server(js_ready: str, tmp_path: Path) -> None:
    keys = Keyset()
    ours, theirs = keys.members[0], keys.members[1]

    async def scenario() -> None:
        async with IglooServer(keys.bfgroup, keys.bfshares[0], tmp_path) as igloo:
            async with JsNode(keys.bfgroup, keys.bfshares[1], [igloo.relay_url]) as js:
                assert js.pubkey == theirs

                pong = await js.command("ping", pubkey=ours)
                assert pong["ok"] and pong["data"] == {"send": True, "recv": True}, pong

                sighash = os.urandom(32).hex()
                signed = await js.command("sign", message=sighash, peers=[ours], stamp=int(time.time()))
                assert signed["ok"], signed
                [entry] = signed["data"]
                assert entry[0] == sighash
                assert_valid(entry, keys.group.group_pk)

                tweak = os.urandom(32)
                vectors = [[os.urandom(32).hex(), tweak.hex()], [os.urandom(32).hex()]]
                batch = await js.command("sign", message=vectors, peers=[ours])
                assert batch["ok"], batch
                assert [e[0] for e in batch["data"]] == [v[0] for v in vectors]
                assert_valid(batch["data"][0], keys.group.group_pk, [tweak])
                assert_valid(batch["data"][1], keys.group.group_pk)
                assert batch["data"][0][1] != batch["data"][1][1]

                # a session with content and type bound into its sid, and a vector with two tweaks
                tweaks = [os.urandom(32), os.urandom(32)]
                vector = [os.urandom(32).hex(), *(t.hex() for t in tweaks)]
                custom = await js.command("sign", message=[vector], peers=[ours], content="abcd",
                                          type="nostr-event")
                assert custom["ok"], custom
                assert_valid(custom["data"][0], keys.group.group_pk, tweaks)

                peer_sk, peer_pk = random_peer()
                shared = await js.command("ecdh", ecdh_pk=peer_pk, peers=[ours])
                assert shared["ok"], shared
                point = bytes.fromhex(shared["data"])
                assert point[1:] == curve.ecdh_x(keys.secret, curve.lift_x(bytes.fromhex(peer_pk)))
                assert point[1:] == curve.ecdh_x(peer_sk, keys.group.group_pk)  # the peer's view agrees
                other_sk = os.urandom(32)  # the reference also takes a 33-byte compressed ecdh_pk
                shared = await js.command("ecdh", ecdh_pk=curve.pubkey_of(other_sk).hex(), peers=[ours])
                assert shared["ok"], shared
                assert bytes.fromhex(shared["data"])[1:] == curve.ecdh_x(other_sk, keys.group.group_pk)

                # our responder answered every request: the JS node saw no rejection
                assert not [e for e in js.events if e["event"].endswith("/rej") or e["event"] == "bounced"]

                # our ping answer carries the policy we hold for the JS node
                status, _ = await igloo.put(f"/api/peers/{theirs}/policy", {"allowReceive": False})
                assert status == 200
                pong = await js.command("ping", pubkey=ours)
                assert pong["ok"] and pong["data"] == {"send": True, "recv": False}, pong
        assert_no_secret(igloo.log_tail(), keys)

    run(scenario())


# ------------------------------------------------------------------------------------------ 1. us → JS


def test_our_api_signs_and_encrypts_with_only_the_js_node_online(js_ready: str, tmp_path: Path) -> None:
    keys = Keyset()
    group_xhex = keys.group_x.hex()

    async def scenario() -> None:
        async with IglooServer(keys.bfgroup, keys.bfshares[0], tmp_path) as igloo:
            async with JsNode(keys.bfgroup, keys.bfshares[1], [igloo.relay_url]) as js:
                await ensure_online(igloo, js.pubkey)  # share 3 stays offline

                sighash = os.urandom(32).hex()
                status, body = await igloo.post("/api/sign", {"message": sighash})
                assert status == 200, body
                assert body["id"] == sighash
                assert verifies(keys.group_x, sighash, body["signature"])

                template = {"kind": 1, "created_at": int(time.time()), "tags": [["t", "frostr"]],
                            "content": "signed by Igloo and bifrost"}
                status, body = await igloo.post("/api/sign", {"event": template})
                assert status == 200, body
                event = Event.from_json(body["event"])
                verify_event(event)  # id is the NIP-01 hash, sig verifies under the group key
                assert (event.pubkey, event.id, event.sig) == (group_xhex, body["id"], body["signature"])
                assert (event.kind, event.content, event.tags) == (1, template["content"], template["tags"])

                # concurrent requests share batched sessions: fewer sign requests reach the JS node. More
                # requests than sessions may be in flight, so some must wait and go out as one batched
                # session (how many go out alone depends on the measured round trips).
                before = sum(e["event"] == "/sign/handler/res" for e in js.events)
                many = [os.urandom(32).hex() for _ in range(MAX_SESSIONS_IN_FLIGHT + 8)]
                replies = await asyncio.gather(*(igloo.post("/api/sign", {"message": h}) for h in many))
                for sighash, (status, body) in zip(many, replies, strict=True):
                    assert status == 200 and body["id"] == sighash, body
                    assert verifies(keys.group_x, sighash, body["signature"])
                batches = await wait_events(js, "/sign/handler/res", before + 1) - before
                assert 1 <= batches < len(many)

                # two fresh peers, so each cipher goes through a real ECDH round with the JS node
                sk44, pk44 = random_peer()
                sk04, pk04 = random_peer()
                status, enc44 = await igloo.post("/api/nip44/encrypt",
                                                 {"peer_pubkey": pk44, "content": "hi 44"})
                assert status == 200, enc44
                status, enc04 = await igloo.post("/api/nip04/encrypt", {"pubkey": pk04, "content": "hi 04"})
                assert status == 200, enc04

                # nostr-tools on the peer's side: conversation key from (peer seckey, group pubkey)
                [conv_key] = await js_oracle(
                    [{"op": "nip44_conv_key", "seckey": sk44.hex(), "pubkey": group_xhex}]
                )
                peer04 = {"seckey": sk04.hex(), "pubkey": group_xhex}
                plain44, theirs44, plain04, theirs04 = await js_oracle([
                    {"op": "nip44_decrypt", "conv_key": conv_key, "payload": enc44["result"]},
                    {"op": "nip44_encrypt", "conv_key": conv_key, "plaintext": "from nostr-tools 44"},
                    {"op": "nip04_decrypt", **peer04, "payload": enc04["result"]},
                    {"op": "nip04_encrypt", **peer04, "plaintext": "from nostr-tools 04"},
                ])
                assert (plain44, plain04) == ("hi 44", "hi 04")

                status, dec44 = await igloo.post("/api/nip44/decrypt", {"peer_pubkey": pk44,
                                                                        "content": theirs44})
                assert status == 200 and dec44 == {"result": "from nostr-tools 44"}, dec44
                status, dec04 = await igloo.post("/api/nip04/decrypt", {"peer_pubkey": pk04,
                                                                        "content": theirs04})
                assert status == 200 and dec04 == {"result": "from nostr-tools 04"}, dec04

                # the JS node answered our ECDH requests: one per operation, since an encryption's secret is
                # never kept unproven; the NIP-44 decryption proved its secret, so one more encryption is free
                assert await wait_events(js, "/ecdh/handler/res", 4) == 4
                assert await ecdh_requests_sent(igloo) == 4
                status, again = await igloo.post("/api/nip44/encrypt",
                                                 {"peer_pubkey": pk44, "content": "again"})
                assert status == 200, again
                [plain] = await js_oracle([{"op": "nip44_decrypt", "conv_key": conv_key,
                                            "payload": again["result"]}])
                assert plain == "again" and await ecdh_requests_sent(igloo) == 4
        assert_no_secret(igloo.log_tail(), keys)

    run(scenario())


# ------------------------------------------------------------------------------ 2. our node, foreign relay


def test_our_server_and_a_js_node_over_the_js_relay(js_ready: str, tmp_path: Path) -> None:
    keys = Keyset()
    ours = keys.members[0]

    async def scenario() -> None:
        async with JsRelay() as relay:
            async with IglooServer(keys.bfgroup, keys.bfshares[0], tmp_path, relays=[relay.url]) as igloo:
                status, env = await igloo.get("/api/status")
                assert env["relays"] == [relay.url] and env["connectedRelays"] == 1
                assert [r["url"] for r in env["relayDetails"]] == [relay.url]
                async with JsNode(keys.bfgroup, keys.bfshares[1], [relay.url]) as js:
                    pong = await js.command("ping", pubkey=ours)
                    assert pong["ok"] and pong["data"] == {"send": True, "recv": True}, pong
                    status, body = await igloo.post("/api/peers/ping", {"target": js.pubkey})
                    assert status == 200 and body["success"] is True and body["latency"] >= 0, body

                    sighash = os.urandom(32).hex()
                    signed = await js.command("sign", message=sighash, peers=[ours])
                    assert signed["ok"], signed
                    assert_valid(signed["data"][0], keys.group.group_pk)

                    other = os.urandom(32).hex()
                    status, body = await igloo.post("/api/sign", {"message": other})
                    assert status == 200, body
                    assert verifies(keys.group_x, other, body["signature"])

    run(scenario())


# ------------------------------------------------------------------------------ 3. JS nodes, our relay


def test_two_js_nodes_sign_over_our_embedded_relay(js_ready: str, tmp_path: Path) -> None:
    keys = Keyset()

    async def scenario() -> None:
        # Our node holds share 3; the two JS nodes (shares 1 and 2) only use its relay.
        async with IglooServer(keys.bfgroup, keys.bfshares[2], tmp_path) as igloo:
            alice, bob = await asyncio.gather(
                JsNode(keys.bfgroup, keys.bfshares[0], [igloo.relay_url]).start(),
                JsNode(keys.bfgroup, keys.bfshares[1], [igloo.relay_url]).start(),
            )
            try:
                sighash = os.urandom(32).hex()
                signed = await alice.command("sign", message=sighash, peers=[bob.pubkey])
                assert signed["ok"], signed  # bob's REQ used the [filter] form, or he would never hear alice
                assert_valid(signed["data"][0], keys.group.group_pk)
                assert await wait_events(bob, "/sign/handler/res") == 1
            finally:
                await asyncio.gather(alice.close(), bob.close())

    run(scenario())


# ------------------------------------------------------------------------------ 4. the event stream


def test_event_stream_shows_a_js_sign_request_without_secrets(js_ready: str, tmp_path: Path) -> None:
    keys = Keyset()
    ours = keys.members[0]

    async def scenario() -> None:
        async with IglooServer(keys.bfgroup, keys.bfshares[0], tmp_path) as igloo:
            async with JsNode(keys.bfgroup, keys.bfshares[1], [igloo.relay_url]) as js:
                ws = await igloo.events()
                try:
                    frames: list[str] = []

                    async def read_until_response() -> None:
                        while True:
                            frame = await ws.read_message()
                            assert isinstance(frame, str), "event stream closed"
                            frames.append(frame)
                            msg = json.loads(frame)
                            if msg.get("type") == "sign" and msg["message"] == "Signature response sent":
                                return

                    reader = asyncio.ensure_future(asyncio.wait_for(read_until_response(), 15))
                    sighash = os.urandom(32).hex()
                    signed = await js.command("sign", message=sighash, peers=[ours])
                    assert signed["ok"], signed
                    await reader
                finally:
                    ws.close()
                events = [json.loads(f) for f in frames]
                signs = [e for e in events if e.get("type") == "sign"]
                assert [e["message"] for e in signs][-2:] == ["Signature request received",
                                                              "Signature response sent"]
                assert all(e["data"]["from"] == js.pubkey for e in signs[-2:])
                assert sighash in signs[-1]["data"]["sighashes"]
                for frame in frames:
                    assert_no_secret(frame, keys)

    run(scenario())


# ------------------------------------------------------------------------------ member order beyond idx 9


def test_share_10_signs_both_ways_with_lexicographic_member_order(js_ready: str, tmp_path: Path) -> None:
    # JS sorts session members as strings ([10, 2]) and binds that order into the sid (spec §4.2).
    made = keytools.keygen(2, 10)
    group = decode_group(made["group"])
    members = group.member_pubkeys()
    ours, theirs = members[1], members[9]

    async def scenario() -> None:
        async with IglooServer(made["group"], made["shares"][1], tmp_path) as igloo:
            async with JsNode(made["group"], made["shares"][9], [igloo.relay_url]) as js:
                sighash = os.urandom(32).hex()
                signed = await js.command("sign", message=sighash, peers=[ours])
                assert signed["ok"], signed
                assert_valid(signed["data"][0], group.group_pk)

                for peer in members:  # leave the JS node (share 10) as our only allowed co-signer
                    if peer not in (ours, theirs):
                        status, _ = await igloo.put(f"/api/peers/{peer}/policy", {"allowSend": False})
                        assert status == 200
                other = os.urandom(32).hex()
                status, body = await igloo.post("/api/sign", {"message": other})
                assert status == 200, body
                assert verifies(group.group_pk[1:], other, body["signature"])
                assert await wait_events(js, "/sign/handler/res") == 1  # the JS node co-signed it

    run(scenario())


# ------------------------------------------------------------------------------ a JS peer that refuses us


def test_a_js_peer_refusing_us_is_not_waited_on(js_ready: str, tmp_path: Path) -> None:
    # JS share 2 holds recv: false for us and answers our sign requests with silence; JS share 3 signs.
    keys = Keyset()
    ours, refusing = keys.members[0], keys.members[1]
    policies = [{"pubkey": ours, "policy": {"send": True, "recv": False}}]

    async def scenario() -> None:
        async with IglooServer(keys.bfgroup, keys.bfshares[0], tmp_path, sign_timeout=4.0) as igloo:
            async with (
                JsNode(keys.bfgroup, keys.bfshares[1], [igloo.relay_url], policies=policies) as js2,
                JsNode(keys.bfgroup, keys.bfshares[2], [igloo.relay_url]) as js3,
            ):
                for _ in range(4):  # each ping round may make the refusing peer the fastest one
                    status, pinged = await igloo.post("/api/peers/ping", {"target": "all"})
                    assert status == 200 and all(r["success"] for r in pinged["results"]), pinged
                    sighash = os.urandom(32).hex()
                    started = time.monotonic()
                    status, body = await igloo.post("/api/sign", {"message": sighash})
                    assert status == 200, body
                    assert time.monotonic() - started < 1.5  # a fallback would wait half of 4 s first
                    assert verifies(keys.group_x, sighash, body["signature"])
                assert await wait_events(js3, "/sign/handler/res", 4) == 4
                assert not [e for e in js2.events if e["event"] == "bounced" and e.get("from") == ours]
                assert js2.pubkey == refusing

    run(scenario())
