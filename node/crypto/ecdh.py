"""Threshold ECDH (spec §3.9, §4.8): each member contributes ``(λ_i·x_i)·P``; the sum is ``a0·P``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.crypto import curve, frost
from node.crypto.credentials import GroupPackage, SharePackage, parse_idx

_ECDH_PK = re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{66}")
_POINT_HEX = re.compile(r"[0-9a-fA-F]{66}")


def _ecdh_point(ecdh_pk: str) -> bytes:
    if not isinstance(ecdh_pk, str) or not _ECDH_PK.fullmatch(ecdh_pk):
        raise ValueError("ecdh_pk must be 64 (x-only) or 66 (compressed) hex characters")
    return curve.as_point(bytes.fromhex(ecdh_pk))


@dataclass
class EcdhPackage:
    """One member's ECDH key share (``/ecdh/req`` and ``/ecdh/res`` payload)."""

    idx: int
    keyshare: str
    members: list[int]
    ecdh_pk: str

    def to_json(self) -> dict[str, Any]:
        """JS key order ``idx, keyshare, members, ecdh_pk``."""
        return {
            "idx": self.idx,
            "keyshare": self.keyshare,
            "members": list(self.members),
            "ecdh_pk": self.ecdh_pk,
        }

    @classmethod
    def from_json(cls, obj: Any) -> EcdhPackage:
        """Shape-check a received ECDH package (points are checked when combined)."""
        if not isinstance(obj, dict):
            raise ValueError("ecdh package must be an object")
        keyshare = obj.get("keyshare")
        if not isinstance(keyshare, str) or not _POINT_HEX.fullmatch(keyshare):
            raise ValueError("ecdh keyshare must be 66 hex characters")
        members = obj.get("members")
        if not isinstance(members, list) or not members:
            raise ValueError("ecdh members must be a non-empty list")
        ecdh_pk = obj.get("ecdh_pk")
        _ecdh_point(ecdh_pk)  # type: ignore[arg-type]
        assert isinstance(ecdh_pk, str)
        return cls(
            parse_idx(obj.get("idx"), "ecdh package idx"),
            keyshare.lower(),
            [parse_idx(m, "ecdh member") for m in members],
            ecdh_pk.lower(),
        )


def create_ecdh_pkg(
    group: GroupPackage, share: SharePackage, members: list[int], ecdh_pk: str
) -> EcdhPackage:
    """This member's key share ``(λ_i·x_i)·P`` over ``members`` (as given; order is kept)."""
    members = [parse_idx(m, "ecdh member") for m in members]
    if len(set(members)) != len(members):
        raise ValueError("ecdh members must be unique")
    if share.idx not in members:
        raise ValueError(f"share idx {share.idx} is not among the ecdh members")
    for idx in members:
        group.commit_for(idx)
    if group.commit_for(share.idx).pubkey != share.pubkey:
        raise ValueError(f"share idx {share.idx} does not belong to this group")
    point = _ecdh_point(ecdh_pk)
    # λ is public and never zero mod n, so λ·x_i is a valid secret scalar; both the product and
    # the point multiplication are libsecp256k1's constant-time code.
    weighted_share = curve.secret_mul(share.seckey, frost.lagrange(share.idx, members))
    return EcdhPackage(share.idx, curve.ecdh_point(weighted_share, point).hex(), members, ecdh_pk)


def combine_ecdh_pkgs(pkgs: list[EcdhPackage]) -> bytes:
    """Sum the key shares of one package per member into the 33-byte ``a0·P``."""
    if not pkgs:
        raise ValueError("no ecdh packages to combine")
    members = sorted(pkgs[0].members)
    ecdh_pk = pkgs[0].ecdh_pk.lower()
    for pkg in pkgs:
        if sorted(pkg.members) != members or pkg.ecdh_pk.lower() != ecdh_pk:
            raise ValueError(f"ecdh package from member {pkg.idx} is for another request")
    got = sorted(p.idx for p in pkgs)
    if got != members or len(set(members)) != len(members):
        raise ValueError(f"need exactly one ecdh package per member {members}, got {got}")
    points = []
    for pkg in pkgs:
        point = bytes.fromhex(pkg.keyshare)
        if not curve.is_valid_point(point):
            raise ValueError(f"ecdh keyshare from member {pkg.idx} is not a valid point")
        points.append(point)
    return curve.point_add(*points)


def wrong_keyshares(wrong: Sequence[EcdhPackage], proven: Sequence[EcdhPackage]) -> tuple[list[int], bool]:
    """Who sent a wrong key share: the members of ``wrong`` to blame, and whether that blame is certain.

    ``wrong`` is a set of packages whose sum was wrong; ``proven`` a set for the same ``ecdh_pk`` whose
    sum was proven right (a NIP-44 MAC verified with it). v1 key shares carry no proof, but a member in
    both sets must send ``λ_W·x·P`` and ``λ_P·x·P``, so its share in ``wrong`` is checked against
    ``(λ_W/λ_P)·K_P``; one that breaks that ratio is certainly wrong. When every shared member checks
    out, the error is among the members only in ``wrong``: certain when that is one member, otherwise
    all of them are suspects (``False``). Assumes the members of ``proven`` do not cancel each other's
    errors (that would take collusion).
    """
    wrong_members = sorted(pkg.idx for pkg in wrong)
    proven_members = sorted(pkg.idx for pkg in proven)
    proven_by_idx = {pkg.idx: pkg for pkg in proven}
    liars: list[int] = []
    unchecked: list[int] = []
    for pkg in wrong:
        other = proven_by_idx.get(pkg.idx)
        if other is None:
            unchecked.append(pkg.idx)
            continue
        ratio = frost.lagrange(pkg.idx, wrong_members) * pow(frost.lagrange(pkg.idx, proven_members), -1,
                                                                curve.N)
        expected = curve.point_mul(bytes.fromhex(other.keyshare), ratio)
        if bytes.fromhex(pkg.keyshare) != expected:
            liars.append(pkg.idx)
    if liars:
        return sorted(liars), True
    return sorted(unchecked), len(unchecked) == 1
