"""The coincurve seam: the only module that talks to libsecp256k1.

Points travel as 33-byte SEC1 compressed bytes, scalars as Python ints reduced mod ``N``.
Every operation that touches a secret scalar (``k·G``, ``k·P``, BIP-340 signing) is a
constant-time libsecp256k1 call; only public values are handled with plain int math.
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F


def bytes32(value: int) -> bytes:
    """Encode an int as 32 bytes, big-endian."""
    return value.to_bytes(32, "big")


def int_from(data: bytes) -> int:
    """Read bytes as a big-endian unsigned int."""
    return int.from_bytes(data, "big")


def _scalar(k: int) -> bytes:
    k %= N
    if k == 0:
        raise ValueError("scalar is zero mod n")
    return bytes32(k)


# Parsing a compressed point costs a field square root; group commits and session nonces are
# parsed again and again, so parsed points are kept (bounded). Only inputs and the outputs of
# tweak_points/lin_comb (public nonces) enter it, never an ECDH result.
_PARSED: dict[bytes, PublicKey] = {}
_PARSED_MAX = 4096


def _remember(point: bytes, key: PublicKey) -> None:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[point] = key


def _parse(point: bytes) -> PublicKey:
    key = _PARSED.get(point)
    if key is None:
        if len(point) != 33 or point[0] not in (2, 3):
            raise ValueError("point is not a 33-byte compressed secp256k1 point")
        key = PublicKey(point)
        _remember(point, key)
    return key


def _emit(key: PublicKey) -> bytes:
    point = key.format()
    _remember(point, key)
    return point


def _seckey(seckey: bytes) -> bytes:
    # coincurve left-pads short byte strings; a secret key must be exactly 32 bytes in 1..n-1.
    if len(seckey) != 32 or not 0 < int_from(seckey) < N:
        raise ValueError("secret key must be 32 bytes in 1..n-1")
    return seckey


def is_valid_point(point: bytes) -> bool:
    """True when ``point`` is a 33-byte compressed point on the curve."""
    try:
        _parse(bytes(point))
    except (ValueError, TypeError):
        return False
    return True


def require_point(point: bytes, what: str = "point") -> bytes:
    """Return ``point`` if it is a valid compressed point, else raise ``ValueError`` naming it."""
    if not is_valid_point(point):
        raise ValueError(f"{what} is not a valid compressed secp256k1 point")
    return point


def base_mul(k: int) -> bytes:
    """``k·G`` as a compressed point (constant time in ``k``)."""
    # PublicKey.from_valid_secret: one constant-time generator multiplication (PrivateKey()
    # would also build a keypair, a second one).
    return PublicKey.from_valid_secret(_scalar(k)).format()


def point_mul(point: bytes, k: int) -> bytes:
    """``k·P`` as a compressed point (constant time in ``k``)."""
    return _parse(point).multiply(_scalar(k)).format()


def point_add(*points: bytes) -> bytes:
    """The sum of the points; raises ``ValueError`` when it is the point at infinity."""
    if len(points) == 1:
        return _parse(points[0]).format()
    return PublicKey.combine_keys([_parse(p) for p in points]).format()


def point_add_base(point: bytes, t: int) -> bytes:
    """``P + t·G``; ``t`` may be zero."""
    t %= N
    if t == 0:
        return point
    return _parse(point).add(bytes32(t)).format()


def tweak_points(points: Sequence[bytes], t: int) -> list[bytes]:
    """``[P + t·G for P in points]`` computing ``t·G`` only once; ``t`` may be zero.

    For public points only (session nonces): the results are kept in the parse cache.
    """
    t %= N
    if t == 0:
        return [_parse(p).format() for p in points]
    tg = PublicKey.from_valid_secret(bytes32(t))
    return [_emit(PublicKey.combine_keys([_parse(p), tg])) for p in points]


def lin_comb(terms: Sequence[tuple[bytes, int]]) -> bytes:
    """``Σ k·P`` over ``(P, k)`` pairs (``k == 1`` skips the multiplication); raises at infinity.

    For public points only (nonce sums, verification): the result is kept in the parse cache.
    """
    keys: list[PublicKey] = []
    for point, k in terms:
        key = _parse(point)
        keys.append(key if k % N == 1 else key.multiply(_scalar(k)))
    if len(keys) == 1:
        return _emit(keys[0])
    return _emit(PublicKey.combine_keys(keys))


def negate(point: bytes) -> bytes:
    """``-P``: flip the parity byte."""
    return bytes([point[0] ^ 1]) + point[1:]


def has_even_y(point: bytes) -> bool:
    """True when the compressed point has even y (prefix 02)."""
    return point[0] == 2


def xonly(point: bytes) -> bytes:
    """The 32-byte x coordinate of a compressed point."""
    return point[1:]


def lift_x(x32: bytes) -> bytes:
    """BIP-340 ``lift_x``: the point with this x and even y, compressed."""
    if len(x32) != 32:
        raise ValueError("x-only key must be 32 bytes")
    return require_point(b"\x02" + x32, "x-only key")


def as_point(key: bytes) -> bytes:
    """Accept a 33-byte compressed point or a 32-byte x-only key (lifted with even y)."""
    if len(key) == 32:
        return lift_x(key)
    return require_point(key, "public key")


def pubkey_of(seckey: bytes) -> bytes:
    """The compressed public key of a 32-byte secret key."""
    return PublicKey.from_secret(_seckey(seckey)).format()


def ecdh_point(seckey: bytes, pubkey: bytes) -> bytes:
    """``seckey · P`` as a compressed point, ``P`` given compressed or x-only (even y)."""
    return _parse(as_point(pubkey)).multiply(_seckey(seckey)).format()


def ecdh_x(seckey: bytes, pubkey: bytes) -> bytes:
    """Raw ECDH x coordinate (not hashed), as nostr-p2p, NIP-04 and NIP-44 use it."""
    return ecdh_point(seckey, pubkey)[1:]


def schnorr_sign(seckey: bytes, msg32: bytes, aux32: bytes) -> bytes:
    """BIP-340 signature over a 32-byte message with 32 bytes of auxiliary randomness."""
    return PrivateKey(_seckey(seckey)).sign_schnorr(msg32, aux_randomness=aux32)


def schnorr_verify(xonly_pub: bytes, msg32: bytes, sig64: bytes) -> bool:
    """BIP-340 verification (any message length); malformed keys or signatures verify as False."""
    if len(xonly_pub) != 32 or len(sig64) != 64:
        return False
    try:
        return bool(PublicKeyXOnly(xonly_pub).verify(sig64, msg32))
    except (ValueError, TypeError):
        return False
