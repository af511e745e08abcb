"""What one heavy but normal hour of Nostr use costs a co-signer's signing budget (SIGN_BUDGET).

Usage: `.venv/bin/python bench/sign_budget_session.py [--json]`

The budget counts, per requesting peer, every partial signature (one per sighash) and every ECDH share Igloo
gives. A user's signing device (a browser extension such as frost2x, or Igloo Desktop) is such a peer: every
event the user's client signs and every NIP-44/NIP-04 message it encrypts or decrypts is a request to Igloo.
This script replays one hour of a heavy user's client, as real operations on a 2-of-3 group: the device
(share 1, a NodeService standing in for the extension) asks Igloo (share 2, a NodeService whose budget is
lifted) over the embedded relay on a loopback port, and Igloo's budget ledger is read before and after.

The hour (every number is an assumption, chosen on the heavy side of a day-long session in clients like
Coracle, Amethyst or Primal):

| activity | count | the device asks for |
|---|---|---|
| NIP-42 AUTH on relays that require it, connecting and reconnecting once | 16 | 16 signatures (22242) |
| notes and replies | 20 | 20 signatures (kind 1) |
| reactions | 60 | 60 signatures (kind 7) |
| reposts | 10 | 10 signatures (kind 6) |
| zap requests | 5 | 5 signatures (kind 9734) |
| follow list, relay list, two app-settings saves | 4 | 4 signatures (3, 10002, 30078) |
| media uploads, each with a Blossom/NIP-98 authorisation for upload and mirror | 3 | 6 signatures |
| NIP-17 DMs sent: a seal for the recipient, one for the sender's copy | 15 | 30 signatures, 30 encryptions |
| NIP-17 inbox: gift wraps (each from a fresh key) from 10 correspondents | 150 | 300 decryptions |
| legacy NIP-04 DMs read, from 3 correspondents | 20 | 20 NIP-04 decryptions |

Gift wraps are the large item: NIP-59 wraps every message with a new random key, so no ECDH secret can be
reused across wraps. Two figures are printed: with Igloo's own cache (a secret kept once a NIP-44 MAC proves
it, `docs/SECURITY.md` §6), and with no cache at all (one ECDH per encryption or decryption), which is what a
requester that keeps nothing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers import relay  # noqa: E402
from node import NodeOptions, NodeService  # noqa: E402
from node.crypto import curve  # noqa: E402
from node.crypto.keygen import generate_dealer_pkg_gen  # noqa: E402
from node.nostr import nip04, nip44  # noqa: E402
from node.nostr.event import Event, sign_event_gen  # noqa: E402
from node.transport.pool import RelayPool  # noqa: E402
from relay import RelayState  # noqa: E402

SIGNED_KINDS = [(22242, 16), (1, 20), (7, 60), (6, 10), (9734, 5), (3, 1), (10002, 1), (30078, 2), (24242, 6)]
DMS_SENT = 15
WRAPS_READ = 150
CORRESPONDENTS = 10
NIP04_READ, NIP04_CORRESPONDENTS = 20, 3
UNLIMITED = 1_000_000


def keypair() -> tuple[bytes, str]:
    sk = secrets.token_bytes(32)
    return sk, curve.pubkey_of(sk)[1:].hex()


def gift_wrap(sender_sk: bytes, sender_pk: str, recipient_pk: str, text: str) -> Event:
    """A NIP-17 DM as NIP-59 builds it: rumor, seal signed by the sender, wrap signed by a random key."""
    now = int(time.time())
    rumor = {"kind": 14, "created_at": now, "tags": [["p", recipient_pk]], "content": text,
             "pubkey": sender_pk}
    seal_key = nip44.conversation_key(sender_sk, bytes.fromhex(recipient_pk))
    seal = sign_event_gen(sender_sk, 13, [], nip44.encrypt_gen(seal_key, json.dumps(rumor)), now)
    wrap_sk, _ = keypair()
    wrap_key = nip44.conversation_key(wrap_sk, bytes.fromhex(recipient_pk))
    return sign_event_gen(wrap_sk, 1059, [["p", recipient_pk]], nip44.encrypt_gen(wrap_key, json.dumps(
        seal.to_json())), now)


async def hour(device: NodeService, igloo: NodeService, *, cache: bool) -> dict[str, int]:
    """Replay the hour on ``device``; what Igloo's budget was charged for it, by activity."""
    group_pk = device.group_pubkey
    charged: dict[str, int] = {}

    def used() -> int:
        return igloo.budget.limit - igloo.budget.remaining(device.pubkey)

    async def step(name: str, work: Any) -> None:
        before = used()
        await work
        charged[name] = charged.get(name, 0) + used() - before

    def fresh() -> None:
        if not cache:
            device.cipher.forget()

    async def signs() -> None:
        for kind, count in SIGNED_KINDS:
            for n in range(count):
                await device.sign_event({"kind": kind, "created_at": int(time.time()), "tags": [],
                                         "content": f"{kind}/{n}"})

    correspondents = [keypair() for _ in range(CORRESPONDENTS)]
    inbox: list[Event] = []

    async def read_inbox() -> None:
        for wrap in inbox:
            fresh()
            seal = Event.from_json(json.loads(await device.decrypt("nip44", wrap.pubkey, wrap.content)))
            fresh()
            rumor = json.loads(await device.decrypt("nip44", seal.pubkey, seal.content))
            assert rumor["kind"] == 14

    async def send_dms() -> None:
        for n in range(DMS_SENT):
            _, recipient = correspondents[n % CORRESPONDENTS]
            rumor = json.dumps({"kind": 14, "content": f"dm {n}", "tags": [["p", recipient]]})
            for target in (recipient, group_pk):  # the recipient's seal, then the sender's own copy
                fresh()
                content = await device.encrypt("nip44", target, rumor)
                await device.sign_event({"kind": 13, "created_at": int(time.time()), "tags": [],
                                         "content": content})

    async def read_nip04() -> None:
        senders = [keypair() for _ in range(NIP04_CORRESPONDENTS)]
        for n in range(NIP04_READ):
            sk, pk = senders[n % NIP04_CORRESPONDENTS]
            payload = nip04.encrypt_gen(curve.ecdh_x(sk, bytes.fromhex("02" + group_pk)), f"legacy {n}")
            fresh()
            assert await device.decrypt("nip04", pk, payload) == f"legacy {n}"

    for n in range(WRAPS_READ):
        sk, pk = correspondents[n % CORRESPONDENTS]
        inbox.append(gift_wrap(sk, pk, group_pk, f"incoming {n}"))
    await step("signed events", signs())
    await step("NIP-17 inbox (wraps and seals)", read_inbox())
    await step("NIP-17 DMs sent (2 seals each)", send_dms())
    await step("NIP-04 DMs read", read_nip04())
    charged["total"] = sum(charged.values())
    return charged


