"""Deterministic keysets for tests (secrets derived from a label, never random)."""

from __future__ import annotations

import hashlib

from node.crypto import keygen
from node.crypto.credentials import GroupPackage, SharePackage


def derive(label: str, n: int, size: int = 32) -> list[bytes]:
    """``n`` pseudo-random byte strings of ``size`` bytes derived from ``label``."""
    out = []
    for i in range(n):
        data = b""
        counter = 0
        while len(data) < size:
            data += hashlib.sha256(f"{label}/{i}/{counter}".encode()).digest()
            counter += 1
        out.append(data[:size])
    return out


def keyset(threshold: int, total: int, label: str = "igloo") -> tuple[GroupPackage, list[SharePackage]]:
    """A fixed k-of-n keyset for ``label``."""
    return keygen.generate_dealer_pkg(
        threshold, total, derive(f"{label}/coeff", threshold), derive(f"{label}/aux", total, 64)
    )
