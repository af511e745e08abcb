"""Fuzz the NIP-46 inbound path (node/nip46: Listener → Bunker._inbound) with kind-24133 events that reach it:
signed events from a paired client and from strangers, carrying NIP-44 or NIP-04 content with random requests
(known and unknown methods, random and hostile params, huge and deeply nested JSON), content encrypted to
another key, raw garbage, and replays of earlier events and request ids.

Must hold for every case: no exception escapes or is logged, every answer to a stranger is an error and
nothing else, nothing a stranger sends is stored or queued, the queue stays bounded, and the paired client
still gets its ``pong`` afterwards.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
from hypothesis import given
from hypothesis import strategies as st

from node.crypto import curve
from node.nip46.bunker import Bunker, BunkerOptions
from node.nostr import nip04, nip44
from node.nostr.event import Event, sign_event_gen
from store.db import Database
from store.nip46 import Nip46Store
from tests.fuzz.conftest import ErrorTrap, fuzz_settings, run, scales
from tests.fuzz.strategies import dumps, json_values, text
from tests.nip46.conftest import KeySigner, Recorder
from tests.node.fakenet import FakeNetwork

KIND = 24133
METHODS = ["connect", "ping", "get_public_key", "sign_event", "nip44_encrypt", "nip44_decrypt",
           "nip04_encrypt", "nip04_decrypt", "switch_relays", "get_relays", "describe", "", "x" * 70]
MAX_PENDING = 5


class Party:
    """A key that sends requests and reads the answers addressed to it."""

    def __init__(self, seckey: bytes | None = None) -> None:
        self.seckey = seckey or secrets.token_bytes(32)
        self.pubkey = curve.pubkey_of(self.seckey)[1:].hex()

    def read(self, event: Event) -> dict[str, Any] | None:
        try:
            if "?iv=" in event.content:
                text_ = nip04.decrypt(curve.ecdh_x(self.seckey, bytes.fromhex(event.pubkey)), event.content)
            else:
                key = nip44.conversation_key(self.seckey, bytes.fromhex(event.pubkey))
                text_ = nip44.decrypt(key, event.content)
            body = json.loads(text_)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


def params_for(method: str) -> st.SearchStrategy[Any]:
    template = st.fixed_dictionaries({"kind": st.integers(-1, 70000), "created_at": st.integers(-5, 2**54)},
                                     optional={"tags": json_values(), "content": text, "pubkey": text})
    event_json = st.builds(lambda t: json.dumps(t), template)
    peer = st.one_of(st.builds(lambda: Party().pubkey), text, st.just("00" * 32))
    return st.one_of(
        st.lists(st.one_of(text, event_json, peer), max_size=4),
        st.builds(lambda p, t: [p, t], peer, st.one_of(text, st.integers(1, 70_000).map(lambda n: "y" * n))),
        st.lists(json_values(), max_size=3),
        json_values(),
    )


def well_formed() -> st.SearchStrategy[str]:
    """Requests a real client sends (so the methods behind the gate run too), with random ids."""
    now = int(time.time())
    sign = st.builds(lambda k, c: ["" + json.dumps({"kind": k, "created_at": now, "tags": [], "content": c})],
                     st.sampled_from([1, 1, 7, 4]), text)
    cipher = st.builds(lambda t: [Party().pubkey, t or "x"], text)
    calls = st.one_of(
        st.tuples(st.just("sign_event"), sign),
        st.tuples(st.sampled_from(["nip44_encrypt", "nip04_encrypt", "nip44_decrypt", "nip04_decrypt"]),
                  cipher),
        st.tuples(st.sampled_from(["ping", "get_public_key", "switch_relays", "get_relays", "connect"]),
                  st.just([])),
    )
    ids = st.one_of(st.builds(lambda: secrets.token_hex(8)), st.sampled_from(["1", "2", "same"]))
    return st.builds(lambda rid, call: json.dumps({"id": rid, "method": call[0], "params": call[1]}),
                     ids, calls)


def plaintexts() -> st.SearchStrategy[str]:
    request = st.sampled_from(METHODS).flatmap(lambda m: st.builds(
        lambda rid, p: json.dumps({"id": rid, "method": m, "params": p}),
        st.one_of(st.builds(lambda: secrets.token_hex(8)), text, st.integers()), params_for(m)))
    return st.one_of(
        well_formed(), well_formed(), well_formed(), request, request,
        st.builds(lambda v: dumps(v).decode(), json_values()),
        text,
        st.integers(900, 5000).map(lambda n: '{"id":"d","method":"ping","params":' + "[" * n + "]" * n + "}"),
        st.integers(30_000, 65_000).map(
            lambda n: json.dumps({"id": "big", "method": "ping", "params": ["z" * n]})),
    ).map(lambda s: s.encode("utf-8", "replace").decode() or "{}")


def connect_text(bunker: Bunker, request_id: str) -> str:
    secret = bunker.new_bunker_link()["uri"].split("secret=")[1]
    return json.dumps({"id": request_id, "method": "connect", "params": ["", secret]})


def seal(sender: Party, to: str, plaintext: str, scheme: str, stamp: int) -> Event:
    if scheme == "nip04":
        content = nip04.encrypt_gen(curve.ecdh_x(sender.seckey, bytes.fromhex(to)), plaintext)
    elif scheme == "garbage":
        content = plaintext
    else:
        clipped = plaintext.encode("utf-8")[:65535].decode("utf-8", "ignore") or "x"
        content = nip44.encrypt_gen(nip44.conversation_key(sender.seckey, bytes.fromhex(to)), clipped)
    return sign_event_gen(sender.seckey, KIND, [["p", to]], content, stamp)


@pytest.fixture
def setup(io_loop: tornado.ioloop.IOLoop, tmp_path: Path) -> Any:
    db = Database.open_in(tmp_path)
    net = FakeNetwork()
    signer = KeySigner()
    signer.relays = ["fake://relay"]
    recorder = Recorder()
    bunker = Bunker(signer, Nip46Store(db, secrets.token_bytes(32)), emit=recorder, pool_factory=net.factory,
                    options=BunkerOptions(tick_interval=3600, max_pending=MAX_PENDING, stranger_rate=1e6,
                                          client_rate=1e6, client_burst=1e6, publish_timeout=0.5))
    run(io_loop, bunker.start)
    client = Party()

    async def pair() -> None:
        text_ = connect_text(bunker, "pair")
        net.deliver(seal(client, bunker.pubkey or "", text_, "nip44", int(time.time())))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if bunker.session(client.pubkey) is not None:
                break
        assert bunker.session(client.pubkey) is not None
        bunker.set_policy(client.pubkey, {"kinds": {"1": "allow"}, "methods": {"nip44_encrypt": "allow"}})

    run(io_loop, pair)
    yield bunker, net, client, signer
    run(io_loop, bunker.stop)
    db.close()


async def settle(bunker: Bunker) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
        await bunker.settle(2.0)


@pytest.mark.parametrize("examples", scales(60))
def test_nip46_inbound(setup: Any, io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap, examples: int) -> None:
    """Random kind-24133 events from the paired client and from strangers (see module doc)."""
    bunker, net, client, _signer = setup
    to_bunker = bunker.pubkey
    history: list[Event] = []

    @fuzz_settings(examples)
    @given(from_client=st.booleans(), plaintext=plaintexts(),
           scheme=st.sampled_from(["nip44", "nip44", "nip44", "nip04", "garbage"]),
           target=st.sampled_from(["bunker", "bunker", "bunker", "other"]),
           replay=st.sampled_from([False, False, False, False, True]),
           skew=st.sampled_from([0, 0, 0, -10, 400, -400]))
    def case(from_client: bool, plaintext: str, scheme: str, target: str, replay: bool, skew: int) -> None:
        sender = client if from_client else Party()
        to = to_bunker if target == "bunker" else Party().pubkey
        if replay and history:
            event = history[-1]  # the same event again (and so the same request id)
        else:
            event = seal(sender, to, plaintext, scheme, int(time.time()) + skew)
            history.append(event)
        before = len(net.published)

        async def go() -> None:
            bunker._listener._event(event, "fake://relay")  # what the pool hands over after verifying it
            await settle(bunker)

        run(io_loop, go)
        errors.check()
        assert not {"internal_error", "task_error"} & set(bunker.counters), bunker.counters
        stranger_answers = [e for e in net.published[before:]
                            if e.tags == [["p", event.pubkey]] and event.pubkey != client.pubkey]
        if event.pubkey != client.pubkey:
            assert len(stranger_answers) <= 1
            for answer in stranger_answers:
                body = Party(sender.seckey).read(answer) if sender.pubkey == event.pubkey else None
                if body is not None:
                    assert body.get("error") and body.get("result") == "", body
            assert bunker.session(event.pubkey) is None  # no secret, no session
        assert len(bunker.pending()) <= MAX_PENDING

    case()

    async def still_answers() -> None:
        for record in bunker.pending():
            bunker.decide(record.id, "deny")
        await settle(bunker)
        request = json.dumps({"id": "final", "method": "ping", "params": []})
        before = len(net.published)
        net.deliver(seal(client, to_bunker or "", request, "nip44", int(time.time())))
        for _ in range(200):
            await asyncio.sleep(0.005)
            answers = [client.read(e) for e in net.published[before:] if e.tags == [["p", client.pubkey]]]
            if any(a and a.get("id") == "final" for a in answers):
                break
        answers = [client.read(e) for e in net.published[before:] if e.tags == [["p", client.pubkey]]]
        assert {"id": "final", "result": "pong"} in answers, answers

    if bunker.session(client.pubkey) is None:  # the fuzzer sent logout for the client: pair it again
        net.deliver(seal(client, to_bunker or "", connect_text(bunker, "again"), "nip44", int(time.time())))
        run(io_loop, lambda: settle(bunker))
    run(io_loop, still_answers)
    # nothing a stranger sent was stored
    stored = bunker.storage.load_requests(None, 10_000)
    assert all(r.client_pubkey == client.pubkey for r in stored)
