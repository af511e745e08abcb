"""NIP-44 v2 (spec §7): HKDF-SHA256, ChaCha20, HMAC-SHA256, padded plaintext."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from node.crypto import curve

VERSION = 2
_SALT = b"nip44-v2"


def conversation_key_from_shared_x(shared_x: bytes) -> bytes:
    """HKDF-Extract(salt = "nip44-v2", IKM = shared_x)."""
    if len(shared_x) != 32:
        raise ValueError("nip44 shared x must be 32 bytes")
    return hmac.new(_SALT, shared_x, hashlib.sha256).digest()


def conversation_key(seckey: bytes, pubkey: bytes) -> bytes:
    """The conversation key between a secret key and an x-only (or compressed) pubkey."""
    return conversation_key_from_shared_x(curve.ecdh_x(seckey, pubkey))


def calc_padded_len(length: int) -> int:
    """The padded plaintext length for ``length`` bytes (NIP-44 table)."""
    if length < 1:
        raise ValueError("nip44 plaintext length must be positive")
    if length <= 32:
        return 32
    next_pow = 1 << (length - 1).bit_length()
    chunk = 32 if next_pow <= 256 else next_pow // 8
    return chunk * ((length - 1) // chunk + 1)


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """``(chacha_key, chacha_nonce, hmac_key)``: HKDF-Expand(conv_key, nonce, 76 bytes) split 32/12/32."""
    if len(conv_key) != 32:
        raise ValueError("nip44 conversation key must be 32 bytes")
    if len(nonce) != 32:
        raise ValueError("nip44 nonce must be 32 bytes")
    okm = b""
    block = b""
    counter = 1
    while len(okm) < 76:
        block = hmac.new(conv_key, block + nonce + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[0:32], okm[32:44], okm[44:76]


def _chacha(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00\x00\x00\x00" + nonce12), mode=None)
    return cipher.encryptor().update(data)


def encrypt(conv_key: bytes, plaintext: str, nonce: bytes) -> str:
    """Encrypt with a given 32-byte nonce; ``base64(0x02 ‖ nonce ‖ ct ‖ mac)``."""
    raw = plaintext.encode("utf-8")
    if not 1 <= len(raw) <= 65535:
        raise ValueError("nip44 plaintext must be 1 to 65535 bytes")
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    padded = len(raw).to_bytes(2, "big") + raw + bytes(calc_padded_len(len(raw)) - len(raw))
    ct = _chacha(chacha_key, chacha_nonce, padded)
    mac = hmac.new(hmac_key, nonce + ct, hashlib.sha256).digest()
    return base64.b64encode(bytes([VERSION]) + nonce + ct + mac).decode("ascii")


def encrypt_gen(conv_key: bytes, plaintext: str) -> str:
    """``encrypt`` with a fresh random nonce."""
    return encrypt(conv_key, plaintext, secrets.token_bytes(32))


def parse_payload(payload: str) -> tuple[bytes, bytes, bytes]:
    """``(nonce, ciphertext, mac)`` of a well-formed v2 payload, checked without a key (``ValueError``)."""
    if not isinstance(payload, str):
        raise ValueError("nip44 payload must be a string")
    if payload.startswith("#"):
        raise ValueError("nip44 payload has an unsupported encryption version")
    if not 132 <= len(payload) <= 87472:
        raise ValueError("nip44 payload has an invalid length")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("nip44 payload is not base64") from None
    if not 99 <= len(data) <= 65603:
        raise ValueError("nip44 payload has an invalid decoded length")
    if data[0] != VERSION:
        raise ValueError(f"nip44 payload has unknown version {data[0]}")
    return data[1:33], data[33:-32], data[-32:]


def decrypt(conv_key: bytes, payload: str) -> str:
    """Decrypt and authenticate; ``ValueError`` names what is wrong."""
    nonce, ct, mac = parse_payload(payload)
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    expected = hmac.new(hmac_key, nonce + ct, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise ValueError("nip44 payload has an invalid MAC")
    padded = _chacha(chacha_key, chacha_nonce, ct)
    length = int.from_bytes(padded[0:2], "big")
    if not 1 <= length <= 65535 or len(padded) != 2 + calc_padded_len(length):
        raise ValueError("nip44 payload has invalid padding")
    try:
        return padded[2 : 2 + length].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("nip44 plaintext is not UTF-8") from None
