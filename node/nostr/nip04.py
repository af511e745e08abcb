"""NIP-04: AES-256-CBC keyed by the raw ECDH x, PKCS7, ``base64(ct) + "?iv=" + base64(iv)``."""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"nip04 {what} is not base64") from None


def encrypt(shared_x: bytes, plaintext: str, iv: bytes) -> str:
    """Encrypt with a given 16-byte IV."""
    if len(shared_x) != 32:
        raise ValueError("nip04 shared key must be 32 bytes")
    if len(iv) != 16:
        raise ValueError("nip04 iv must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    return base64.b64encode(ct).decode("ascii") + "?iv=" + base64.b64encode(iv).decode("ascii")


def encrypt_gen(shared_x: bytes, plaintext: str) -> str:
    """``encrypt`` with a fresh random IV."""
    return encrypt(shared_x, plaintext, secrets.token_bytes(16))


def parse_payload(payload: str) -> tuple[bytes, bytes]:
    """``(ciphertext, iv)`` of a well-formed payload, checked without a key; ``ValueError`` says why."""
    if not isinstance(payload, str):
        raise ValueError("nip04 payload must be a string")
    parts = payload.split("?iv=")
    if len(parts) != 2:
        raise ValueError("nip04 payload must be '<ciphertext>?iv=<iv>'")
    ct = _b64decode(parts[0], "ciphertext")
    iv = _b64decode(parts[1], "iv")
    if len(iv) != 16 or not ct or len(ct) % 16:
        raise ValueError("nip04 iv or ciphertext has the wrong length")
    return ct, iv


def decrypt(shared_x: bytes, payload: str) -> str:
    """Decrypt; ``ValueError`` on a malformed payload or bad padding (NIP-04 has no MAC)."""
    if len(shared_x) != 32:
        raise ValueError("nip04 shared key must be 32 bytes")
    ct, iv = parse_payload(payload)
    dec = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).decryptor()
    padded = dec.update(ct) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("nip04 payload does not decrypt (wrong key or corrupted)") from None
