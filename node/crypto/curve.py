"""The coincurve seam: the only module that talks to libsecp256k1.

Points travel as 33-byte SEC1 compressed bytes, scalars as Python ints reduced mod ``N``.
Every operation that touches a secret scalar (``k·G``, ``k·P``, BIP-340 signing) is a
constant-time libsecp256k1 call; only public values are handled with plain int math.
"""

from __future__ import annotations

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


def is_valid_point(point: bytes) -> bool:
    """True when ``point`` is a 33-byte compressed point on the curve."""
    if len(point) != 33 or point[0] not in (2, 3):
        return False
    try:
        PublicKey(point)
    except ValueError:
        return False
    return True


def require_point(point: bytes, what: str = "point") -> bytes:
    """Return ``point`` if it is a valid compressed point, else raise ``ValueError`` naming it."""
    if not is_valid_point(point):
        raise ValueError(f"{what} is not a valid compressed secp256k1 point")
    return point


def base_mul(k: int) -> bytes:
    """``k·G`` as a compressed point (constant time in ``k``)."""
    return PrivateKey(_scalar(k)).public_key.format()


def point_mul(point: bytes, k: int) -> bytes:
    """``k·P`` as a compressed point (constant time in ``k``)."""
    return PublicKey(point).multiply(_scalar(k)).format()


def point_add(*points: bytes) -> bytes:
    """The sum of the points; raises ``ValueError`` when it is the point at infinity."""
    if len(points) == 1:
        return points[0]
    return PublicKey.combine_keys([PublicKey(p) for p in points]).format()


def point_add_base(point: bytes, t: int) -> bytes:
    """``P + t·G``; ``t`` may be zero."""
    t %= N
    if t == 0:
        return point
    return PublicKey(point).add(bytes32(t)).format()


def negate(point: bytes) -> bytes:
    """``−P``: flip the parity byte."""
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
    return PrivateKey(seckey).public_key.format()


def ecdh_point(seckey: bytes, pubkey: bytes) -> bytes:
    """``seckey · P`` as a compressed point, ``P`` given compressed or x-only (even y)."""
    return PublicKey(as_point(pubkey)).multiply(seckey).format()


def ecdh_x(seckey: bytes, pubkey: bytes) -> bytes:
    """Raw ECDH x coordinate (not hashed), as nostr-p2p, NIP-04 and NIP-44 use it."""
    return ecdh_point(seckey, pubkey)[1:]


def schnorr_sign(seckey: bytes, msg32: bytes, aux32: bytes) -> bytes:
    """BIP-340 signature over a 32-byte message with 32 bytes of auxiliary randomness."""
    return PrivateKey(seckey).sign_schnorr(msg32, aux_randomness=aux32)


def schnorr_verify(xonly_pub: bytes, msg32: bytes, sig64: bytes) -> bool:
    """BIP-340 verification; malformed keys or signatures verify as False."""
    if len(xonly_pub) != 32 or len(sig64) != 64 or len(msg32) != 32:
        return False
    try:
        return bool(PublicKeyXOnly(xonly_pub).verify(sig64, msg32))
    except (ValueError, TypeError):
        return False
