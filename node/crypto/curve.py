"""The coincurve seam: the only module that talks to libsecp256k1.

Points travel as 33-byte SEC1 compressed bytes. Secret scalars (share keys, nonces, anything
derived from them) travel as 32-byte ``bytes`` in 1..n-1 and are only ever handled by
libsecp256k1's constant-time code: ``secret_add``/``secret_lin_comb`` (``seckey_tweak_add``,
``seckey_tweak_mul``, ``seckey_negate``), ``pubkey_of`` (``ec_pubkey_create``), ``ecdh_point``
(``secp256k1_ecdh``, whose ``ecmult_const`` is the library's only constant-time ``k·P``) and
``schnorr_sign``. Public scalars (λ, challenges, binding factors, tweaks, partial signatures)
are Python ints, for ``base_mul`` and the faster variable-time ``point_mul``, ``lin_comb``,
``point_add_base`` and ``tweak_points``. docs/SECURITY.md section 5 lists exactly what is and
is not constant time.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from coincurve import PublicKey, PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

_CTX = GLOBAL_CONTEXT.ctx


def bytes32(value: int) -> bytes:
    """Encode an int as 32 bytes, big-endian."""
    return value.to_bytes(32, "big")


def int_from(data: bytes) -> int:
    """Read bytes as a big-endian unsigned int (for public values: Python ints are not constant time)."""
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


# --- Public scalars (Python ints): variable-time calls, never given a secret -----------------


def base_mul(k: int) -> bytes:
    """``k·G`` for a public scalar ``k`` (for a secret one use ``pubkey_of``)."""
    # PublicKey.from_valid_secret: one generator multiplication (PrivateKey() would also build
    # a keypair, a second one).
    return PublicKey.from_valid_secret(_scalar(k)).format()


def point_mul(point: bytes, k: int) -> bytes:
    """``k·P`` for a public scalar ``k``: variable time (``ec_pubkey_tweak_mul`` runs ``ecmult``).

    For a secret scalar use ``ecdh_point``.
    """
    return _parse(point).multiply(_scalar(k)).format()


def point_add(*points: bytes) -> bytes:
    """The sum of the points; raises ``ValueError`` when it is the point at infinity."""
    if len(points) == 1:
        return _parse(points[0]).format()
    return PublicKey.combine_keys([_parse(p) for p in points]).format()


def point_add_base(point: bytes, t: int) -> bytes:
    """``P + t·G`` for a public ``t`` (variable time); ``t`` may be zero."""
    t %= N
    if t == 0:
        return point
    return _parse(point).add(bytes32(t)).format()


def tweak_points(points: Sequence[bytes], t: int) -> list[bytes]:
    """``[P + t·G for P in points]`` computing ``t·G`` only once; ``t`` (public) may be zero.

    For public points only (session nonces): the results are kept in the parse cache.
    """
    t %= N
    if t == 0:
        return [_parse(p).format() for p in points]
    tg = PublicKey.from_valid_secret(bytes32(t))
    return [_emit(PublicKey.combine_keys([_parse(p), tg])) for p in points]


def lin_comb(terms: Sequence[tuple[bytes, int]]) -> bytes:
    """``Σ k·P`` over ``(P, k)`` pairs of public points and public scalars (``k == 1`` skips the
    multiplication); raises at infinity. Variable time.

    The result is kept in the parse cache (nonce sums, verification).
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


def schnorr_verify(xonly_pub: bytes, msg32: bytes, sig64: bytes) -> bool:
    """BIP-340 verification (any message length); malformed keys or signatures verify as False."""
    if len(xonly_pub) != 32 or len(sig64) != 64:
        return False
    try:
        return bool(PublicKeyXOnly(xonly_pub).verify(sig64, msg32))
    except (ValueError, TypeError):
        return False


# --- Secret scalars (32-byte bytes in 1..n-1): libsecp256k1's constant-time code only --------
#
# A secret never becomes a Python int here: Python's big-int arithmetic and comparisons take
# time that depends on the value. The only branches on secret-derived data are "is this sum
# zero?" (libsecp256k1 reports it), which for honest inputs happens with probability 2^-256.
# The seckey functions are called through coincurve's FFI module: PrivateKey.add/multiply call
# the same functions but also rebuild two public keys per call (two generator multiplications)
# and range-check the secret with a Python int.


def is_valid_seckey(seckey: bytes) -> bool:
    """True when ``seckey`` is 32 bytes in 1..n-1 (``secp256k1_ec_seckey_verify``, constant time)."""
    return len(seckey) == 32 and bool(lib.secp256k1_ec_seckey_verify(_CTX, seckey))


def _seckey(seckey: bytes) -> bytes:
    # coincurve left-pads short byte strings; a secret key must be exactly 32 bytes in 1..n-1.
    seckey = bytes(seckey)
    if not is_valid_seckey(seckey):
        raise ValueError("secret key must be 32 bytes in 1..n-1")
    return seckey


def _buffer(seckey: bytes) -> Any:
    """A 32-byte C buffer holding ``seckey`` (whose length is checked: cffi zero-pads short input)."""
    if len(seckey) != 32:
        raise ValueError("secret key must be 32 bytes in 1..n-1")
    return ffi.new("unsigned char[32]", seckey)


def _scale(buf: Any, k: int) -> bool:
    """``buf := k·buf`` in place for a public ``k`` in 1..n-1; False when ``buf`` held no valid secret.

    libsecp256k1 checks the secret inside the same call, so no separate verification pass is needed.
    """
    if k == 1:
        return bool(lib.secp256k1_ec_seckey_verify(_CTX, buf))
    if k == N - 1:
        return bool(lib.secp256k1_ec_seckey_negate(_CTX, buf))
    return bool(lib.secp256k1_ec_seckey_tweak_mul(_CTX, buf, k.to_bytes(32, "big")))


