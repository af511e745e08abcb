"""Property tests over random k-of-n groups (k 1..5, n up to 10): signing (single, batched,
tweaked) verifies under BIP-340, any k shares recover the secret and k-1 are refused, threshold
ECDH equals a0·P, and every package survives its encode/decode round trip."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto import credentials, curve, ecdh, keygen, session
from node.crypto.credentials import GroupPackage, SharePackage
from tests.crypto.fuzz import prop

scalars = st.integers(min_value=1, max_value=curve.N - 1)
hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)


@dataclasses.dataclass
class Keyset:
    secret: int
    group: GroupPackage
    shares: list[SharePackage]


@st.composite
def keysets(draw: Any, max_k: int = 5, max_n: int = 10) -> Keyset:
    n = draw(st.integers(min_value=1, max_value=max_n))
    k = draw(st.integers(min_value=1, max_value=min(max_k, n)))
    coeffs = [draw(scalars) for _ in range(k)]
    seeds = [draw(st.binary(min_size=64, max_size=64)) for _ in range(n)]
    group, shares = keygen.generate_dealer_pkg(k, n, [curve.bytes32(c) for c in coeffs], seeds)
    return Keyset(coeffs[0], group, shares)


@st.composite
def signers(draw: Any, ks: Keyset) -> list[SharePackage]:
    return draw(st.permutations(ks.shares))[: ks.group.threshold]


def tweak_key(group_pk: bytes, tweaks: list[str]) -> bytes:
    """Independent x-only tweaking: negate to even y before each ``+ t·G``."""
    point = group_pk
    for tweak in tweaks:
        if not curve.has_even_y(point):
            point = curve.negate(point)
        point = curve.point_add_base(point, int(tweak, 16))
    return point


vectors = st.lists(
    st.tuples(hex32, st.lists(hex32, max_size=2)), min_size=1, max_size=3, unique_by=lambda v: v[0]
).map(lambda vs: [[h, *tw] for h, tw in vs])


@prop(12)
@given(data=st.data(), ks=keysets(), hashes=vectors, stamp=st.integers(0, 2**32 - 1))
def test_sign_and_verify(data: st.DataObject, ks: Keyset, hashes: list[list[str]], stamp: int) -> None:
    chosen = data.draw(signers(ks))
    content = data.draw(st.none() | st.binary(max_size=8).map(bytes.hex))
    sess = session.create_session(ks.group, [s.idx for s in chosen], hashes, content=content, stamp=stamp)
    assert sess.members == sorted(sess.members, key=str)
    assert session.SessionPackage.from_json(sess.to_json()) == sess
    pkgs = [session.sign_session(ks.group, share, sess) for share in chosen]
    for pkg in pkgs:
        assert session.PsigPackage.from_json(pkg.to_json()) == pkg
        session.verify_psig_pkg(ks.group, sess, pkg)
    entries = session.combine_session(ks.group, sess, list(reversed(pkgs)))
    assert [e[0] for e in entries] == [v[0] for v in hashes]
    for (sighash, tweaked_pk, sig), vector in zip(entries, hashes, strict=True):
        assert tweaked_pk == tweak_key(ks.group.group_pk, vector[1:]).hex()
        assert curve.schnorr_verify(bytes.fromhex(tweaked_pk)[1:], bytes.fromhex(sighash), bytes.fromhex(sig))
    untweaked = [e for e, v in zip(entries, hashes, strict=True) if len(v) == 1]
    for _, tweaked_pk, _ in untweaked:
        assert tweaked_pk == ks.group.group_pk.hex()


@prop(12)
@given(data=st.data(), ks=keysets())
def test_recovery_needs_threshold(data: st.DataObject, ks: Keyset) -> None:
    k = ks.group.threshold
    order = data.draw(st.permutations(ks.shares))
    extra = data.draw(st.integers(min_value=0, max_value=len(ks.shares) - k))
    assert keygen.recover_secret(ks.group, order[: k + extra]) == curve.bytes32(ks.secret)
    if k > 1:
        with pytest.raises(ValueError, match=f"need at least {k} shares"):
            keygen.recover_secret(ks.group, order[: k - 1])


@prop(12)
@given(data=st.data(), ks=keysets(), peer=scalars)
def test_ecdh_equals_group_secret_times_point(data: st.DataObject, ks: Keyset, peer: int) -> None:
    chosen = data.draw(signers(ks))
    members = [s.idx for s in chosen]
    peer_pk = curve.base_mul(peer)[1:].hex()
    pkgs = [ecdh.create_ecdh_pkg(ks.group, share, members, peer_pk) for share in chosen]
    assert [ecdh.EcdhPackage.from_json(p.to_json()) for p in pkgs] == pkgs
    point = ecdh.combine_ecdh_pkgs(list(reversed(pkgs)))
    assert point == curve.point_mul(curve.lift_x(bytes.fromhex(peer_pk)), ks.secret)
    assert point[1:] == curve.ecdh_x(curve.bytes32(peer), ks.group.group_pk)


@prop(12)
@given(ks=keysets())
def test_credential_round_trips(ks: Keyset) -> None:
    text = credentials.encode_group(ks.group)
    assert text.startswith("bfgroup1")
    assert credentials.decode_group(text) == ks.group
    assert credentials.decode_group(text.upper()) == ks.group
    assert GroupPackage.from_json(ks.group.to_json()) == ks.group
    assert session.get_group_id(credentials.decode_group(text)) == session.get_group_id(ks.group)
    for share in ks.shares:
        encoded = credentials.encode_share(share)
        assert len(encoded) == 174
        assert credentials.decode_share(encoded) == share
        assert SharePackage.from_json(share.to_json()) == share
        credentials.check_share_in_group(ks.group, share)
        if ks.group.threshold > 1:  # with k = 1 every share is a0, so all pubkeys coincide
            assert ks.group.idx_of_pubkey(share.pubkey_xonly()) == share.idx
    assert credentials.serialize_group(ks.group)[33:37] == ks.group.threshold.to_bytes(4, "big")
