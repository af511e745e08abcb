"""Every refusal of bad local or peer input: the message names the problem, never a secret."""

from __future__ import annotations

import dataclasses

import pytest

from node.crypto import bech32, credentials, curve, ecdh, keygen, session
from node.crypto.credentials import GroupPackage, SharePackage
from tests.crypto.keys import keyset

GROUP, SHARES = keyset(2, 3, "errors")
OTHER_GROUP, OTHER_SHARES = keyset(2, 3, "another")
SECRETS = [v.hex() for s in SHARES for v in (s.seckey, s.hidden_sn, s.binder_sn)]


def assert_clean(exc: BaseException) -> None:
    text = str(exc).lower()
    for secret in SECRETS:
        assert secret not in text
    for share in SHARES:
        assert credentials.encode_share(share)[8:40] not in text


def raises(match: str, fn: object, *args: object, **kwargs: object) -> ValueError:
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert_clean(info.value)
    return info.value


def off_curve_x() -> bytes:
    x = 1
    while curve.is_valid_point(b"\x02" + x.to_bytes(32, "big")):
        x += 1
    return b"\x02" + x.to_bytes(32, "big")


def reencode(hrp: str, data: bytes) -> str:
    return bech32.encode(hrp, data, variant="bech32m")


# --- credentials -------------------------------------------------------------------------

def test_group_bad_checksum() -> None:
    text = credentials.encode_group(GROUP)
    flipped = text[:-1] + ("q" if text[-1] != "q" else "p")
    raises("checksum", credentials.decode_group, flipped)


def test_share_bad_checksum_does_not_echo_the_share() -> None:
    text = credentials.encode_share(SHARES[0])
    flipped = text[:-1] + ("q" if text[-1] != "q" else "p")
    raises("checksum", credentials.decode_share, flipped)


def test_wrong_prefixes() -> None:
    raises("must start with bfgroup1, got a bfshare1 string", credentials.decode_group,
           credentials.encode_share(SHARES[0]))
    raises("must start with bfshare1, got a bfgroup1 string", credentials.decode_share,
           credentials.encode_group(GROUP))


def test_unknown_prefix_is_not_echoed() -> None:
    secretish = "deadbeefcafe" + credentials.encode_share(SHARES[0])[7:]
    with pytest.raises(ValueError) as info:
        credentials.decode_share(secretish)
    assert "deadbeef" not in str(info.value)


def test_group_length_not_multiple_of_103() -> None:
    raw = credentials.serialize_group(GROUP)
    raises("not a multiple of 103", credentials.decode_group, reencode("bfgroup", raw + b"\x00"))
    raises("not a multiple of 103", credentials.decode_group, reencode("bfgroup", raw[:-1]))
    raises("too short", credentials.decode_group, reencode("bfgroup", raw[:37]))


@pytest.mark.parametrize("delta", [-1, 1])
def test_share_length_must_be_100(delta: int) -> None:
    raw = credentials.serialize_share(SHARES[0])
    data = raw[:delta] if delta < 0 else raw + b"\x00"
    raises("100 bytes", credentials.decode_share, reencode("bfshare", data))


@pytest.mark.parametrize(("offset", "what"), [(0, "group_pk"), (37 + 4, "pubkey of member 1"),
                                               (37 + 37, "binder_pn of member 1"),
                                               (37 + 103 + 70, "hidden_pn of member 2")])
def test_point_off_curve(offset: int, what: str) -> None:
    raw = bytearray(credentials.serialize_group(GROUP))
    raw[offset : offset + 33] = off_curve_x()
    raises(what, credentials.decode_group, reencode("bfgroup", bytes(raw)))


def test_commit_idx_zero_and_duplicate() -> None:
    raw = bytearray(credentials.serialize_group(GROUP))
    raw[37:41] = (0).to_bytes(4, "big")
    raises("commit idx must be an integer from 1", credentials.decode_group, reencode("bfgroup", bytes(raw)))
    raw[37:41] = (2).to_bytes(4, "big")
    raises("duplicate member idx 2", credentials.decode_group, reencode("bfgroup", bytes(raw)))


@pytest.mark.parametrize("threshold", [0, 4, 2**32 - 1])
def test_threshold_out_of_range(threshold: int) -> None:
    raw = bytearray(credentials.serialize_group(GROUP))
    raw[33:37] = threshold.to_bytes(4, "big")
    raises(f"threshold {threshold} must be between 1 and the member count 3", credentials.decode_group,
           reencode("bfgroup", bytes(raw)))


def test_share_idx_zero_and_bad_scalars() -> None:
    raw = bytearray(credentials.serialize_share(SHARES[0]))
    raw[0:4] = bytes(4)
    raises("share idx", credentials.decode_share, reencode("bfshare", bytes(raw)))
    for offset, name in ((4, "seckey"), (36, "binder_sn"), (68, "hidden_sn")):
        for bad in (bytes(32), curve.bytes32(curve.N), b"\xff" * 32):
            raw = bytearray(credentials.serialize_share(SHARES[0]))
            raw[offset : offset + 32] = bad
            raises(f"share {name} must be a 32-byte scalar", credentials.decode_share,
                   reencode("bfshare", bytes(raw)))


