"""NIP-46 with a real client: nostr-tools 2.25.2's BunkerSigner (npm, run with node) against a running Igloo
(``python server.py``) holding share 1 of a real 2-of-3 group, the reference bifrost node on share 2 online,
share 3 offline, everything on a loopback relay (the JS relay, so the client stays connected while Igloo
restarts).

Covered: bunker pairing, nostrconnect pairing, signEvent (verifyEvent in JS and here), nip44/nip04 through
the bunker read by a third party with plain nostr-tools and the reverse, switchRelays, logout, an unknown
method answered within 1 s, a reused secret refused, a stranger refused, an ask-request approved over REST,
one that expires, and a session that survives a restart.
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
from node.crypto.credentials import decode_group, decode_share
from node.crypto.keygen import recover_secret
from node.nostr.event import Event, verify_event
from tests.igloo_process import ServerProc
from tests.interop.conftest import JsNode, JsRelay
from tests.interop.igloo_proc import API_KEY, IglooServer
from tests.interop.nip46_js import JsBunkerClient

pytestmark = pytest.mark.timeout(180)
T = TypeVar("T")
REQUEST_TTL = 5


def run(coro: Awaitable[T], limit: float = 170.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, limit))


def template(kind: int, content: str) -> dict[str, Any]:
    return {"kind": kind, "created_at": int(time.time()), "tags": [["client", "interop"]], "content": content}


async def ok(reply: dict[str, Any]) -> Any:
    assert reply["ok"], reply
    return reply["data"]


async def wait_listening(igloo: IglooServer, timeout: float = 15.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        code, body = await igloo.get("/api/nip46/bunker")
        if code == 200 and body["listening"] and any(r["connected"] for r in body["relayStatus"]):
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bunker did not start listening: {igloo.log_tail()}")


async def wait_pending(igloo: IglooServer, timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        code, body = await igloo.get("/api/nip46/requests?status=pending")
        if code == 200 and body["requests"]:
            return body["requests"][0]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("no request is waiting for approval")


async def online(igloo: IglooServer, pubkey: str) -> None:
    status, body = await igloo.post("/api/peers/ping", {"target": pubkey})
    assert status == 200 and body["success"] is True, body


def test_bunker_signer_from_npm_against_a_running_igloo(js_ready: str, tmp_path: Path) -> None:
    made = keytools.keygen(2, 3)
    group = decode_group(made["group"])
    group_pk = group.group_pk[1:].hex()
    secret = recover_secret(group, [decode_share(s) for s in made["shares"][:2]])
    third_sk = os.urandom(32).hex()
    third_pk = curve.pubkey_of(bytes.fromhex(third_sk))[1:].hex()

    async def scenario() -> None:
        async with JsRelay() as relay:
            igloo = IglooServer(made["group"], made["shares"][0], tmp_path, relays=[relay.url],
                                extra_env={"NIP46_REQUEST_TTL": str(REQUEST_TTL)})
            await igloo.start()
            try:
                async with JsNode(made["group"], made["shares"][1], [relay.url]) as peer:
                    await online(igloo, peer.pubkey)
                    await against(igloo, relay, peer)
            finally:
                await igloo.stop()
            log = igloo.log_tail() + (tmp_path / "server.log").read_text(errors="replace")
            assert secret.hex() not in log and API_KEY not in log

    async def against(igloo: IglooServer, relay: JsRelay, peer: JsNode) -> None:
        state = await wait_listening(igloo)
        assert state["relays"] == [relay.url]
        code, link = await igloo.post("/api/nip46/bunker", {})
        assert code == 200 and link["uri"].startswith("bunker://")

        async with JsBunkerClient() as app, JsBunkerClient() as thief, JsBunkerClient() as stranger, \
                JsBunkerClient() as web:
            # ---- bunker:// pairing, then the user grants kind 1 and the ciphers on the dashboard
            me = await ok(await app.command("bunker", uri=link["uri"], metadata={"name": "Interop App"}))
            assert me["bunker"] == state["pubkey"] and me["bunker"] != group_pk
            code, body = await igloo.put(f"/api/nip46/sessions/{me['pubkey']}/policy", {
                "kinds": {"1": True}, "methods": {m: True for m in (
                    "nip44_encrypt", "nip44_decrypt", "nip04_encrypt", "nip04_decrypt")}})
            assert code == 200, body
            assert await ok(await app.command("get_public_key")) == group_pk
            assert await ok(await app.command("ping")) == "pong"

            signed = await ok(await app.command("sign", template=template(1, "signed by a threshold")))
            event = Event.from_json(signed)
            verify_event(event)
            assert event.pubkey == group_pk and event.content == "signed by a threshold"

            # ---- NIP-44 / NIP-04 through the bunker, read by a third party with plain nostr-tools, and back
            for scheme in ("nip44", "nip04"):
                text = f"{scheme} from the group ✓"
                sealed = await ok(await app.command(f"{scheme}_encrypt", peer=third_pk, text=text))
                plain = await ok(await app.command("plain", scheme=scheme, mode="decrypt",
                                                   secret_key=third_sk, peer=group_pk, text=sealed))
                assert plain == text
                back = await ok(await app.command("plain", scheme=scheme, mode="encrypt", secret_key=third_sk,
                                                  peer=group_pk, text=f"{scheme} to the group"))
                assert await ok(await app.command(f"{scheme}_decrypt", peer=third_pk, text=back)) \
                    == f"{scheme} to the group"

            # ---- unknown methods are answered at once; switch_relays answers the session's relays
            for method in ("get_relays", "describe", "create_account"):
                unknown = await app.command("raw", method=method, params=[])
                assert not unknown["ok"] and unknown["err"] == f"unsupported method: {method}"
                assert unknown["ms"] < 1000, unknown
            assert json.loads(await ok(await app.command("raw", method="switch_relays"))) == [relay.url]
            assert await ok(await app.command("switch_relays")) == {"switched": False, "relays": [relay.url]}

            # ---- a reused secret and a stranger are refused
            reused = await thief.command("bunker", uri=link["uri"])
            assert not reused["ok"] and "already used" in reused["err"], reused
            await ok(await stranger.command("open", uri=link["uri"]))
            refused = await stranger.command("get_public_key")
            assert not refused["ok"] and refused["err"].startswith("unauthorized"), refused

            # ---- an ask-request approved over REST, and one nobody approves
            asked = asyncio.ensure_future(app.command("sign", template=template(7, "+"), timeout=30))
            pending = await wait_pending(igloo)
            assert pending["method"] == "sign_event" and pending["preview"]["kind"] == 7
            code, body = await igloo.post("/api/nip46/requests", {"id": pending["id"], "action": "approve"})
            assert code == 200 and body["request"]["status"] == "approved"
            reaction = Event.from_json(await ok(await asked))
            verify_event(reaction)
            assert reaction.kind == 7
            code, body = await igloo.post("/api/nip46/requests", {"id": pending["id"], "action": "approve"})
            assert code == 409

            started = time.monotonic()
            lapsed = await app.command("sign", template=template(30023, "never approved"), timeout=30)
            assert not lapsed["ok"] and "expired" in lapsed["err"], lapsed
            assert REQUEST_TTL - 1 <= time.monotonic() - started <= REQUEST_TTL + 5
            code, body = await igloo.get("/api/nip46/requests?status=expired")
            assert [r["preview"]["kind"] for r in body["requests"]] == [30023]

            # ---- nostrconnect:// pairing on the client's relays, with the permission the user ticked
            offer = await ok(await web.command("nostrconnect_uri", relays=[relay.url],
                                               perms=["sign_event:1", "nip44_encrypt"], name="Interop Web"))
            assert await ok(await web.command("nostrconnect_listen", timeout=30)) == "listening"
            confirm = {"uri": offer["uri"], "grant": ["sign_event:1"]}
            code, body = await igloo.post("/api/nip46/connect", confirm)
            assert code == 200 and body["success"] is True and body["relays"][0]["accepted"] is True, body
            assert (await ok(await web.command("nostrconnect_wait")))["bunker"] == state["pubkey"]
            assert await ok(await web.command("get_public_key")) == group_pk
            verify_event(Event.from_json(await ok(await web.command("sign", template=template(1, "nc")))))

            # ---- logout ends the session
            assert await ok(await app.command("logout")) == "ack"
            code, body = await igloo.get("/api/nip46/sessions")
            assert me["pubkey"] not in [s["pubkey"] for s in body["sessions"]]
            await ok(await app.command("open", uri=link["uri"], secret_key=me["secret_key"]))
            after = await app.command("ping")
            assert not after["ok"] and after["err"].startswith("unauthorized"), after

            # ---- the nostrconnect session survives a restart (the client only reconnects, as apps do)
            await ServerProc.stop(igloo)
            await igloo.start()
            await online(igloo, peer.pubkey)
            assert (await wait_listening(igloo))["pubkey"] == state["pubkey"]
            assert await ok(await web.command("connect")) == "ack"
            kept = Event.from_json(await ok(await web.command("sign", template=template(1, "after restart"))))
            verify_event(kept)
            assert kept.pubkey == group_pk

    run(scenario())
