"""keytools: keygen and recover round trips, nsec and hex input, error messages."""

from __future__ import annotations

import pytest

from node import keytools
from node.crypto import credentials, curve, keygen
from node.nostr import nip19

SECRET = bytes.fromhex("ca1480ba4436cc1c53d32cc4c15f719b3abc74a1ac2b04c348b88c03db5e2e9b")
NSEC = nip19.nsec_encode(SECRET)


@pytest.mark.parametrize("secret", [NSEC, SECRET.hex(), SECRET.hex().upper(), f"  {NSEC}\n"])
def test_keygen_with_secret_recovers_it(secret: str) -> None:
    out = keytools.keygen(2, 3, secret)
    assert set(out) == {"group", "shares", "group_pubkey", "npub"}
    assert out["group_pubkey"] == curve.pubkey_of(SECRET)[1:].hex()
    assert nip19.npub_decode(out["npub"]).hex() == out["group_pubkey"]
    group = credentials.decode_group(out["group"])
    assert group.threshold == 2 and len(out["shares"]) == 3
    for pair in ([0, 1], [0, 2], [1, 2], [2, 0, 1]):
        assert keytools.recover(out["group"], [out["shares"][i] for i in pair]) == NSEC


def test_keygen_random_secret_is_fresh_and_recoverable() -> None:
    first, second = keytools.keygen(1, 2), keytools.keygen(1, 2)
    assert first["group_pubkey"] != second["group_pubkey"]
    nsec = keytools.recover(first["group"], first["shares"][1:])
    assert curve.pubkey_of(nip19.nsec_decode(nsec))[1:].hex() == first["group_pubkey"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 3), "threshold must be between 1 and total"),
        ((4, 3), "threshold must be between 1 and total"),
        ((1, 0), "total must be between 1 and"),
        ((2, 1000), "total must be between 1 and"),
        (("2", 3), "threshold must be an integer"),
        ((2, True), "total must be an integer"),
    ],
)
def test_keygen_refuses_bad_counts(args: tuple[object, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        keytools.keygen(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "nsec1… string or 64 hex"),
        ("abcd", "nsec1… string or 64 hex"),
        ("00" * 32, "out of range"),
        (curve.bytes32(curve.N).hex(), "out of range"),
        (NSEC[:-1] + ("q" if NSEC[-1] != "q" else "p"), "not a valid nsec"),
        (nip19.npub_encode(SECRET), "nsec1… string or 64 hex"),
    ],
)
def test_parse_secret_errors_do_not_echo(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        keytools.parse_secret(text)
    if text:
        assert text not in str(info.value)
    assert SECRET.hex() not in str(info.value)


def test_parse_secret_accepts_nsec_and_hex() -> None:
    assert keytools.parse_secret(NSEC) == SECRET
    assert keytools.parse_secret(NSEC.upper()) == SECRET
    assert keytools.parse_secret(SECRET.hex()) == SECRET


def test_recover_errors() -> None:
    out = keytools.keygen(2, 3, NSEC)
    other = keytools.keygen(2, 3)
    cases = [
        ([out["shares"][0]], "need at least 2 shares to recover, got 1"),
        ([out["shares"][0], out["shares"][0]], "duplicate shares for member idx 1"),
        ([out["shares"][0], other["shares"][1]], "share idx 2 does not belong to this group"),
        ([out["shares"][0], out["group"]], "share 2: share credential must start with bfshare1"),
        ([out["shares"][0], "garbage"], "share 2: share credential is not valid bech32m"),
    ]
    for shares, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            keytools.recover(out["group"], shares)
        for share in out["shares"]:
            assert share[8:] not in str(info.value)
        assert SECRET.hex() not in str(info.value)
    with pytest.raises(ValueError, match="group credential must start with bfgroup1"):
        keytools.recover(out["shares"][0], out["shares"][1:])


def test_recover_uses_all_given_shares() -> None:
    group, shares = keygen.generate_dealer_pkg_gen(3, 5, SECRET)
    assert keygen.recover_secret(group, shares) == SECRET
    assert keygen.recover_secret(group, shares[1:4]) == SECRET
