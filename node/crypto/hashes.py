"""The hash functions of @cmdcode/frost 1.1.x (RFC 9591 FROST(secp256k1, SHA-256) plus BIP-340).

H1/H3 are RFC 9380 ``hash_to_field`` with ``expand_message_xmd`` (48 bytes, reduced mod n);
H4/H5 are plain SHA-256 with the domain string as a prefix (no length byte).
"""

from __future__ import annotations

import hashlib

from node.crypto.curve import N

DOMAIN = b"FROST-secp256k1-SHA256-v1"
_H4_PREFIX = DOMAIN + b"msg"
_H5_PREFIX = DOMAIN + b"com"
_Z_PAD = bytes(64)


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenated parts."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 ``expand_message_xmd`` with SHA-256."""
    ell = -(-len_in_bytes // 32)
    if ell > 255 or len(dst) > 255 or len_in_bytes > 65535:
        raise ValueError("expand_message_xmd parameters are out of range")
    dst_prime = dst + bytes([len(dst)])
    b0 = sha256(_Z_PAD, msg, len_in_bytes.to_bytes(2, "big"), b"\x00", dst_prime)
    blocks = [sha256(b0, b"\x01", dst_prime)]
    for i in range(2, ell + 1):
        mixed = (int.from_bytes(b0, "big") ^ int.from_bytes(blocks[-1], "big")).to_bytes(32, "big")
        blocks.append(sha256(mixed, bytes([i]), dst_prime))
    return b"".join(blocks)[:len_in_bytes]


def hash_to_scalar(msg: bytes, dst: bytes) -> int:
    """RFC 9380 ``hash_to_field`` (count 1, L = 48) into the scalar field mod n."""
    return int.from_bytes(expand_message_xmd(msg, dst, 48), "big") % N


def h1(msg: bytes) -> int:
    """FROST H1: the binding factor rho."""
    return hash_to_scalar(msg, DOMAIN + b"rho")


def h3(msg: bytes) -> int:
    """FROST H3: dealer-time nonce generation."""
    return hash_to_scalar(msg, DOMAIN + b"nonce")


def h4(msg: bytes) -> bytes:
    """FROST H4: the message hash in the binding prefix."""
    return sha256(_H4_PREFIX, msg)


def h5(msg: bytes) -> bytes:
    """FROST H5: the commitment-list hash in the binding prefix."""
    return sha256(_H5_PREFIX, msg)


_TAG_CACHE: dict[str, bytes] = {}


def tagged_hash(tag: str, *parts: bytes) -> bytes:
    """BIP-340 tagged hash ``SHA256(SHA256(tag) ‖ SHA256(tag) ‖ parts…)``."""
    prefix = _TAG_CACHE.get(tag)
    if prefix is None:
        digest = hashlib.sha256(tag.encode()).digest()
        prefix = _TAG_CACHE[tag] = digest + digest
    return sha256(prefix, *parts)
