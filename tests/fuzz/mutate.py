"""Mutations of valid credential strings: bit flips, truncation, wrong prefix, case, junk around them."""

from __future__ import annotations

from hypothesis import strategies as st

from node.crypto import bech32


def _flip_char(text: str, pos: int, shift: int) -> str:
    pos %= len(text)
    alphabet = bech32.CHARSET
    ch = text[pos]
    if ch in alphabet:
        ch = alphabet[(alphabet.index(ch) + 1 + shift % 31) % 32]
    else:
        ch = chr((ord(ch) + 1 + shift % 90) % 0x110000)
    return text[:pos] + ch + text[pos + 1 :]


def _flip_payload_bit(text: str, bit: int, variant: str) -> str:
    """Flip one bit of the decoded payload and re-encode with a valid checksum (reaches the parser)."""
    hrp, data = bech32.decode(text, variant=variant)  # type: ignore[arg-type]
    raw = bytearray(data)
    raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    return bech32.encode(hrp, bytes(raw), variant=variant)  # type: ignore[arg-type]


def _resize_payload(text: str, cut: int, extra: bytes, variant: str) -> str:
    hrp, data = bech32.decode(text, variant=variant)  # type: ignore[arg-type]
    return bech32.encode(hrp, data[: max(0, len(data) - cut)] + extra, variant=variant)  # type: ignore[arg-type]


def _rehrp(text: str, hrp: str, variant: str) -> str:
    try:
        _, data = bech32.decode(text, variant="bech32m")
    except ValueError:
        _, data = bech32.decode(text, variant="bech32")
    return bech32.encode(hrp, data, variant=variant)  # type: ignore[arg-type]


def mutations_of(valid: str, variant: str = "bech32m") -> st.SearchStrategy[str]:
    """Strings close to ``valid``: each mutation keeps most of it intact."""
    n = len(valid)
    return st.one_of(
        st.builds(_flip_char, st.just(valid), st.integers(0, n - 1), st.integers(0, 100)),
        st.builds(_flip_payload_bit, st.just(valid), st.integers(0, 8 * n), st.just(variant)),
        st.builds(_resize_payload, st.just(valid), st.integers(0, 120), st.binary(max_size=120),
                  st.just(variant)),
        st.builds(_rehrp, st.just(valid),
                  st.sampled_from(["bfgroup", "bfshare", "nsec", "npub", "bfcred", "x", "BFGROUP", "b" * 80]),
                  st.sampled_from(["bech32", "bech32m"])),  # the wrong checksum variant too
        st.integers(0, n).map(lambda k: valid[:k]),
        st.integers(0, n).map(lambda k: valid[k:]),
        st.just(valid.upper()),
        st.just(valid[:10] + valid[10:].upper()),
        st.builds(lambda pre, post: pre + valid + post,
                  st.sampled_from(["", " ", "\n", "\x00", "\ufeff", "x"]),
                  st.sampled_from(["", " ", "\t", "\x00", "1", "q", "\u00e9"])),
        st.builds(lambda k: valid[:k] + "1" + valid[k:], st.integers(0, n)),
    )


def mutated_credentials(group: str, share: str) -> st.SearchStrategy[str]:
    """Mutations of a valid group or share credential."""
    return st.one_of(mutations_of(group), mutations_of(share))
