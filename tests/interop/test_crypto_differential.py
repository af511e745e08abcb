"""Differential tests of the crypto core against the published JS reference (@frostr/bifrost 1.0.7).

Fresh random keysets, sessions and ECDH requests every run; every case is produced on one side and consumed
on the other. All JS work is batched into a few node calls (see js/crypto_oracle.mjs).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from node import keytools
from node.crypto import curve
from node.crypto.credentials import (
    GroupPackage,
    SharePackage,
    check_share_in_group,
    decode_group,
    decode_share,
    encode_group,
    encode_share,
)
from node.crypto.ecdh import EcdhPackage, combine_ecdh_pkgs, create_ecdh_pkg
from node.crypto.keygen import generate_dealer_pkg, generate_dealer_pkg_gen, recover_secret
from node.crypto.session import (
    PsigPackage,
    SessionPackage,
    combine_session,
    create_session,
    get_group_id,
    sign_session,
    verify_psig_pkg,
)
from tests.interop.conftest import oracle

N = curve.N
SHAPES = [(2, 3), (3, 5), (2, 2), (2, 12)]  # 2-of-12 makes members like [10, 2]: JS's lexicographic sort


def rand_hex(n: int = 32) -> str:
    return os.urandom(n).hex()


def rand_vectors(rng: random.Random) -> list[list[str]]:
    """1-4 sighash vectors, some with 1-2 tweaks (tweaked keys exercise the parity/state logic)."""
    return [
        [rand_hex()] + [rand_hex() for _ in range(rng.choice([0, 0, 1, 2]))] for _ in range(rng.randint(1, 4))
    ]


def rand_members(rng: random.Random, threshold: int, total: int) -> list[int]:
    if total >= 10 and rng.random() < 0.7:
        return rng.sample([2, 10, 11, 12, 1], threshold)
    return rng.sample(range(1, total + 1), threshold)


def session_args(rng: random.Random, threshold: int, total: int) -> dict[str, Any]:
    return {
        "members": rand_members(rng, threshold, total),
        "hashes": rand_vectors(rng),
        "content": rng.choice([None, rand_hex(4), rand_hex(32)]),
        "type": rng.choice(["message", "nostr-event"]),
        "stamp": rng.randint(1_600_000_000, 2_000_000_000),
    }


def share_for(shares: list[SharePackage], idx: int) -> SharePackage:
    return next(s for s in shares if s.idx == idx)


# --- (a) Igloo produces, JS consumes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ours(js_ready: str) -> dict[str, Any]:
    """Igloo keysets + sessions + psigs + ECDH packages, and the JS reference's view of all of them."""
    rng = random.Random(os.urandom(8))
    cases: list[dict[str, Any]] = []
    keysets: list[dict[str, Any]] = []
    for t, n in SHAPES:
        if (t, n) == (2, 3):  # the CLI / POST /api/recover path: credential strings out
            made = keytools.keygen(t, n)
            group = decode_group(made["group"])
            shares = [decode_share(s) for s in made["shares"]]
            assert made["group_pubkey"] == group.group_pk[1:].hex()
        else:
            group, shares = generate_dealer_pkg_gen(t, n)
        args = session_args(rng, t, n)
        session = create_session(group, **args)
        psigs = [sign_session(group, share_for(shares, m), session) for m in session.members]
        ecdh_members = rand_members(rng, t, n)
        ecdh_pk = curve.pubkey_of(os.urandom(32))[1:].hex()
        ecdh_pkgs = [
            create_ecdh_pkg(group, share_for(shares, m), ecdh_members, ecdh_pk) for m in ecdh_members
        ]
        keysets.append(
            {
                "group": group,
                "shares": shares,
                "args": args,
                "session": session,
                "psigs": psigs,
                "ecdh_pkgs": ecdh_pkgs,
                "ecdh_members": ecdh_members,
                "ecdh_pk": ecdh_pk,
            }
        )
        gj = group.to_json()
        sj = [s.to_json() for s in shares]
        base = len(cases)
        cases += [
            {"op": "decode", "bfgroup": encode_group(group), "bfshares": [encode_share(s) for s in shares]},
            {"op": "session", "group": gj, **args},
            {"op": "sign_all", "group": gj, "shares": sj, "session": session.to_json()},
            {
                "op": "combine",
                "group": gj,
                "session": session.to_json(),
                "pkgs": [p.to_json() for p in psigs],
            },
            {"op": "group_id", "group": gj},
            {"op": "recover", "group": gj, "shares": sj[:t]},
            {"op": "ecdh_combine", "pkgs": [p.to_json() for p in ecdh_pkgs]},
        ]
        cases += [
            {"op": "verify_psig", "group": gj, "session": session.to_json(), "pkg": p.to_json()}
            for p in psigs
        ]
        keysets[-1]["base"] = base
    results = oracle(cases)
    for ks in keysets:
        b = ks["base"]
        ks["js"] = dict(
            zip(
                ["decode", "session", "sign_all", "combine", "group_id", "recover", "ecdh"],
                results[b : b + 7],
                strict=True,
            )
        )
        ks["js"]["verify_psig"] = results[b + 7 : b + 7 + len(ks["psigs"])]
    return {"keysets": keysets}


