"""The upstream reference vectors: bifrost 1.0.7 (ecc, group, session) and @cmdcode/frost 1.1.3."""

from __future__ import annotations

from typing import Any

import pytest

from node.crypto import credentials, curve, frost, hashes, keygen, session
from tests.crypto.vectors import cases, unpack


def _ecc(data: Any) -> list[tuple[str, Any]]:
    out = [(f"pass-{i}", ("pass", c)) for i, c in enumerate(data["pass"])]
    out += [(f"fail-{c['reason'].replace(' ', '_')}", ("fail", c)) for c in data["fail"]]
    return out


@pytest.mark.parametrize("param", cases("bifrost-ecc.vec.json", _ecc))
def test_bifrost_ecc(param: Any) -> None:
    kind, case = unpack(param)
    secret = bytes.fromhex(case["internal_secnonce"])
    point = bytes.fromhex(case["internal_pubnonce"])
    tweak = bytes.fromhex(case["internal_tweak"])
    if kind == "pass":
        assert session.tweak_seckey(secret, tweak).hex() == case["target_secnonce"]
        assert session.tweak_pubkey(point, tweak).hex() == case["target_pubnonce"]
        # the tweaked pair still matches: (s + t)·G == S + t·G
        tweaked = curve.int_from(session.tweak_seckey(secret, tweak))
        assert curve.base_mul(tweaked).hex() == case["target_pubnonce"]
        return
    failures = 0
    for call in (lambda: session.tweak_seckey(secret, tweak), lambda: session.tweak_pubkey(point, tweak)):
        try:
            call()
        except ValueError:
            failures += 1
    assert failures == 1, case["reason"]


def _group(data: Any) -> list[tuple[str, Any]]:
    return [("alice-bob-carol", data)]


@pytest.mark.parametrize("param", cases("bifrost-group.vec.json", _group))
def test_bifrost_group(param: Any) -> None:
    case = unpack(param)
    seeds = [bytes.fromhex(s) for s in case["seeds"]]
    group, shares = keygen.generate_dealer_pkg(2, 3, seeds, [s + s for s in seeds])
    assert credentials.encode_group(group) == case["group"]
    assert [credentials.encode_share(s) for s in shares] == case["shares"]
    assert credentials.decode_group(case["group"]) == group
    assert [credentials.decode_share(s) for s in case["shares"]] == shares


def _session(data: Any) -> list[tuple[str, Any]]:
    return [(f"session-{data['session']['sid'][:8]}", data)]


@pytest.mark.parametrize("param", cases("bifrost-session.vec.json", _session))
def test_bifrost_session(param: Any) -> None:
    case = unpack(param)
    group = credentials.decode_group(case["group"])
    shares = {s.idx: s for s in map(credentials.decode_share, case["shares"])}
    want = case["session"]
    sess = session.create_session(
        group,
        want["members"],
        want["hashes"],
        content=want["content"],
        type=want["type"],
        stamp=want["stamp"],
    )
    assert sess.to_json() == want
    ctx = {vec.sighash: vec for vec in session.session_context(group, sess)}
    for commit in case["sig_commits"]:
        vec = ctx[commit["sighash"]]
        assert commit["sid"] == sess.sid
        assert curve.bytes32(vec.binds[commit["idx"]]).hex() == commit["bind_hash"]
        hidden, binder = vec.frost.nonces[commit["idx"]]
        assert (hidden.hex(), binder.hex()) == (commit["hidden_pn"], commit["binder_pn"])
        assert group.commit_for(commit["idx"]).pubkey.hex() == commit["pubkey"]
    for entry in case["sig_shares"]:
        share = shares[entry["idx"]]
        assert share.seckey.hex() == entry["seckey"]
        tweak = bytes.fromhex(entry["bind_hash"])
        assert session.tweak_seckey(share.hidden_sn, tweak).hex() == entry["hidden_sn"]
        assert session.tweak_seckey(share.binder_sn, tweak).hex() == entry["binder_sn"]
    pkgs = [session.sign_session(group, shares[m], sess) for m in sess.members]
    for pkg in pkgs:
        session.verify_psig_pkg(group, sess, pkg)
    for sighash, tweaked_pk, sig in session.combine_session(group, sess, pkgs):
        assert curve.schnorr_verify(bytes.fromhex(tweaked_pk)[1:], bytes.fromhex(sighash), bytes.fromhex(sig))


