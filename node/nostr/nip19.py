"""NIP-19 ``nsec1…`` / ``npub1…`` (bech32, 32-byte payloads). Errors never echo the input."""

from __future__ import annotations

from node.crypto import bech32, curve


def _encode(hrp: str, key: bytes) -> str:
    if len(key) != 32:
        raise ValueError(f"{hrp} payload must be 32 bytes")
    return bech32.encode(hrp, key, variant="bech32")


def _decode(hrp: str, text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{hrp} must be a string")
    try:
        got, data = bech32.decode(text.strip(), variant="bech32")
    except ValueError as exc:
        raise ValueError(f"{hrp} is not valid bech32: {exc}") from None
    if got != hrp:
        raise ValueError(f"expected an {hrp}1 string")
    if len(data) != 32:
        raise ValueError(f"{hrp} payload must be 32 bytes, got {len(data)}")
    return data


def nsec_encode(seckey: bytes) -> str:
    """``nsec1…`` of a 32-byte secret key."""
    return _encode("nsec", seckey)


def nsec_decode(text: str) -> bytes:
    """The 32-byte secret key of an ``nsec1…`` string (must be in 1..n-1)."""
    seckey = _decode("nsec", text)
    if not curve.is_valid_seckey(seckey):  # libsecp256k1's range check: the key never becomes an int
        raise ValueError("nsec is not a valid secp256k1 secret key")
    return seckey


def npub_encode(pubkey: bytes) -> str:
    """``npub1…`` of a 32-byte x-only public key."""
    return _encode("npub", pubkey)


def npub_decode(text: str) -> bytes:
    """The 32-byte x-only public key of an ``npub1…`` string."""
    return _decode("npub", text)