def test_js_decodes_our_credentials_to_the_same_packages(ours: dict[str, Any]) -> None:
    for ks in ours["keysets"]:
        decoded = ks["js"]["decode"]
        assert GroupPackage.from_json(decoded["group"]) == ks["group"]
        assert decoded["group"] == ks["group"].to_json()
        assert [SharePackage.from_json(s) for s in decoded["shares"]] == ks["shares"]


def test_js_derives_the_same_gid_and_sid(ours: dict[str, Any]) -> None:
    for ks in ours["keysets"]:
        assert ks["js"]["group_id"] == get_group_id(ks["group"])
        assert ks["js"]["session"] == ks["session"].to_json()


def test_js_signs_our_session_with_our_shares_identically(ours: dict[str, Any]) -> None:
    """Psigs are deterministic given the session: JS and Igloo must agree byte for byte."""
    for ks in ours["keysets"]:
        js = ks["js"]["sign_all"]
        assert js["verified"] and all(js["verified"])
        assert js["pkgs"] == [p.to_json() for p in ks["psigs"]]
        entries = combine_session(ks["group"], ks["session"], ks["psigs"])
        assert [list(e) for e in entries] == js["entries"]
        for sighash, pk, sig in js["entries"]:
            assert curve.schnorr_verify(bytes.fromhex(pk)[1:], bytes.fromhex(sighash), bytes.fromhex(sig))


def test_js_accepts_and_combines_our_partial_signatures(ours: dict[str, Any]) -> None:
    for ks in ours["keysets"]:
        assert ks["js"]["verify_psig"] == [None] * len(ks["psigs"])
        assert ks["js"]["combine"] == [
            list(e) for e in combine_session(ks["group"], ks["session"], ks["psigs"])
        ]


def test_js_recovers_our_secret_and_combines_our_ecdh(ours: dict[str, Any]) -> None:
    for ks in ours["keysets"]:
        t = ks["group"].threshold
        assert bytes.fromhex(ks["js"]["recover"].rjust(64, "0")) == recover_secret(
            ks["group"], ks["shares"][:t]
        )
        ours_point = combine_ecdh_pkgs(ks["ecdh_pkgs"])
        assert ks["js"]["ecdh"] == ours_point.hex()
        secret = recover_secret(ks["group"], ks["shares"][:t])
        assert ours_point[1:] == curve.ecdh_x(secret, bytes.fromhex(ks["ecdh_pk"]))


# --- (b) JS produces, Igloo consumes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def theirs(js_ready: str) -> dict[str, Any]:
    """JS keysets from random seeds, JS-signed JS sessions, JS ECDH packages; plus mixed-signer combines."""
    rng = random.Random(os.urandom(8))
    specs: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for t, n in SHAPES:
        secrets = [rand_hex() for _ in range(t)]
        aux = [rand_hex(64) for _ in range(n)]
        specs.append(
            {
                "t": t,
                "n": n,
                "secrets": secrets,
                "aux": aux,
                "args": session_args(rng, t, n),
                "ecdh_members": rand_members(rng, t, n),
                "ecdh_pk": curve.pubkey_of(os.urandom(32))[1:].hex(),
            }
        )
        cases.append({"op": "keygen", "threshold": t, "total": n, "secrets": secrets, "aux_seeds": aux})
    keygens = oracle(cases)
    cases = []
    for spec, kg in zip(specs, keygens, strict=True):
        spec["kg"] = kg
        shares_by_idx = {s["idx"]: s for s in kg["shares"]}
        cases.append({"op": "session", "group": kg["group"], **spec["args"]})
        cases += [
            {
                "op": "ecdh_pkg",
                "members": spec["ecdh_members"],
                "ecdh_pk": spec["ecdh_pk"],
                "share": shares_by_idx[m],
            }
            for m in spec["ecdh_members"]
        ]
    out = oracle(cases)
    cases = []
    pos = 0
    for spec in specs:
        spec["session"] = out[pos]
        spec["ecdh_pkgs"] = out[pos + 1 : pos + 1 + len(spec["ecdh_members"])]
        pos += 1 + len(spec["ecdh_members"])
        cases.append(
            {
                "op": "sign_all",
                "group": spec["kg"]["group"],
                "shares": spec["kg"]["shares"],
                "session": spec["session"],
            }
        )
        cases.append({"op": "ecdh_combine", "pkgs": spec["ecdh_pkgs"]})
    out = oracle(cases)
    for i, spec in enumerate(specs):
        spec["signed"], spec["ecdh"] = out[2 * i], out[2 * i + 1]
    # Mixed: the first member's psig from JS, the rest from Igloo; combined by JS.
    cases = []
    for spec in specs:
        group = GroupPackage.from_json(spec["kg"]["group"])
        session = SessionPackage.from_json(spec["session"])
        shares = [SharePackage.from_json(s) for s in spec["kg"]["shares"]]
        mine = [sign_session(group, share_for(shares, m), session).to_json() for m in session.members[1:]]
        spec["mixed"] = [spec["signed"]["pkgs"][0], *mine]
        cases.append(
            {"op": "combine", "group": spec["kg"]["group"], "session": spec["session"], "pkgs": spec["mixed"]}
        )
    for spec, combined in zip(specs, oracle(cases), strict=True):
        spec["mixed_js"] = combined
    return {"specs": specs}


