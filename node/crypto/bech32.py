"""bech32 (BIP-173) and bech32m (BIP-350) without the 90-character limit.

FROSTR credentials (``bfgroup1…`` is 568 characters for a 2-of-3 group) are far longer than
the limit most libraries enforce, so this module has none; NIP-19 uses the same code.
"""

from __future__ import annotations

from typing import Literal

Variant = Literal["bech32", "bech32m"]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {ch: i for i, ch in enumerate(CHARSET)}
_CONST = {"bech32": 1, "bech32m": 0x2BC830A3}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(ch) >> 5 for ch in hrp] + [0] + [ord(ch) & 31 for ch in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        raise ValueError("bech32 data has invalid padding")
    return out


def _check_variant(variant: str) -> int:
    if variant not in _CONST:
        raise ValueError(f"unknown bech32 variant {variant!r}")
    return _CONST[variant]


def encode(hrp: str, data: bytes, *, variant: Variant) -> str:
    """Encode ``data`` under ``hrp`` as a lowercase bech32/bech32m string (no length limit)."""
    const = _check_variant(variant)
    if not hrp or any(not 33 <= ord(ch) <= 126 for ch in hrp):
        raise ValueError("bech32 prefix must be 1 or more printable ASCII characters")
    hrp = hrp.lower()
    words = _convert_bits(data, 8, 5, pad=True)
    poly = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ const
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[w] for w in words + checksum)


def decode(text: str, *, variant: Variant) -> tuple[str, bytes]:
    """Decode a bech32/bech32m string into ``(hrp, data)``; ``ValueError`` on any defect."""
    const = _check_variant(variant)
    if not isinstance(text, str):
        raise ValueError("bech32 input must be a string")
    if text.lower() != text and text.upper() != text:
        raise ValueError("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("bech32 string has no valid separator or is too short")
    hrp = text[:pos]
    if any(not 33 <= ord(ch) <= 126 for ch in hrp):
        raise ValueError("bech32 prefix has invalid characters")
    try:
        words = [_CHARSET_REV[ch] for ch in text[pos + 1 :]]
    except KeyError:
        raise ValueError("bech32 string has a character outside the bech32 alphabet") from None
    if _polymod(_hrp_expand(hrp) + words) != const:
        raise ValueError(f"{variant} checksum is invalid")
    return hrp, bytes(_convert_bits(words[:-6], 5, 8, pad=False))
