"""NIP-44 v2 and NIP-04 between the group key and a counterparty, given their threshold-ECDH shared point.

The node computes the shared point with its peers (``NodeService.ecdh``); this module turns it into each
scheme's key and runs the cipher. NIP-44 keys on ``HKDF-Extract("nip44-v2", shared_x)``, NIP-04 on the raw
shared x, so standard clients read what the group writes. Pure: no I/O, no node state.

Errors are ``ValueError`` whose message starts with the parameter it is about (``scheme: ...``,
``content: ...``), ready for a 400 or a NIP-46 error reply.
"""

from __future__ import annotations

from node.nostr import nip04, nip44

SCHEMES = ("nip44", "nip04")


def check_input(scheme: object, content: object, *, encrypting: bool) -> str:
    """``content`` once the checks that need no key pass, so bad input fails before any ECDH round."""
    if scheme not in SCHEMES:
        raise ValueError("scheme: expected nip44 or nip04")
    # NIP-44 cannot encrypt an empty message; NIP-04 can, and either may be asked to decrypt anything.
    if not isinstance(content, str) or (encrypting and scheme == "nip44" and not content):
        raise ValueError("content: must be a non-empty string")
    return content


def _shared_x(shared_point: bytes) -> bytes:
    if len(shared_point) != 33:
        raise ValueError("shared_point: expected a 33-byte compressed point")
    return shared_point[1:]


def encrypt(scheme: str, shared_point: bytes, content: str) -> str:
    """``content`` encrypted under ``scheme`` with the key of the 33-byte ECDH ``shared_point``."""
    check_input(scheme, content, encrypting=True)
    shared_x = _shared_x(shared_point)
    try:
        if scheme == "nip44":
            return nip44.encrypt_gen(nip44.conversation_key_from_shared_x(shared_x), content)
        return nip04.encrypt_gen(shared_x, content)
    except ValueError as exc:
        raise ValueError(f"content: {exc}") from None


def decrypt(scheme: str, shared_point: bytes, content: str) -> str:
    """The plaintext of the ``scheme`` payload ``content`` under the key of the ECDH ``shared_point``."""
    check_input(scheme, content, encrypting=False)
    shared_x = _shared_x(shared_point)
    try:
        if scheme == "nip44":
            return nip44.decrypt(nip44.conversation_key_from_shared_x(shared_x), content)
        return nip04.decrypt(shared_x, content)
    except ValueError as exc:
        raise ValueError(f"content: {exc}") from None