def test_js_credentials_decode_and_reproduce_from_the_same_seeds(theirs: dict[str, Any]) -> None:
    for spec in theirs["specs"]:
        kg = spec["kg"]
        group = decode_group(kg["bfgroup"])
        shares = [decode_share(s) for s in kg["bfshares"]]
        assert group == GroupPackage.from_json(kg["group"])
        assert [s.to_json() for s in shares] == [SharePackage.from_json(s).to_json() for s in kg["shares"]]
        for share in shares:
            check_share_in_group(group, share)
        g2, s2 = generate_dealer_pkg(
            spec["t"],
            spec["n"],
            [bytes.fromhex(s) for s in spec["secrets"]],
            [bytes.fromhex(a) for a in spec["aux"]],
        )
        assert encode_group(g2) == kg["bfgroup"]
        assert [encode_share(s) for s in s2] == kg["bfshares"]
        expect = int(spec["secrets"][0], 16) % N
        assert recover_secret(group, shares[-spec["t"] :]) == curve.bytes32(expect)


def test_js_sessions_and_signatures_verify_and_combine_in_igloo(theirs: dict[str, Any]) -> None:
    for spec in theirs["specs"]:
        group = GroupPackage.from_json(spec["kg"]["group"])
        session = SessionPackage.from_json(spec["session"])
        args = spec["args"]
        again = create_session(
            group,
            args["members"],
            args["hashes"],
            content=args["content"],
            type=args["type"],
            stamp=args["stamp"],
        )
        assert again.to_json() == spec["session"]
        pkgs = [PsigPackage.from_json(p) for p in spec["signed"]["pkgs"]]
        for pkg in pkgs:
            verify_psig_pkg(group, session, pkg)
        shares = [SharePackage.from_json(s) for s in spec["kg"]["shares"]]
        assert [sign_session(group, share_for(shares, p.idx), session).to_json() for p in pkgs] == spec[
            "signed"
        ]["pkgs"]
        entries = combine_session(group, session, pkgs)
        assert [list(e) for e in entries] == spec["signed"]["entries"]
        assert [e[0] for e in entries] == [v[0] for v in session.hashes]


def test_mixed_signers_combine_on_both_sides(theirs: dict[str, Any]) -> None:
    for spec in theirs["specs"]:
        group = GroupPackage.from_json(spec["kg"]["group"])
        session = SessionPackage.from_json(spec["session"])
        mixed = [PsigPackage.from_json(p) for p in spec["mixed"]]
        ours_entries = combine_session(group, session, mixed)
        assert [list(e) for e in ours_entries] == spec["mixed_js"] == spec["signed"]["entries"]


def test_igloo_rejects_the_x_only_psig_forgery_js_accepts(theirs: dict[str, Any]) -> None:
    """Spec §3.7: JS compares x only, so n - z passes there. Igloo compares full points and must refuse it."""
    spec = theirs["specs"][0]
    group = GroupPackage.from_json(spec["kg"]["group"])
    session = SessionPackage.from_json(spec["session"])
    pkg = spec["signed"]["pkgs"][0]
    forged = {**pkg, "psigs": [[h, curve.bytes32(N - int(z, 16)).hex()] for h, z in pkg["psigs"]]}
    tampered = {**pkg, "psigs": [[h, curve.bytes32((int(z, 16) + 1) % N).hex()] for h, z in pkg["psigs"]]}
    js = oracle(
        [
            {"op": "verify_psig", "group": spec["kg"]["group"], "session": spec["session"], "pkg": forged},
            {"op": "verify_psig", "group": spec["kg"]["group"], "session": spec["session"], "pkg": tampered},
        ]
    )
    assert js[0] is None  # the reference's weakness, as documented
    assert js[1] == "partial signature invalid"
    for bad in (forged, tampered):
        with pytest.raises(ValueError):
            verify_psig_pkg(group, session, PsigPackage.from_json(bad))


def test_js_ecdh_packages_match_and_combine_in_igloo(theirs: dict[str, Any]) -> None:
    for spec in theirs["specs"]:
        group = GroupPackage.from_json(spec["kg"]["group"])
        shares = [SharePackage.from_json(s) for s in spec["kg"]["shares"]]
        pkgs = [EcdhPackage.from_json(p) for p in spec["ecdh_pkgs"]]
        assert combine_ecdh_pkgs(pkgs).hex() == spec["ecdh"]
        mine = [
            create_ecdh_pkg(group, share_for(shares, m), spec["ecdh_members"], spec["ecdh_pk"]).to_json()
            for m in spec["ecdh_members"]
        ]
        assert mine == spec["ecdh_pkgs"]
        secret = curve.bytes32(int(spec["secrets"][0], 16) % N)
        assert bytes.fromhex(spec["ecdh"])[1:] == curve.ecdh_x(secret, bytes.fromhex(spec["ecdh_pk"]))