def _hash(data: Any) -> list[tuple[str, Any]]:
    return [(name, (fn, data[f"{name}_pimg"], data[f"{name}_hash"])) for name, fn in
            (("h4", hashes.h4), ("h5", hashes.h5)) if data[f"{name}_hash"]]


@pytest.mark.parametrize("param", cases("frost-hash.json", _hash))
def test_frost_hash(param: Any) -> None:
    fn, preimage, digest = unpack(param)
    assert fn(bytes.fromhex(preimage)).hex() == digest


def _spec(data: Any) -> list[tuple[str, Any]]:
    return [("2-of-3-signers-" + "-".join(map(str, data["group"]["identifiers"])), data)]


def _spec_context(case: Any) -> tuple[frost.SigningContext, dict[int, Any]]:
    grp = case["group"]
    members = {m["idx"]: m for m in case["members"]}
    nonces = {}
    for idx, m in members.items():
        seckey = bytes.fromhex(m["seckey"])
        hidden = hashes.h3(bytes.fromhex(m["nseed_h"]) + seckey)
        binder = hashes.h3(bytes.fromhex(m["nseed_b"]) + seckey)
        assert curve.bytes32(hidden).hex() == m["snonce_h"]
        assert curve.bytes32(binder).hex() == m["snonce_b"]
        nonces[idx] = (curve.base_mul(hidden), curve.base_mul(binder))
        assert (nonces[idx][0].hex(), nonces[idx][1].hex()) == (m["pnonce_h"], m["pnonce_b"])
    key = frost.key_context(bytes.fromhex(grp["grp_pubkey"]))
    ctx = frost.signing_context(key, bytes.fromhex(grp["message"]), grp["identifiers"], nonces)
    assert ctx.prefix.hex() == grp["grp_prefix"]
    assert ctx.group_nonce.hex() == grp["grp_pnonce"]
    assert curve.bytes32(ctx.c).hex() == grp["challenge"]
    for idx, m in members.items():
        assert curve.bytes32(ctx.rhos[idx]).hex() == m["binder"]
    return ctx, members


def _spec_psigs(ctx: frost.SigningContext, members: dict[int, Any]) -> list[int]:
    psigs = []
    for idx, m in members.items():
        seckey, hidden, binder = (bytes.fromhex(m[k]) for k in ("seckey", "snonce_h", "snonce_b"))
        z = frost.sign_partial(ctx, idx, seckey, hidden, binder)
        pubkey = curve.pubkey_of(seckey)
        assert frost.verify_partial(ctx, idx, pubkey, z)
        psigs.append(z)
    return psigs


@pytest.mark.parametrize("param", cases("frost-spec.json", _spec))
def test_frost_spec(param: Any) -> None:
    case = unpack(param)
    ctx, members = _spec_context(case)
    psigs = _spec_psigs(ctx, members)
    assert [curve.bytes32(z).hex() for z in psigs] == [m["psig"] for m in members.values()]
    sig = frost.aggregate(ctx, psigs)
    assert sig.hex() == case["group"]["sig"]
    assert curve.schnorr_verify(ctx.key.group_pk[1:], ctx.msg, sig)


@pytest.mark.parametrize("param", cases("frost-spec_fail.json", _spec))
def test_frost_spec_fail_must_not_match(param: Any) -> None:
    """Legacy odd-y vector: prefix, R and c reproduce; the recorded (invalid) sig must NOT."""
    case = unpack(param)
    ctx, members = _spec_context(case)
    assert not curve.has_even_y(ctx.key.group_pk)
    sig = frost.aggregate(ctx, _spec_psigs(ctx, members))
    recorded = bytes.fromhex(case["group"]["sig"])
    assert sig != recorded
    assert curve.schnorr_verify(ctx.key.group_pk[1:], ctx.msg, sig)
    assert not curve.schnorr_verify(ctx.key.group_pk[1:], ctx.msg, recorded)
