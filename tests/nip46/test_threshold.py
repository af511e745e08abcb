"""The bunker on a real 2-of-3 FROSTR group: NodeSigner over a real NodeManager and NodeService, one co-signer
online, everything on the embedded relay on a loopback port. Signatures verify under the group key, a burst
of decrypts costs one ECDH round, and with the co-signer gone the client gets a clear error in time."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from node import NodeManager, NodeOptions, NodeService
from node.crypto import curve
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nip46.bunker import Bunker, BunkerOptions
from node.nip46.node_signer import NodeSigner
from node.nip46.records import FAILED
from node.nostr import nip44
from node.nostr.event import Event, verify_event
from node.transport.pool import RelayPool
from store.db import Database
from store.nip46 import Nip46Store
from tests.nip46.client import Nip46Client
from tests.nip46.conftest import Recorder, until
from tests.transport.conftest import LocalServer

pytestmark = pytest.mark.timeout(60)
SIGN_TIMEOUT = 2.0


async def test_threshold_bunker_signs_decrypts_in_one_round_and_fails_clearly(
        io_loop: Any, relay: LocalServer, tmp_path: Path) -> None:
    group, shares = generate_dealer_pkg_gen(2, 3)
    options = NodeOptions(sign_timeout=SIGN_TIMEOUT, ping_interval=3600)
    manager = NodeManager(emit=lambda *a: None, options=options, default_relays=[relay.url],
                          env_group=encode_group(group), env_share=encode_share(shares[0]),
                          pool_factory=RelayPool)
    peer = NodeService(group, shares[1], [relay.url], emit=lambda *a: None, pool_factory=RelayPool,
                       options=options)  # share 3 stays offline
    db = Database.open_in(tmp_path)
    recorder = Recorder()
    signer = NodeSigner(manager)
    bunker = Bunker(signer, Nip46Store(db, secrets.token_bytes(32)), emit=recorder, pool_factory=RelayPool,
                    options=BunkerOptions(tick_interval=3600))
    client: Nip46Client | None = None
    try:
        await peer.start()
        await manager.boot()
        service = manager.service
        assert service is not None and await service.wait_ready(5) and await peer.wait_ready(5)
        await until(lambda: service.ready and peer.ready)
        await service.ping(peer.pubkey)
        await bunker.start()
        await bunker._listener.wait_subscribed([relay.url], 5)
        link = bunker.new_bunker_link()
        client = await Nip46Client([relay.url], bunker.pubkey or "").start()
        assert (await client.call("connect", ["", link["uri"].split("secret=")[1]]))["result"] == "ack"
        assert (await client.call("get_public_key"))["result"] == service.group_pubkey
        bunker.set_policy(client.pubkey, {"kinds": {"1": "allow"},
                                          "methods": {"nip44_decrypt": "allow", "nip44_encrypt": "allow"}})

        template = {"kind": 1, "created_at": int(time.time()), "tags": [], "content": "threshold note"}
        answer = await client.call("sign_event", [json.dumps(template)])
        signed = Event.from_json(json.loads(answer["result"]))
        verify_event(signed)
        assert signed.pubkey == service.group_pubkey

        # a DM inbox opening: 12 decrypts from one correspondent, one FROSTR ECDH round
        friend_sk = secrets.token_bytes(32)
        friend = curve.pubkey_of(friend_sk)[1:].hex()
        conv = nip44.conversation_key(friend_sk, group.group_pk)
        ids = [await client.send("nip44_decrypt", [friend, nip44.encrypt_gen(conv, f"dm {n}")])
               for n in range(12)]
        answers = [(await client.wait(rid, 10))[0] for rid in ids]
        assert [a["result"] for a in answers] == [f"dm {n}" for n in range(12)]
        assert signer.cipher().rounds == 1 and signer.cipher().proven(friend)
        sealed = (await client.call("nip44_encrypt", [friend, "answer"]))["result"]
        assert nip44.decrypt(conv, sealed) == "answer" and signer.cipher().rounds == 1

        # the only co-signer goes away: a clear error within the sign timeout, the request failed
        await peer.stop()
        started = time.monotonic()
        failed = await client.call("sign_event", [json.dumps({**template, "content": "no peer"})],
                                   timeout=SIGN_TIMEOUT + 5)
        assert time.monotonic() - started < SIGN_TIMEOUT + 2
        assert "timed out" in failed["error"] or "not enough peers" in failed["error"], failed
        await bunker.settle()
        assert recorder.of("nip46:request_status")[-1]["status"] == FAILED
    finally:
        if client is not None:
            await client.close()
        await bunker.stop()
        await peer.stop()
        await manager.stop()
        db.close()
        await asyncio.sleep(0)