def test_json_forms_validate() -> None:
    obj = GROUP.to_json()
    assert GroupPackage.from_json(obj) == GROUP
    raises("group_pk must be 66 hex", GroupPackage.from_json, {**obj, "group_pk": "02" + "zz" * 32})
    raises("group threshold must be an integer", GroupPackage.from_json, {**obj, "threshold": "2"})
    raises("commit idx", GroupPackage.from_json, {**obj, "commits": [{**obj["commits"][0], "idx": True}]})
    share_obj = SHARES[0].to_json()
    assert SharePackage.from_json(share_obj) == SHARES[0]
    raises("share seckey must be 64 hex", SharePackage.from_json, {**share_obj, "seckey": "00"})


def test_share_not_in_group() -> None:
    check = credentials.check_share_in_group
    raises("share idx 1 does not belong to this group", check, GROUP, OTHER_SHARES[0])
    stranger = dataclasses.replace(SHARES[0], idx=7)
    raises("share idx 7 is not a member of this group", credentials.check_share_in_group, GROUP, stranger)
    swapped = dataclasses.replace(SHARES[0], hidden_sn=SHARES[0].binder_sn, binder_sn=SHARES[0].hidden_sn)
    raises("nonces do not match", credentials.check_share_in_group, GROUP, swapped)
    credentials.check_share_in_group(GROUP, SHARES[2])


def test_share_repr_hides_secrets() -> None:
    share = SHARES[0]
    for text in (repr(share), str(share), f"{share}", f"{share!r}", repr([share])):
        assert share.seckey.hex() not in text
        assert share.hidden_sn.hex() not in text
        assert share.binder_sn.hex() not in text
        assert "redacted" in text


# --- recovery ----------------------------------------------------------------------------

def test_recovery_refusals() -> None:
    raises("need at least 2 shares to recover, got 1", keygen.recover_secret, GROUP, SHARES[:1])
    raises("need at least 2 shares to recover, got 0", keygen.recover_secret, GROUP, [])
    raises("duplicate shares for member idx 1", keygen.recover_secret, GROUP, [SHARES[0], SHARES[0]])
    raises("share idx 2 does not belong to this group", keygen.recover_secret, GROUP,
           [SHARES[0], OTHER_SHARES[1]])


def test_dealer_refusals() -> None:
    raises("threshold must be between 1 and total", keygen.generate_dealer_pkg_gen, 4, 3)
    raises("threshold must be between 1 and total", keygen.generate_dealer_pkg_gen, 0, 3)
    raises("total must be between", keygen.generate_dealer_pkg_gen, 1, 0)
    raises("secret key must be 32 bytes in 1..n-1", keygen.generate_dealer_pkg_gen, 2, 3, bytes(32))
    raises("need 2 coefficient secrets", keygen.generate_dealer_pkg, 2, 3, [b"\x01" * 32], [b"\x02" * 64] * 3)
    raises("need 3 aux seeds", keygen.generate_dealer_pkg, 2, 3, [b"\x01" * 32] * 2, [b"\x02" * 64] * 2)


# --- sessions ----------------------------------------------------------------------------

def _session() -> session.SessionPackage:
    return session.create_session(GROUP, [1, 3], [["11" * 32], ["22" * 32, "33" * 32]], stamp=1700000000)


def test_tampered_psig_is_blamed() -> None:
    sess = _session()
    good = session.sign_session(GROUP, SHARES[2], sess)
    session.verify_psig_pkg(GROUP, sess, good)
    z = int(good.psigs[1][1], 16)
    for forged in ((z + 1) % curve.N, curve.N - z):
        entry = [good.psigs[1][0], curve.bytes32(forged).hex()]
        bad = dataclasses.replace(good, psigs=[good.psigs[0], entry])
        with pytest.raises(session.PeerBlameError, match="invalid") as info:
            session.verify_psig_pkg(GROUP, sess, bad)
        assert info.value.idx == 3
        assert info.value.pubkey == SHARES[2].pubkey.hex()
        own = session.sign_session(GROUP, SHARES[0], sess)
        with pytest.raises(session.PeerBlameError) as combined:
            session.combine_session(GROUP, sess, [own, bad])
        assert combined.value.idx == 3


def test_negated_psig_matches_in_x_only() -> None:
    """Why full points matter: (n - z)·G has the same x as z·G, which the JS check accepts."""
    sess = _session()
    z = int(session.sign_session(GROUP, SHARES[2], sess).psigs[0][1], 16)
    assert curve.xonly(curve.base_mul(z)) == curve.xonly(curve.base_mul(curve.N - z))


