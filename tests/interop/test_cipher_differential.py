"""Differential tests of the Nostr-side ciphers against the JS reference packages.

nostr-p2p 2.0.11 (the v1 transport: AES-256-GCM, 24-byte IV, `?iv=`, and the whole kind-20004 event), and
nostr-tools 2.17.0 (NIP-44 v2, NIP-04, NIP-19). Fresh random keys and a spread of plaintexts each run; every
ciphertext made on one side is opened on the other. Two node calls in all.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from node.crypto import curve
from node.nostr import cipher, nip04, nip19, nip44
from node.nostr.event import Event, sign_event_gen, verify_event
from tests.interop.conftest import oracle, oracle_raw

CASES = 8  # one pair per plaintext below
PLAINTEXTS = [
    "ping",
    "",  # not for NIP-44, whose minimum is 1 byte
    "x" * 32,
    "y" * 33,
    '["/sign/req","8d2873cfc041e15adda8d5cf66054e86","{\\"content\\":null}"]',
    'żółw ✓ 🔑 \u2028 \\ " </script>',
    "z" * 70_000,  # beyond NIP-44's 65535-byte limit: transport and NIP-04 only
    "q" * 65_535,
]


def keypair() -> tuple[bytes, str]:
    sk = os.urandom(32)
    return sk, curve.pubkey_of(sk)[1:].hex()


def nip44_ok(text: str) -> bool:
    return 1 <= len(text.encode()) <= 65_535


def pairs() -> list[dict[str, Any]]:
    out = []
    for i in range(CASES):
        (a, pa), (b, pb) = keypair(), keypair()
        out.append({"a": a, "pa": pa, "b": b, "pb": pb, "pt": PLAINTEXTS[i % len(PLAINTEXTS)]})
    return out


@pytest.fixture(scope="module")
def js_made(js_ready: str) -> dict[str, Any]:
    """Ciphertexts, events and bech32 strings produced by the JS packages."""
    ps = pairs()
    cases: list[dict[str, Any]] = []
    for p in ps:
        a, pb, pt = p["a"].hex(), p["pb"], p["pt"]
        p["iv"], p["nonce"], p["msg_id"] = os.urandom(24).hex(), os.urandom(32).hex(), os.urandom(16).hex()
        p["tag"] = "/sign/req"
        p["first"] = len(cases)
        cases += [
            {"op": "shared_secret", "seckey": a, "pubkey": pb},
            {"op": "p2p_encrypt", "seckey": a, "pubkey": pb, "plaintext": pt},
            {"op": "p2p_encrypt", "seckey": a, "pubkey": pb, "plaintext": pt, "iv": p["iv"]},
            {"op": "p2p_event", "seckey": a, "pubkey": pb, "tag": p["tag"], "data": pt, "id": p["msg_id"]},
            {"op": "envelope", "tag": p["tag"], "data": pt, "id": p["msg_id"]},
            {"op": "nip44_conv_key", "seckey": a, "pubkey": pb},
            {"op": "nip04_encrypt", "seckey": a, "pubkey": pb, "plaintext": pt},
            {"op": "nsec_encode", "seckey": a},
            {"op": "npub_encode", "pubkey": pb},
        ]
    results = oracle(cases)
    names = ["shared", "p2p", "p2p_iv", "event", "envelope", "conv", "nip04", "nsec", "npub"]
    for p in ps:
        p["js"] = dict(zip(names, results[p["first"] : p["first"] + len(names)], strict=True))
    # NIP-44 needs the conversation key first: a second batch (fixed and random nonces).
    cases = []
    for p in ps:
        if nip44_ok(p["pt"]):
            conv = p["js"]["conv"]
            cases += [
                {"op": "nip44_encrypt", "conv_key": conv, "plaintext": p["pt"], "nonce": p["nonce"]},
                {"op": "nip44_encrypt", "conv_key": conv, "plaintext": p["pt"]},
            ]
    it = iter(oracle(cases))
    for p in ps:
        if nip44_ok(p["pt"]):
            p["js"]["nip44_fixed"], p["js"]["nip44"] = next(it), next(it)
    return {"pairs": ps}


def test_transport_cipher_matches_nostr_p2p(js_made: dict[str, Any]) -> None:
    for p in js_made["pairs"]:
        a, b, pa, pb = p["a"], p["b"], bytes.fromhex(p["pa"]), bytes.fromhex(p["pb"])
        assert p["js"]["shared"] == curve.ecdh_x(a, pb).hex() == curve.ecdh_x(b, pa).hex()
        assert cipher.decrypt_payload(b, pa, p["js"]["p2p"]) == p["pt"]
        assert cipher.encrypt_payload(a, pb, p["pt"], bytes.fromhex(p["iv"])) == p["js"]["p2p_iv"]
        assert cipher.encode_envelope(p["tag"], p["msg_id"], p["pt"]) == p["js"]["envelope"]


def test_nostr_p2p_events_verify_and_open_in_igloo(js_made: dict[str, Any]) -> None:
    for p in js_made["pairs"]:
        event = Event.from_json(p["js"]["event"])
        verify_event(event)
        assert event.kind == 20004
        assert event.pubkey == p["pa"]
        assert ["p", p["pb"]] in event.tags
        text = cipher.decrypt_payload(p["b"], bytes.fromhex(event.pubkey), event.content)
        assert cipher.decode_envelope(text) == (p["tag"], p["msg_id"], p["pt"])


def test_nip44_matches_nostr_tools(js_made: dict[str, Any]) -> None:
    for p in js_made["pairs"]:
        conv = nip44.conversation_key(p["a"], bytes.fromhex(p["pb"]))
        assert conv.hex() == p["js"]["conv"]
        assert nip44.conversation_key(p["b"], bytes.fromhex(p["pa"])) == conv
        assert nip44.conversation_key_from_shared_x(curve.ecdh_x(p["a"], bytes.fromhex(p["pb"]))) == conv
        if nip44_ok(p["pt"]):
            assert nip44.encrypt(conv, p["pt"], bytes.fromhex(p["nonce"])) == p["js"]["nip44_fixed"]
            assert nip44.decrypt(conv, p["js"]["nip44"]) == p["pt"]


def test_nip04_and_nip19_match_nostr_tools(js_made: dict[str, Any]) -> None:
    for p in js_made["pairs"]:
        shared_x = curve.ecdh_x(p["b"], bytes.fromhex(p["pa"]))
        assert nip04.decrypt(shared_x, p["js"]["nip04"]) == p["pt"]
        assert nip19.nsec_encode(p["a"]) == p["js"]["nsec"]
        assert nip19.npub_encode(bytes.fromhex(p["pb"])) == p["js"]["npub"]
        assert nip19.nsec_decode(p["js"]["nsec"]) == p["a"]
        assert nip19.npub_decode(p["js"]["npub"]).hex() == p["pb"]


def test_igloo_ciphertexts_open_in_js(js_ready: str) -> None:
    ps = pairs()
    cases: list[dict[str, Any]] = []
    expect: list[Any] = []
    for p in ps:
        a, b, pa, pb, pt = p["a"], p["b"], bytes.fromhex(p["pa"]), bytes.fromhex(p["pb"]), p["pt"]
        msg_id = os.urandom(16).hex()
        content = cipher.encrypt_payload_gen(a, pb, cipher.encode_envelope("/ecdh/req", msg_id, pt))
        event = sign_event_gen(a, 20004, [["p", p["pb"]]], content, int(time.time()))
        cases += [
            {
                "op": "p2p_decrypt",
                "seckey": b.hex(),
                "pubkey": p["pa"],
                "content": cipher.encrypt_payload_gen(a, pb, pt),
            },
            {"op": "p2p_open", "seckey": b.hex(), "event": event.to_json()},
            {
                "op": "nip04_decrypt",
                "seckey": b.hex(),
                "pubkey": p["pa"],
                "payload": nip04.encrypt_gen(curve.ecdh_x(a, pb), pt),
            },
            {"op": "nip19_decode", "text": nip19.nsec_encode(a)},
            {"op": "nip19_decode", "text": nip19.npub_encode(pa)},
        ]
        expect += [
            pt,
            {"tag": "/ecdh/req", "id": msg_id, "data": pt},
            pt,
            {"type": "nsec", "data": a.hex()},
            {"type": "npub", "data": p["pa"]},
        ]
        if nip44_ok(pt):
            conv = nip44.conversation_key(a, pb)
            cases.append(
                {"op": "nip44_decrypt", "conv_key": conv.hex(), "payload": nip44.encrypt_gen(conv, pt)}
            )
            expect.append(pt)
    assert oracle(cases) == expect


def test_tampering_is_refused_on_both_sides(js_ready: str) -> None:
    (a, pa), (b, pb) = keypair(), keypair()
    conv = nip44.conversation_key(a, bytes.fromhex(pb))
    good44 = nip44.encrypt_gen(conv, "secret message")
    bad44 = good44[:60] + ("A" if good44[60] != "A" else "B") + good44[61:]
    good_p2p = cipher.encrypt_payload_gen(a, bytes.fromhex(pb), "secret message")
    body, iv = good_p2p.split("?iv=")
    bad_p2p = body[:5] + ("A" if body[5] != "A" else "B") + body[6:] + "?iv=" + iv
    wrong_key = os.urandom(32)
    results = oracle_raw(
        [
            {"op": "nip44_decrypt", "conv_key": conv.hex(), "payload": bad44},
            {"op": "p2p_decrypt", "seckey": b.hex(), "pubkey": pa, "content": bad_p2p},
            {"op": "p2p_decrypt", "seckey": wrong_key.hex(), "pubkey": pa, "content": good_p2p},
        ]
    )
    assert [r["ok"] for r in results] == [False, False, False]
    with pytest.raises(ValueError):
        nip44.decrypt(conv, bad44)
    with pytest.raises(ValueError):
        cipher.decrypt_payload(b, bytes.fromhex(pa), bad_p2p)
    with pytest.raises(ValueError):
        cipher.decrypt_payload(wrong_key, bytes.fromhex(pa), good_p2p)