def secret_add(seckey: bytes, t: int) -> bytes:
    """``seckey + t mod n`` for a public ``t`` (any int); ``ValueError`` when the result is zero."""
    buf = _buffer(seckey)
    # tweak_add refuses an invalid secret as well as a zero sum: tell the two apart only then.
    if not lib.secp256k1_ec_seckey_tweak_add(_CTX, buf, bytes32(t % N)):
        _seckey(seckey)
        raise ValueError("secret scalar plus tweak is zero")
    return bytes(ffi.buffer(buf, 32))


def secret_mul(seckey: bytes, k: int) -> bytes:
    """``k·seckey mod n`` for a public ``k``; ``ValueError`` when ``k`` is zero mod n."""
    k %= N
    if k == 0:
        raise ValueError("scalar is zero mod n")
    buf = _buffer(seckey)
    if not _scale(buf, k):
        raise ValueError("secret key must be 32 bytes in 1..n-1")
    return bytes(ffi.buffer(buf, 32))


def secret_lin_comb(terms: Sequence[tuple[bytes, int]]) -> bytes | None:
    """``Σ k·s mod n`` over ``(s, k)`` pairs of secret scalars and public ints; ``None`` when zero.

    Terms whose ``k`` is zero mod n contribute nothing and are skipped; a partial sum may be
    zero, the total is still exact.
    """
    total: Any = None  # the running sum, in one C buffer: no bytes objects between the steps
    for seckey, k in terms:
        k %= N
        if k == 0:
            continue
        term = _buffer(seckey)
        if not _scale(term, k):
            raise ValueError("secret key must be 32 bytes in 1..n-1")
        if total is None:
            total = term
        elif not lib.secp256k1_ec_seckey_tweak_add(_CTX, total, term):
            total = None  # both inputs were valid, so the partial sum is zero (probability 2^-256)
    return None if total is None else bytes(ffi.buffer(total, 32))


def pubkey_of(seckey: bytes) -> bytes:
    """``seckey·G`` as a compressed point (``ec_pubkey_create``, constant time)."""
    return PublicKey.from_valid_secret(_seckey(seckey)).format()


# secp256k1_ecdh is libsecp256k1's only constant-time k·P (ecmult_const; ec_pubkey_tweak_mul
# runs the variable-time ecmult). It hands x and y to a hash callback: this one copies them out.
# The callback is made with ctypes, not cffi: cffi's ffi.callback needs write+execute memory,
# which igloo.service forbids (MemoryDenyWriteExecute=yes), while ctypes uses libffi's static
# trampolines (tests/crypto/test_constant_time.py runs it under PR_SET_MDWE).
_HashFunction = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)


def _copy_xy(output: int, x32: int, y32: int, _data: int | None) -> int:
    ctypes.memmove(output, x32, 32)
    ctypes.memmove(output + 32, y32, 32)
    return 1


_COPY_XY_CALLBACK = _HashFunction(_copy_xy)  # kept alive for the life of the process
_COPY_XY = ffi.cast(
    "secp256k1_ecdh_hash_function", ctypes.cast(_COPY_XY_CALLBACK, ctypes.c_void_p).value
)


def ecdh_point(seckey: bytes, pubkey: bytes) -> bytes:
    """``seckey · P`` as a compressed point, ``P`` given compressed or x-only (even y); constant
    time in ``seckey`` (``secp256k1_ecdh``)."""
    key = _parse(as_point(pubkey))
    xy = ffi.new("unsigned char[64]")
    if not lib.secp256k1_ecdh(_CTX, xy, key.public_key, _seckey(seckey), _COPY_XY, ffi.NULL):
        raise ValueError("ecdh failed")  # pragma: no cover - seckey and point were checked
    out = bytes(ffi.buffer(xy, 64))
    return bytes((2 | (out[63] & 1),)) + out[:32]


def ecdh_x(seckey: bytes, pubkey: bytes) -> bytes:
    """Raw ECDH x coordinate (not hashed), as nostr-p2p, NIP-04 and NIP-44 use it."""
    return ecdh_point(seckey, pubkey)[1:]


def schnorr_sign(seckey: bytes, msg32: bytes, aux32: bytes) -> bytes:
    """BIP-340 signature over a 32-byte message with 32 bytes of auxiliary randomness, verified
    before it is returned."""
    if len(msg32) != 32 or len(aux32) != 32:
        raise ValueError("schnorr_sign needs a 32-byte message and 32 bytes of aux randomness")
    keypair = ffi.new("secp256k1_keypair *")
    if not lib.secp256k1_keypair_create(_CTX, keypair, _seckey(seckey)):
        raise ValueError("secret key must be 32 bytes in 1..n-1")  # pragma: no cover - checked
    sig = ffi.new("unsigned char[64]")
    xonly_pub = ffi.new("secp256k1_xonly_pubkey *")
    if not (
        lib.secp256k1_schnorrsig_sign32(_CTX, sig, msg32, keypair, aux32)
        and lib.secp256k1_keypair_xonly_pub(_CTX, xonly_pub, ffi.NULL, keypair)
        and lib.secp256k1_schnorrsig_verify(_CTX, sig, msg32, 32, xonly_pub)
    ):
        raise ValueError("BIP-340 signing failed")  # pragma: no cover - libsecp256k1 fault
    return bytes(ffi.buffer(sig, 64))
