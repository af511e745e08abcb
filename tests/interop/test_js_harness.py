"""The live JS harness itself: two reference BifrostNodes of one 2-of-3 group over the JS relay.

If these pass, JsRelay and JsNode work, so a failing Python-node interop test points at the Python node.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from node.crypto import curve
from node.crypto.credentials import decode_group
from tests.interop.conftest import JsNode, JsRelay


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_two_js_nodes_ping_sign_and_ecdh_over_the_js_relay(js_keyset: dict[str, Any]) -> None:
    group = decode_group(js_keyset["bfgroup"])
    alice_share, bob_share = js_keyset["bfshares"][0], js_keyset["bfshares"][1]

    async def scenario() -> None:
        async with JsRelay() as relay:
            async with (
                JsNode(js_keyset["bfgroup"], alice_share, [relay.url]) as alice,
                JsNode(js_keyset["bfgroup"], bob_share, [relay.url]) as bob,
            ):
                assert alice.pubkey == group.member_pubkeys()[0]
                assert bob.pubkey == group.member_pubkeys()[1]

                pong = await alice.command("ping", pubkey=bob.pubkey)
                assert pong == {"id": pong["id"], "ok": True, "data": {"send": True, "recv": True}}

                sighash = os.urandom(32).hex()
                signed = await alice.command(
                    "sign", message=sighash, peers=[bob.pubkey], stamp=int(time.time())
                )
                assert signed["ok"], signed
                [[got_hash, group_pk, sig]] = signed["data"]
                assert got_hash == sighash and group_pk == group.group_pk.hex()
                assert curve.schnorr_verify(group.group_pk[1:], bytes.fromhex(sighash), bytes.fromhex(sig))

                peer_sk = os.urandom(32)
                peer_pk = curve.pubkey_of(peer_sk)[1:].hex()
                shared = await bob.command("ecdh", ecdh_pk=peer_pk, peers=[alice.pubkey])
                assert shared["ok"], shared
                assert bytes.fromhex(shared["data"])[1:] == curve.ecdh_x(peer_sk, group.group_pk)

                assert any(e["event"] == "/sign/handler/res" for e in bob.events)

                vectors = [[os.urandom(32).hex(), os.urandom(32).hex()], [os.urandom(32).hex()]]
                batch = await bob.command("sign", message=vectors, peers=[alice.pubkey])
                assert batch["ok"], batch
                assert [e[0] for e in batch["data"]] == [v[0] for v in vectors]
                for sighash, tweaked_pk, sig in batch["data"]:
                    pk = bytes.fromhex(tweaked_pk)[1:]
                    assert curve.schnorr_verify(pk, bytes.fromhex(sighash), bytes.fromhex(sig))
                assert batch["data"][0][1] != group.group_pk.hex()  # the tweak moved the key

                echoed = await alice.command("echo", challenge="0123abcd")
                assert echoed["ok"] and echoed["data"] == "0123abcd"

                await bob.command("set_policy", pubkey=alice.pubkey, send=True, recv=False)
                status = await bob.command("status")
                assert {"pubkey": alice.pubkey, "send": True, "recv": False} in [
                    {"pubkey": p["pubkey"], **p["policy"]} for p in status["data"]["peers"]
                ]
                refused = await alice.command(
                    "sign", message=os.urandom(32).hex(), peers=[bob.pubkey], timeout=15
                )
                assert refused["ok"] is False and refused["err"] == "timeout"
                assert any(e["event"] == "bounced" and e.get("reason") == "unauthorized" for e in bob.events)

    run(scenario())


def test_unknown_op_and_refused_peer_are_reported(js_keyset: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with JsRelay() as relay:
            async with JsNode(js_keyset["bfgroup"], js_keyset["bfshares"][0], [relay.url]) as alice:
                bad = await alice.command("frobnicate")
                assert bad["ok"] is False and "unknown op" in bad["err"]
                stranger = curve.pubkey_of(os.urandom(32))[1:].hex()
                refused = await alice.command("ping", pubkey=stranger)
                assert refused["ok"] is False and refused["err"]

    run(scenario())


def test_js_node_reports_a_bad_config(js_ready: str) -> None:
    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="did not become ready"):
            await JsNode("bfgroup1notacredential", "bfshare1nope", ["ws://127.0.0.1:9"]).start(timeout=10)

    run(scenario())
