"""frostr-py-vectors.json (generated from the published npm packages): keysets, sessions, ECDH."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.crypto import credentials, curve, ecdh, frost, hashes, keygen, session
from node.nostr import nip19
from tests.crypto.vectors import cases, unpack

FILE = "frostr-py-vectors.json"


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _section(name: str) -> Any:
    def split(data: Any) -> list[tuple[str, Any]]:
        keysets = {k["label"]: k for k in data["keysets"]}
        out = []
        for item in data[name]:
            label = item.get("label") or item.get("keyset")
            out.append((f"{name}-{label}", (item, keysets[label])))
        return out

    return split


def _load(keyset: Any) -> tuple[credentials.GroupPackage, dict[int, credentials.SharePackage]]:
    group = credentials.decode_group(keyset["bfgroup"])
    shares = {s.idx: s for s in map(credentials.decode_share, keyset["bfshares"])}
    return group, shares


@pytest.mark.parametrize("param", cases(FILE, _section("keysets")))
def test_keyset(param: Any) -> None:
    ks, _ = unpack(param)
    inputs = ks["inputs"]
    group, shares = keygen.generate_dealer_pkg(
        inputs["threshold"],
        inputs["total"],
        [bytes.fromhex(s) for s in inputs["secrets"]],
        [bytes.fromhex(s) for s in inputs["aux_seeds"]],
    )
    assert group.to_json() == ks["group"]
    assert [s.to_json() for s in shares] == ks["shares"]
    assert compact(group.to_json()) == compact(ks["group"])  # key order too
    assert credentials.serialize_group(group).hex() == ks["group_serialized_hex"]
    assert [credentials.serialize_share(s).hex() for s in shares] == ks["shares_serialized_hex"]
    assert credentials.encode_group(group) == ks["bfgroup"]
    assert [credentials.encode_share(s) for s in shares] == ks["bfshares"]
    assert credentials.decode_group(ks["bfgroup"]) == group
    assert session.get_group_id(group) == ks["group_id"]
    nonces = {c.idx: (c.hidden_pn, c.binder_pn) for c in group.commits}
    assert (frost.commit_list(nonces) + group.group_pk).hex() == ks["group_id_preimage_hex"]
    want_pubkeys = [m["pubkey"] for m in ks["member_nostr_pubkeys"]]
    assert [m["idx"] for m in ks["member_nostr_pubkeys"]] == [c.idx for c in group.commits]
    assert group.member_pubkeys() == want_pubkeys
    assert [s.pubkey_xonly() for s in shares] == want_pubkeys
    assert [group.idx_of_pubkey(pk) for pk in want_pubkeys] == [1, 2, 3]
    assert group.group_pubkey_xonly == ks["group_pubkey_xonly"]
    assert ("even" if curve.has_even_y(group.group_pk) else "odd") == ks["group_pk_parity"]
    assert nip19.npub_encode(group.group_pk[1:]) == ks["npub"]
    assert nip19.nsec_encode(bytes.fromhex(ks["secret_key"])) == ks["nsec"]
    for nd, share in zip(ks["nonce_derivation"], shares, strict=True):
        assert nd["idx"] == share.idx
        seed = bytes.fromhex(nd["aux_seed"])
        assert seed[0:16] + bytes(16) == bytes.fromhex(nd["hidden_aux32"])
        assert seed[16:32] + bytes(16) == bytes.fromhex(nd["binder_aux32"])
        assert curve.bytes32(hashes.h3(bytes.fromhex(nd["hidden_h3_input"]))).hex() == nd["hidden_sn"]
        assert curve.bytes32(hashes.h3(bytes.fromhex(nd["binder_h3_input"]))).hex() == nd["binder_sn"]
        assert (share.hidden_sn.hex(), share.binder_sn.hex()) == (nd["hidden_sn"], nd["binder_sn"])
    by_idx = {s.idx: s for s in shares}
    for rec in ks["recovery"]:
        secret = keygen.recover_secret(group, [by_idx[i] for i in rec["share_indexes"]])
        assert secret.hex() == rec["recovered_secret"] == ks["secret_key"]
        assert nip19.nsec_encode(secret) == rec["nsec"]


def _key_state(value: str) -> int:
    return {"1": 1, "n-1": curve.N - 1}[value]


@pytest.mark.parametrize("param", cases(FILE, _section("sessions")))
def test_session(param: Any) -> None:
    sv, ks = unpack(param)
    group, shares = _load(ks)
    inputs = sv["inputs"]
    sess = session.create_session(group, inputs["members"], inputs["hashes"], **inputs["options"])
    assert compact(sess.to_json()) == sv["session_pkg_json"]
    assert session.SessionPackage.from_json(sv["session_pkg"]) == sess
    ctx = session.session_context(group, sess)
    assert len(ctx) == len(sv["per_sighash"])
    for vec, want in zip(ctx, sv["per_sighash"], strict=True):
        fctx = vec.frost
        assert vec.sighash == want["sighash"]
        assert group.group_pk.hex() == want["internal_group_pk"]
        assert fctx.key.group_pk.hex() == want["tweaked_group_pk"]
        assert fctx.key.parity == _key_state(want["key_state"]["parity"])
        assert fctx.key.state == _key_state(want["key_state"]["state"])
        assert fctx.key.tacc == int(want["key_state"]["tweak_acc"], 16)
        assert frost.commit_list(fctx.nonces).hex() == want["commit_list_hex"]
        assert hashes.h4(fctx.msg).hex() == want["h4_msg_hash"]
        assert hashes.h5(frost.commit_list(fctx.nonces)).hex() == want["h5_commit_hash"]
        assert fctx.prefix.hex() == want["bind_prefix"]
        assert fctx.group_nonce.hex() == want["group_nonce_R"]
        assert curve.bytes32(fctx.c).hex() == want["challenge"]
        psigs = []
        for member in want["members"]:
            idx = member["idx"]
            share = shares[idx]
            vector = b"".join(bytes.fromhex(h) for h in [want["sighash"], *want["tweaks"]])
            preimage = bytes.fromhex(sess.sid) + idx.to_bytes(4, "big") + vector
            assert preimage.hex() == member["bind_hash_preimage_hex"]
            assert hashes.sha256(preimage).hex() == member["bind_hash"]
            assert curve.bytes32(vec.binds[idx]).hex() == member["bind_hash"]
            tweak = bytes.fromhex(member["bind_hash"])
            assert session.tweak_seckey(share.hidden_sn, tweak).hex() == member["session_hidden_sn"]
            assert session.tweak_seckey(share.binder_sn, tweak).hex() == member["session_binder_sn"]
            hidden_pn, binder_pn = fctx.nonces[idx]
            assert hidden_pn.hex() == member["session_hidden_pn"]
            assert binder_pn.hex() == member["session_binder_pn"]
            assert curve.bytes32(fctx.rhos[idx]).hex() == member["binding_factor"]
            assert curve.bytes32(fctx.lambdas[idx]).hex() == member["lagrange_coeff"]
            psigs.append(member["psig"])
        sig = frost.aggregate(fctx, [int(p, 16) for p in psigs])
        assert sig.hex() == want["signature"]
        assert curve.schnorr_verify(fctx.key.group_pk[1:], fctx.msg, sig) is want["bip340_verify"] is True
        assert [want["sighash"], fctx.key.group_pk.hex(), sig.hex()] == want["signature_entry"]
    pkgs = [session.sign_session(group, shares[m], sess) for m in sess.members]
    assert [compact(p.to_json()) for p in pkgs] == sv["psig_pkgs_json"]
    assert [p.to_json() for p in pkgs] == sv["psig_pkgs"]
    for obj in sv["psig_pkgs"]:
        session.verify_psig_pkg(group, sess, session.PsigPackage.from_json(obj))
    received = [session.PsigPackage.from_json(o) for o in sv["psig_pkgs"]]
    entries = session.combine_session(group, sess, received)
    assert [list(e) for e in entries] == sv["signature_entries"]


@pytest.mark.parametrize("param", cases(FILE, _section("ecdh")))
def test_ecdh(param: Any) -> None:
    ev, ks = unpack(param)
    group, shares = _load(ks)
    for lam in ev["lagrange"]:
        assert curve.bytes32(frost.lagrange(lam["idx"], ev["members"])).hex() == lam["lambda"]
    assert curve.pubkey_of(bytes.fromhex(ev["ecdh_peer_seckey"]))[1:].hex() == ev["ecdh_pk"]
    pkgs = [ecdh.create_ecdh_pkg(group, shares[m], ev["members"], ev["ecdh_pk"]) for m in ev["members"]]
    assert [compact(p.to_json()) for p in pkgs] == ev["packages_json"]
    assert [p.to_json() for p in pkgs] == ev["packages"]
    parsed = [ecdh.EcdhPackage.from_json(p) for p in ev["packages"]]
    point = ecdh.combine_ecdh_pkgs(parsed)
    assert point.hex() == ev["result_point"]
    assert point[1:].hex() == ev["result_shared_x"]
    # the x coordinate is the ordinary Nostr ECDH between the group key and the peer
    assert curve.ecdh_x(bytes.fromhex(ev["ecdh_peer_seckey"]), group.group_pk).hex() == ev["result_shared_x"]
