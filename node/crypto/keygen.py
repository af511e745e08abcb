"""Trusted-dealer key generation and secret recovery (spec §2), compatible with bifrost 1.0.7."""

from __future__ import annotations

import secrets as _secrets

from node.crypto import curve, frost, hashes
from node.crypto.credentials import (
    Commit,
    GroupPackage,
    SharePackage,
    check_share_in_group,
)
from node.crypto.curve import N

MAX_MEMBERS = 1000


def check_counts(threshold: int, total: int, max_members: int = MAX_MEMBERS) -> None:
    """``ValueError`` unless ``1 <= threshold <= total <= max_members`` (integers, not bools)."""
    for name, value in (("threshold", threshold), ("total", total)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer")
    if not 1 <= total <= max_members:
        raise ValueError(f"total must be between 1 and {max_members}")
    if not 1 <= threshold <= total:
        raise ValueError(f"threshold must be between 1 and total ({total})")


def _static_nonce(aux16: bytes, seckey: bytes) -> bytes:
    # bifrost slices the aux seed's hex string and right-pads 16 bytes to 32 (spec §2.2).
    value = hashes.h3(aux16 + bytes(16) + seckey)
    if value == 0:
        raise ValueError("derived nonce is zero")
    return curve.bytes32(value)


def generate_dealer_pkg(
    threshold: int, total: int, secrets: list[bytes], aux_seeds: list[bytes]
) -> tuple[GroupPackage, list[SharePackage]]:
    """Deterministic dealer: the first ``threshold`` secrets are the coefficients a0..a(t-1),
    ``aux_seeds[i]`` (64 bytes) seeds share i's static nonces. Reproduces the bifrost vectors."""
    check_counts(threshold, total)
    if len(secrets) < threshold:
        raise ValueError(f"need {threshold} coefficient secrets, got {len(secrets)}")
    if len(aux_seeds) < total:
        raise ValueError(f"need {total} aux seeds, got {len(aux_seeds)}")
    coeffs = []
    for secret in secrets[:threshold]:
        if len(secret) != 32:
            raise ValueError("each coefficient secret must be 32 bytes")
        coeffs.append(int.from_bytes(secret, "big") % N)
    if coeffs[0] == 0:
        raise ValueError("group secret must be in 1..n-1")
    group_pk = curve.base_mul(coeffs[0])
    commits: list[Commit] = []
    shares: list[SharePackage] = []
    for idx in range(1, total + 1):
        value = 0
        for coeff in reversed(coeffs):
            value = (value * idx + coeff) % N
        if value == 0:
            raise ValueError("derived share secret is zero; use other coefficients")
        seckey = curve.bytes32(value)
        seed = aux_seeds[idx - 1]
        if len(seed) != 64:
            raise ValueError("each aux seed must be 64 bytes")
        binder_sn = _static_nonce(seed[16:32], seckey)
        share = SharePackage(idx, seckey, binder_sn, _static_nonce(seed[0:16], seckey))
        shares.append(share)
        commits.append(
            Commit(
                idx,
                share.pubkey,
                curve.base_mul(int.from_bytes(share.binder_sn, "big")),
                curve.base_mul(int.from_bytes(share.hidden_sn, "big")),
            )
        )
    return GroupPackage(group_pk, threshold, tuple(commits)), shares


def generate_dealer_pkg_gen(
    threshold: int, total: int, secret: bytes | None = None
) -> tuple[GroupPackage, list[SharePackage]]:
    """Dealer with fresh randomness; ``secret`` (32 bytes) becomes the group secret a0 when given."""
    check_counts(threshold, total)
    coeffs = [_secrets.token_bytes(32) for _ in range(threshold)]
    if secret is not None:
        if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < N:
            raise ValueError("secret key must be 32 bytes in 1..n-1")
        coeffs[0] = secret
    return generate_dealer_pkg(threshold, total, coeffs, [_secrets.token_bytes(64) for _ in range(total)])


def recover_secret(group: GroupPackage, shares: list[SharePackage]) -> bytes:
    """Interpolate the group secret (32 bytes) from at least ``threshold`` distinct shares of ``group``."""
    idxs = [share.idx for share in shares]
    dupes = sorted({i for i in idxs if idxs.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate shares for member idx {', '.join(map(str, dupes))}")
    if len(shares) < group.threshold:
        raise ValueError(f"need at least {group.threshold} shares to recover, got {len(shares)}")
    for share in shares:
        check_share_in_group(group, share)
    secret = 0
    for share in shares:
        secret = (secret + frost.lagrange(share.idx, idxs) * int.from_bytes(share.seckey, "big")) % N
    if secret == 0 or curve.base_mul(secret) != group.group_pk:
        raise ValueError("recovered secret does not match the group public key")
    return curve.bytes32(secret)
