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
    # hash_to_field reduces the 48-byte digest with Python ints: not constant time, but it runs
    # once per share at keygen, on the dealer, where nobody can time it again and again.
    value = hashes.h3(aux16 + bytes(16) + seckey)
    if value == 0:
        raise ValueError("derived nonce is zero")
    return curve.bytes32(value)


def _coefficient(secret: bytes) -> bytes | None:
    """A polynomial coefficient as a secret scalar in 1..n-1, or ``None`` when it is zero mod n."""
    if len(secret) != 32:
        raise ValueError("each coefficient secret must be 32 bytes")
    if curve.is_valid_seckey(secret):
        return secret
    # Only 0 and values >= n get here (probability 2^-128 for random bytes); reducing them with
    # Python ints tells a timer only that the input was out of range.
    value = curve.int_from(secret) % N
    return curve.bytes32(value) if value else None


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
    coeffs = [_coefficient(secret) for secret in secrets[:threshold]]
    group_secret = coeffs[0]
    if group_secret is None:
        raise ValueError("group secret must be in 1..n-1")
    group_pk = curve.pubkey_of(group_secret)
    commits: list[Commit] = []
    shares: list[SharePackage] = []
    for idx in range(1, total + 1):
        # f(idx) = Σ a_j·idx^j: the powers of the public idx are public ints, the sum of the
        # weighted secret coefficients is libsecp256k1's constant-time scalar code.
        seckey = curve.secret_lin_comb(
            [(coeff, pow(idx, j, N)) for j, coeff in enumerate(coeffs) if coeff is not None]
        )
        if seckey is None:
            raise ValueError("derived share secret is zero; use other coefficients")
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
                curve.pubkey_of(share.binder_sn),
                curve.pubkey_of(share.hidden_sn),
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
        if not curve.is_valid_seckey(secret):
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
    # Σ λ_i·x_i with public λ_i; a zero sum cannot match the group key and is refused with it.
    secret = curve.secret_lin_comb([(share.seckey, frost.lagrange(share.idx, idxs)) for share in shares])
    if secret is None or curve.pubkey_of(secret) != group.group_pk:
        raise ValueError("recovered secret does not match the group public key")
    return secret
