"""frostr-py-vectors.json, transport half: the nostr-p2p cipher, a signed event, NIP-44 v2, NIP-04 (made
by nostr-tools' ``nip04.encrypt``) and the live loopback transcript of three JS nodes (every event verified
and decrypted)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.crypto import credentials, curve, ecdh, session
from node.nostr import cipher, nip04, nip44
from node.nostr.event import Event, verify_event
from tests.crypto.vectors import cases, unpack

FILE = "frostr-py-vectors.json"


def _transport(data: Any) -> list[tuple[str, Any]]:
    return [(name, (name, case)) for name, case in data["transport"].items()]


def _p2p(case: Any) -> None:
    sender, recipient = bytes.fromhex(case["sender_seckey"]), bytes.fromhex(case["recipient_seckey"])
    assert curve.pubkey_of(sender)[1:].hex() == case["sender_pubkey"]
    assert cipher.shared_key(sender, bytes.fromhex(case["recipient_pubkey"])).hex() == case["shared_x"]
    assert cipher.shared_key(recipient, bytes.fromhex(case["sender_pubkey"])).hex() == case["shared_x"]
    plaintext = cipher.encode_envelope("/ping/req", case["message_id"], "ping")
    assert plaintext == case["plaintext_payload"]
    content = cipher.encrypt_payload(
        sender, bytes.fromhex(case["recipient_pubkey"]), plaintext, bytes.fromhex(case["iv_hex"])
    )
    assert content == case["content"]
    assert cipher.decrypt_payload(recipient, bytes.fromhex(case["sender_pubkey"]), content) == plaintext
    second = cipher.decrypt_payload(recipient, bytes.fromhex(case["sender_pubkey"]), case["content_2"])
    assert second == case["plaintext_payload_2"]
    assert cipher.decode_envelope(second)[2] == '{"hello":"world"}'


def _signed_event(case: Any) -> None:
    event = Event.from_json(case["event"])
    verify_event(event)
    assert event.kind == 20004
    recipient = bytes.fromhex(case["recipient_seckey"])
    assert event.tags == [["p", curve.pubkey_of(recipient)[1:].hex()]]
    plaintext = cipher.decrypt_payload(recipient, bytes.fromhex(event.pubkey), event.content)
    assert list(cipher.decode_envelope(plaintext)) == case["decrypted_payload"]


def _nip44(case: Any) -> None:
    sender = bytes.fromhex(case["sender_seckey"])
    assert curve.ecdh_x(sender, bytes.fromhex(case["recipient_pubkey"])).hex() == case["shared_x"]
    key = nip44.conversation_key_from_shared_x(bytes.fromhex(case["shared_x"]))
    assert key.hex() == case["conversation_key"]
    assert nip44.conversation_key(sender, bytes.fromhex(case["recipient_pubkey"])) == key
    assert nip44.encrypt(key, case["plaintext"], bytes.fromhex(case["nonce"])) == case["payload"]
    assert nip44.decrypt(key, case["payload"]) == case["plaintext"]


def _nip04(case: Any) -> None:
    recipient = bytes.fromhex(case["recipient_seckey"])
    assert curve.pubkey_of(recipient)[1:].hex() == case["recipient_pubkey"]
    sender_pubkey = curve.pubkey_of(bytes.fromhex(case["sender_seckey"]))
    assert nip04.decrypt(curve.ecdh_x(recipient, sender_pubkey), case["payload"]) == case["plaintext"]
    wrong_key = curve.ecdh_x(bytes.fromhex(case["sender_seckey"]), sender_pubkey)
    try:  # NIP-04 has no MAC: a wrong key fails on padding, or (about 1 time in 256) yields garbage
        assert nip04.decrypt(wrong_key, case["payload"]) != case["plaintext"]
    except ValueError:
        pass


@pytest.mark.parametrize("param", cases(FILE, _transport))
def test_transport(param: Any) -> None:
    name, case = unpack(param)
    {"nostr_p2p_aes_gcm": _p2p, "signed_event_example": _signed_event, "nip44_v2": _nip44,
     "nip04": _nip04}[name](case)


def _even_keyset(data: Any) -> Any:
    return next(k for k in data["keysets"] if k["label"] == "even")


def _messages(data: Any) -> list[tuple[str, Any]]:
    live = data["live_transcript"]
    ks = _even_keyset(data)
    return [
        (f"{i}-{m['envelope'][0]}-{m['from_idx']}to{m['to_idx']}", (m, live, ks))
        for i, m in enumerate(live["messages"])
    ]


def _members(ks: Any) -> tuple[credentials.GroupPackage, dict[int, credentials.SharePackage]]:
    group = credentials.decode_group(ks["bfgroup"])
    return group, {s.idx: s for s in map(credentials.decode_share, ks["bfshares"])}


@pytest.mark.parametrize("param", cases(FILE, _messages))
def test_live_message(param: Any) -> None:
    msg, live, ks = unpack(param)
    group, shares = _members(ks)
    pubkeys = {n["idx"]: n["pubkey"] for n in live["node_pubkeys"]}
    assert group.member_pubkeys() == [pubkeys[i] for i in (1, 2, 3)]
    event = Event.from_json(msg["event"])
    verify_event(event)
    assert event.kind == 20004
    assert event.pubkey == pubkeys[msg["from_idx"]]
    assert event.tags == [["p", pubkeys[msg["to_idx"]]]]
    recipient = shares[msg["to_idx"]]
    plaintext = cipher.decrypt_payload(recipient.seckey, bytes.fromhex(event.pubkey), event.content)
    tag, msg_id, data = cipher.decode_envelope(plaintext)
    assert [tag, msg_id, data] == msg["envelope"]
    assert cipher.encode_envelope(tag, msg_id, data) == plaintext
    if tag in ("/ping/req", "/echo/req"):
        assert data == msg["data_parsed"]
    else:
        assert json.loads(data) == msg["data_parsed"]
    if tag == "/echo/req":
        assert msg["from_idx"] == msg["to_idx"]
    # a wrong share cannot read it
    other = shares[next(i for i in (1, 2, 3) if i not in (msg["from_idx"], msg["to_idx"]))]
    with pytest.raises(ValueError, match="authentication"):
        cipher.decrypt_payload(other.seckey, bytes.fromhex(event.pubkey), event.content)


def _flows(data: Any) -> list[tuple[str, Any]]:
    live = data["live_transcript"]
    return [("request-response-pairs", (live, _even_keyset(data)))]


@pytest.mark.parametrize("param", cases(FILE, _flows))
def test_live_flows(param: Any) -> None:
    """Responses reuse the request id; our code reproduces every ECDH/sign payload and result."""
    live, ks = unpack(param)
    group, shares = _members(ks)
    messages = live["messages"]
    requests = {m["envelope"][1]: m for m in messages if m["envelope"][0].endswith("/req")}
    results = live["results"]
    sign_results = []
    for m in messages:
        tag, msg_id, data = m["envelope"]
        if not tag.endswith("/res"):
            continue
        req = requests[msg_id]
        assert req["envelope"][0] == tag.replace("/res", "/req")
        assert (req["from_idx"], req["to_idx"]) == (m["to_idx"], m["from_idx"])
        if tag == "/ecdh/res":
            own = ecdh.EcdhPackage.from_json(json.loads(req["envelope"][2]))
            mine = ecdh.create_ecdh_pkg(group, shares[own.idx], own.members, own.ecdh_pk)
            assert mine == own
            theirs = ecdh.create_ecdh_pkg(group, shares[m["from_idx"]], own.members, own.ecdh_pk)
            assert json.dumps(theirs.to_json(), separators=(",", ":")) == data
            assert ecdh.combine_ecdh_pkgs([own, theirs]).hex() == results["ecdh"]["data"]
        if tag == "/sign/res":
            sess = session.SessionPackage.from_json(json.loads(req["envelope"][2]))
            assert sess.gid == session.get_group_id(group)
            recomputed = session.get_session_id(
                sess.gid, sess.members, sess.hashes, sess.content, sess.type, sess.stamp
            )
            assert recomputed == sess.sid
            theirs = session.sign_session(group, shares[m["from_idx"]], sess)
            assert json.dumps(theirs.to_json(), separators=(",", ":")) == data
            received = session.PsigPackage.from_json(json.loads(data))
            session.verify_psig_pkg(group, sess, received)
            own = session.sign_session(group, shares[req["from_idx"]], sess)
            sign_results.append([list(e) for e in session.combine_session(group, sess, [own, received])])
    assert sign_results == [results["sign"]["data"], results["sign_batch"]["data"]]
    for sighash, tweaked_pk, sig in results["sign"]["data"] + results["sign_batch"]["data"]:
        assert curve.schnorr_verify(bytes.fromhex(tweaked_pk)[1:], bytes.fromhex(sighash), bytes.fromhex(sig))
    assert results["echo"] == {"ok": True, "data": "0123456789abcdef"}
    assert results["ping"] == {"ok": True, "data": {"send": True, "recv": True}}