async def main(as_json: bool) -> None:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(tornado.web.Application(relay.ROUTES, relay=RelayState()))
    server.add_sockets(sockets)
    url = f"ws://127.0.0.1:{sockets[0].getsockname()[1]}/"
    group, shares = generate_dealer_pkg_gen(2, 3)
    options = NodeOptions(sign_timeout=5.0, ping_interval=3600, sign_budget=UNLIMITED)
    device, igloo = (NodeService(group, share, [url], emit=lambda *a: None, pool_factory=RelayPool,
                                 options=options) for share in shares[:2])
    results: dict[str, Any] = {}
    try:
        for node in (igloo, device):
            await node.start()
            await node.wait_ready(5)
        while not (device.ready and igloo.ready):
            await asyncio.sleep(0.01)
        await device.ping(igloo.pubkey)
        for peer in device.peers:  # share 3 is offline: Igloo co-signs everything
            if peer != igloo.pubkey:
                device.policies.set(peer, send=False)
        started = time.perf_counter()
        results["cached"] = await hour(device, igloo, cache=True)
        device.cipher.forget()
        results["no cache"] = await hour(device, igloo, cache=False)
        results["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        for node in (device, igloo):
            await node.stop()
        server.stop()
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(f"one heavy hour, charged to the device's budget at Igloo (replayed in {results['seconds']} s):")
    for name in results["cached"]:
        print(f"  {name:34} {results['cached'][name]:5} with Igloo's cache  {results['no cache'][name]:5} "
              "with none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    asyncio.run(main(parser.parse_args().json))
