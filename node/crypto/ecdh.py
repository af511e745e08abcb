"""Threshold ECDH (spec §3.9, §4.8): each member contributes ``(λ_i·x_i)·P``; the sum is ``a0·P``."""

from __future__ import annotations

import re
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
