"""The nostr-p2p 2.0.11 content cipher and envelope (spec §5.2-5.3): not NIP-04, not NIP-44.

Key = raw ECDH x (unhashed), AES-256-GCM with a 24-byte IV,
``base64url_nopad(ct‖tag) + "?iv=" + base64url_nopad(iv)``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.crypto import curve
from node.validate import is_hex

IV_SIZE = 24
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64url") from None


def shared_key(seckey: bytes, peer_pubkey: bytes) -> bytes:
    """The raw ECDH x between our secret key and a peer (x-only or compressed pubkey)."""
    return curve.ecdh_x(seckey, peer_pubkey)


def encrypt_with_key(key: bytes, plaintext: str, iv: bytes) -> str:
    """Encrypt under a precomputed shared x (see ``shared_key``)."""
    if len(iv) != IV_SIZE:
        raise ValueError(f"iv must be {IV_SIZE} bytes")
    sealed = AESGCM(key).encrypt(iv, plaintext.encode("utf-8"), None)
    return f"{_b64url(sealed)}?iv={_b64url(iv)}"


def decrypt_with_key(key: bytes, content: str) -> str:
    """Decrypt under a precomputed shared x; ``ValueError`` on any malformed or forged payload."""
    if not isinstance(content, str):
        raise ValueError("payload must be a string")
    parts = content.split("?iv=")
    if len(parts) != 2:
        raise ValueError("payload must be '<ciphertext>?iv=<iv>'")
    sealed = _unb64url(parts[0], "payload ciphertext")
    iv = _unb64url(parts[1], "payload iv")
    if len(iv) != IV_SIZE or len(sealed) < 16:
        raise ValueError("payload iv or ciphertext has the wrong length")
    try:
        plain = AESGCM(key).decrypt(iv, sealed, None)
    except InvalidTag:
        raise ValueError("payload failed authentication") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8") from None


def encrypt_payload(seckey: bytes, peer_pubkey: bytes, plaintext: str, iv: bytes) -> str:
    """Encrypt ``plaintext`` from ``seckey`` to ``peer_pubkey`` with a given 24-byte IV."""
    return encrypt_with_key(shared_key(seckey, peer_pubkey), plaintext, iv)


def encrypt_payload_gen(seckey: bytes, peer_pubkey: bytes, plaintext: str) -> str:
    """``encrypt_payload`` with a fresh random IV."""
    return encrypt_payload(seckey, peer_pubkey, plaintext, secrets.token_bytes(IV_SIZE))


def decrypt_payload(seckey: bytes, peer_pubkey: bytes, content: str) -> str:
    """Decrypt a peer's content (the key is symmetric)."""
    return decrypt_with_key(shared_key(seckey, peer_pubkey), content)


def _check_envelope(tag: object, msg_id: object, data: object) -> None:
    if not isinstance(tag, str) or not 3 <= len(tag) <= 256:
        raise ValueError("envelope tag must be a string of 3 to 256 characters")
    if not isinstance(msg_id, str) or not is_hex(msg_id.lower(), 16):
        raise ValueError("envelope id must be 32 hex characters")
    if not isinstance(data, str):
        raise ValueError("envelope data must be a string")


def encode_envelope(tag: str, msg_id: str, data: str) -> str:
    """``JSON.stringify([tag, id, data])`` exactly as nostr-p2p produces it."""
    _check_envelope(tag, msg_id, data)
    return json.dumps([tag, msg_id, data], separators=(",", ":"), ensure_ascii=False)


def decode_envelope(text: str) -> tuple[str, str, str]:
    """Parse and validate a decrypted ``[tag, id, data]`` envelope."""
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested deeper than the parser allows
        raise ValueError("envelope is not JSON") from None
    if not isinstance(obj, list) or len(obj) != 3:
        raise ValueError("envelope must be a [tag, id, data] array")
    tag, msg_id, data = obj
    _check_envelope(tag, msg_id, data)
    try:  # a \udXXX escape can decode to a lone surrogate: not Unicode, and it breaks every later encode
        tag.encode("utf-8")
        data.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("envelope is not valid Unicode (lone surrogate)") from None
    return tag, msg_id, data
