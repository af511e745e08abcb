"""The FROST variant of @cmdcode/frost 1.1.x (spec §3): RFC 9591 binding, BIP-340 challenge.

Pure functions over public values plus ``sign_partial`` (the one place a share secret is
used). Points are 33-byte compressed ``bytes``; public scalars (λ, rho, c, psigs) are ``int``
mod n; secret scalars are 32-byte ``bytes`` that only ``curve``'s constant-time calls combine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from node.crypto import curve, hashes
from node.crypto.curve import N

CHALLENGE_TAG = "BIP0340/challenge"


def lagrange(idx: int, members: Sequence[int]) -> int:
    """λ_idx at x = 0 over the participant set ``members`` (distinct idxs containing ``idx``).

    Public: it depends only on member idxs, so plain int arithmetic is fine. Never zero mod n
    (a product of nonzero differences of distinct idxs below 2^32, modulo the prime n).
    """
    if len(set(members)) != len(members):
        raise ValueError("participant list has duplicate idxs")
    if idx not in members:
        raise ValueError(f"idx {idx} is not among the participants")
    num = 1
    den = 1
    for j in members:
        if j != idx:
            num = num * j % N
            den = den * (j - idx) % N
    return num * pow(den, -1, N) % N


@dataclass(frozen=True, slots=True)
class KeyContext:
    """The tweaked group key ``Q`` (compressed) with its parity, tweak state and tweak accumulator."""

    group_pk: bytes
    parity: int
    state: int
    tacc: int


@lru_cache(maxsize=256)
def key_context(group_pk: bytes, tweaks: tuple[bytes, ...] = ()) -> KeyContext:
    """Apply x-only tweaks in order to the internal key (spec §3.3)."""
    point = curve.as_point(group_pk)
    state, tacc = 1, 0
    for tweak in tweaks:
        if len(tweak) != 32:
            raise ValueError("tweak must be 32 bytes")
        t = int.from_bytes(tweak, "big")
        if curve.has_even_y(point):
            g = 1
        else:
            g = N - 1
            point = curve.negate(point)
        point = curve.point_add_base(point, t)
        state = g * state % N
        tacc = (t + g * tacc) % N
    parity = 1 if curve.has_even_y(point) else N - 1
    return KeyContext(point, parity, state, tacc)


def commit_list(nonces: Mapping[int, tuple[bytes, bytes]]) -> bytes:
    """``bytes32(idx) ‖ hidden ‖ binder`` for each participant, sorted by idx (spec §3.4)."""
    return b"".join(
        curve.bytes32(idx) + nonces[idx][0] + nonces[idx][1] for idx in sorted(nonces)
    )


def binding_prefix(group_pk: bytes, msg: bytes, commits: bytes) -> bytes:
    """``cbytes(Q) ‖ H4(msg) ‖ H5(commit_list)`` (97 bytes)."""
    return group_pk + hashes.h4(msg) + hashes.h5(commits)


def binding_factor(prefix: bytes, idx: int) -> int:
    """rho_idx = H1(prefix ‖ bytes32(idx))."""
    return hashes.h1(prefix + curve.bytes32(idx))


def challenge(group_nonce: bytes, group_pk: bytes, msg: bytes) -> int:
    """The BIP-340 challenge ``c`` over x-only R and Q, reduced mod n."""
    digest = hashes.tagged_hash(CHALLENGE_TAG, group_nonce[1:], group_pk[1:], msg)
    return int.from_bytes(digest, "big") % N


@dataclass(frozen=True, slots=True)
class SigningContext:
    """Everything public about one FROST signature: key state, rho, λ, R (whole and per member), c."""

    msg: bytes
    key: KeyContext
    members: tuple[int, ...]
    nonces: Mapping[int, tuple[bytes, bytes]]
    prefix: bytes
    rhos: Mapping[int, int]
    lambdas: Mapping[int, int]
    member_nonces: Mapping[int, bytes]
    group_nonce: bytes
    c: int

    @property
    def nonce_negated(self) -> bool:
        """True when R has odd y, so every nonce is negated."""
        return not curve.has_even_y(self.group_nonce)


def signing_context(
    key: KeyContext, msg: bytes, members: Sequence[int], nonces: Mapping[int, tuple[bytes, bytes]]
) -> SigningContext:
    """Build the context; ``nonces`` maps each member idx to its (hidden D, binder E) commitments."""
    if set(nonces) != set(members):
        raise ValueError("nonce commitments do not cover exactly the participants")
    prefix = binding_prefix(key.group_pk, msg, commit_list(nonces))
    rhos = {idx: binding_factor(prefix, idx) for idx in members}
    lambdas = {idx: lagrange(idx, members) for idx in members}
    member_nonces = {
        idx: curve.lin_comb(((nonces[idx][0], 1), (nonces[idx][1], rhos[idx]))) for idx in members
    }
    group_nonce = curve.point_add(*member_nonces.values())
    c = challenge(group_nonce, key.group_pk, msg)
    return SigningContext(
        msg, key, tuple(members), nonces, prefix, rhos, lambdas, member_nonces, group_nonce, c
    )


def sign_partial(
    ctx: SigningContext, idx: int, seckey: bytes, hidden_sn: bytes, binder_sn: bytes
) -> int:
    """z_i = c·λ_i·parity·state·x_i + s_R·d_i + s_R·rho_i·e_i mod n (spec §3.6), s_R = -1 when R is odd.

    The secrets (share ``seckey`` x_i and this session's nonces d_i, e_i, 32 bytes each) are only
    combined by libsecp256k1's constant-time scalar code; the factors are public.
    """
    if idx not in ctx.rhos:
        raise ValueError(f"idx {idx} is not among the signing participants")
    sign_r = N - 1 if ctx.nonce_negated else 1
    share_weight = ctx.c * ctx.lambdas[idx] * ctx.key.parity * ctx.key.state  # public
    z = curve.secret_lin_comb(
        ((seckey, share_weight), (hidden_sn, sign_r), (binder_sn, sign_r * ctx.rhos[idx]))
    )
    # z ≡ 0 (probability 2^-256) is returned as 0, the value the integer formula gives; every
    # verifier refuses it. The psig itself is public: it is sent to the requester.
    return 0 if z is None else curve.int_from(z)


def verify_partial(ctx: SigningContext, idx: int, pubkey: bytes, z: int) -> bool:
    """Full-point check ``z·G == ±(D + rho·E) + (c·λ·parity·state)·X`` (spec §3.7, not x-only)."""
    if idx not in ctx.rhos or not 0 < z < N:
        return False
    r_i = ctx.member_nonces[idx]
    if ctx.nonce_negated:
        r_i = curve.negate(r_i)
    k = ctx.c * ctx.lambdas[idx] * ctx.key.parity * ctx.key.state % N
    try:
        expected = curve.lin_comb(((r_i, 1), (pubkey, k)))
        return curve.base_mul(z) == expected
    except ValueError:
        return False


def aggregate(ctx: SigningContext, psigs: Sequence[int]) -> bytes:
    """The 64-byte BIP-340 signature ``xonly(R) ‖ bytes32(Σz + c·parity·tacc)``."""
    s = (sum(psigs) + ctx.c * ctx.key.parity * ctx.key.tacc) % N
    return ctx.group_nonce[1:] + curve.bytes32(s)