def test_psig_package_structure_is_blamed() -> None:
    sess = _session()
    good = session.sign_session(GROUP, SHARES[2], sess)
    cases = {
        "another session": dataclasses.replace(good, sid="00" * 32),
        "not the group pubkey of member 3": dataclasses.replace(good, pubkey=SHARES[0].pubkey.hex()),
        "idx 2 is not a session member": dataclasses.replace(good, idx=2),
        "does not cover exactly": dataclasses.replace(good, psigs=good.psigs[:1]),
        "duplicate entry": dataclasses.replace(good, psigs=[good.psigs[0], good.psigs[0]]),
        "out of range": dataclasses.replace(good, psigs=[good.psigs[0], [good.psigs[1][0], "00" * 32]]),
    }
    for reason, pkg in cases.items():
        with pytest.raises(session.PeerBlameError, match=reason):
            session.verify_psig_pkg(GROUP, sess, pkg)


def test_session_refusals() -> None:
    raises("at least 2 members", session.create_session, GROUP, [1], [["11" * 32]], stamp=1)
    raises("members must be unique", session.create_session, GROUP, [1, 1], [["11" * 32]], stamp=1)
    raises("member idx 9 is not in the group", session.create_session, GROUP, [1, 9], [["11" * 32]], stamp=1)
    raises("sighashes must be unique", session.create_session, GROUP, [1, 2], [["11" * 32], ["11" * 32]],
           stamp=1)
    raises("sighash vector entry must be 64 hex", session.create_session, GROUP, [1, 2], [["11"]], stamp=1)
    raises("content must be even-length hex", session.create_session, GROUP, [1, 2], [["11" * 32]],
           content="xyz", stamp=1)
    sess = _session()
    raises("share idx 2 is not a member of this session", session.sign_session, GROUP, SHARES[1], sess)
    raises("share idx 1 does not belong to this group", session.sign_session, GROUP, OTHER_SHARES[0], sess)
    own = session.sign_session(GROUP, SHARES[0], sess)
    raises(r"one psig package per session member \[1, 3\], got \[1\]", session.combine_session, GROUP, sess,
           [own])


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"hashes": []}, "hashes must be a non-empty list"),
        ({"hashes": [[]]}, "non-empty list"),
        ({"hashes": [["zz" * 32]]}, "64 hex"),
        ({"members": [0, 1]}, "session member"),
        ({"members": "1,2"}, "members must be a non-empty list"),
        ({"stamp": -1}, "stamp"),
        ({"stamp": 2**32}, "stamp"),
        ({"type": 5}, "type must be a string"),
        ({"content": 5}, "content must be a string or null"),
        ({"sid": "00"}, "sid must be 64 hex"),
        ({"gid": None}, "gid must be 64 hex"),
    ],
)
def test_session_json_shape(patch: dict[str, object], match: str) -> None:
    obj = {**_session().to_json(), **patch}
    raises(match, session.SessionPackage.from_json, obj)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"psigs": []}, "non-empty list"),
        ({"psigs": [["11" * 32]]}, r"\[sighash, psig\]"),
        ({"pubkey": "02" * 32}, "66 hex"),
        ({"idx": 0}, "psig package idx"),
        ({"sid": 1}, "sid must be 64 hex"),
    ],
)
def test_psig_json_shape(patch: dict[str, object], match: str) -> None:
    obj = {**session.sign_session(GROUP, SHARES[0], _session()).to_json(), **patch}
    raises(match, session.PsigPackage.from_json, obj)


# --- ECDH --------------------------------------------------------------------------------

PEER = curve.pubkey_of(b"\x07" * 32)[1:].hex()


def test_ecdh_refusals() -> None:
    raises("share idx 2 is not among the ecdh members", ecdh.create_ecdh_pkg, GROUP, SHARES[1], [1, 3], PEER)
    raises("ecdh members must be unique", ecdh.create_ecdh_pkg, GROUP, SHARES[0], [1, 1], PEER)
    raises("member idx 8 is not in the group", ecdh.create_ecdh_pkg, GROUP, SHARES[0], [1, 8], PEER)
    raises("ecdh_pk must be 64", ecdh.create_ecdh_pkg, GROUP, SHARES[0], [1, 2], "abc")
    off = off_curve_x()[1:].hex()
    raises("x-only key is not a valid", ecdh.create_ecdh_pkg, GROUP, SHARES[0], [1, 2], off)
    raises("does not belong to this group", ecdh.create_ecdh_pkg, GROUP, OTHER_SHARES[0], [1, 2], PEER)
    a = ecdh.create_ecdh_pkg(GROUP, SHARES[0], [1, 2], PEER)
    b = ecdh.create_ecdh_pkg(GROUP, SHARES[1], [1, 2], PEER)
    c = ecdh.create_ecdh_pkg(GROUP, SHARES[2], [2, 3], PEER)
    raises("no ecdh packages", ecdh.combine_ecdh_pkgs, [])
    raises(r"one ecdh package per member \[1, 2\], got \[1\]", ecdh.combine_ecdh_pkgs, [a])
    raises("from member 3 is for another request", ecdh.combine_ecdh_pkgs, [a, c])
    raises("keyshare from member 2 is not a valid point", ecdh.combine_ecdh_pkgs,
           [a, dataclasses.replace(b, keyshare=off_curve_x().hex())])
    raises("ecdh keyshare must be 66 hex", ecdh.EcdhPackage.from_json, {**a.to_json(), "keyshare": "02"})
