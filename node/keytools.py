"""Key tools behind ``igloo-server keygen|recover`` and POST /api/recover.

Errors are ``ValueError`` with a message fit to show a user; none contains a secret.
"""

from __future__ import annotations

from typing import Any

from node.crypto import credentials, curve
from node.crypto import keygen as dealer
from node.nostr import nip19
from node.validate import is_hex

MAX_MEMBERS = 100


def parse_secret(text: str) -> bytes:
    """A 32-byte secret key from ``nsec1…`` or 64 hex characters."""
    if not isinstance(text, str):
        raise ValueError("secret key must be a string")
    value = text.strip()
    if value.lower().startswith("nsec1"):
        try:
            return nip19.nsec_decode(value)
        except ValueError:
            raise ValueError("secret key is not a valid nsec") from None
    if not is_hex(value.lower(), 32):
        raise ValueError("secret key must be an nsec1… string or 64 hex characters")
    seckey = bytes.fromhex(value)
    if not curve.is_valid_seckey(seckey):  # libsecp256k1's range check: the key never becomes an int
        raise ValueError("secret key is out of range for secp256k1")
    return seckey


def keygen(threshold: int, total: int, secret: str | None = None) -> dict[str, Any]:
    """A new k-of-n keyset: ``{group, shares, group_pubkey, npub}`` (group_pubkey is x-only hex)."""
    dealer.check_counts(threshold, total, MAX_MEMBERS)
    key = parse_secret(secret) if secret is not None else None
    group, shares = dealer.generate_dealer_pkg_gen(threshold, total, key)
    return {
        "group": credentials.encode_group(group),
        "shares": [credentials.encode_share(s) for s in shares],
        "group_pubkey": group.group_pubkey_xonly,
        "npub": nip19.npub_encode(group.group_pk[1:]),
    }


def recover(group: str, shares: list[str]) -> str:
    """The group's nsec from its ``bfgroup`` and at least threshold ``bfshare`` strings."""
    pkg = credentials.decode_group(group)
    if not isinstance(shares, list) or not all(isinstance(s, str) for s in shares):
        raise ValueError("shares must be a list of bfshare strings")
    parsed = []
    for n, text in enumerate(shares, start=1):
        try:
            parsed.append(credentials.decode_share(text))
        except ValueError as exc:
            raise ValueError(f"share {n}: {exc}") from None
    return nip19.nsec_encode(dealer.recover_secret(pkg, parsed))


def describe_credential(kind: str, credential: str) -> dict[str, int | None]:
    """What a ``bfgroup``/``bfshare`` string holds: ``{threshold, totalShares, idx}`` (None where n/a).

    ``kind`` is "group" or "share"; ``ValueError`` when the credential does not decode (never echoing it).
    """
    if kind == "group":
        group = credentials.decode_group(credential.strip())
        return {"threshold": group.threshold, "totalShares": len(group.commits), "idx": None}
    if kind == "share":
        share = credentials.decode_share(credential.strip())
        return {"threshold": None, "totalShares": None, "idx": share.idx}
    raise ValueError('type: must be "group" or "share"')


def inspect_keyset(group: str | None, share: str | None) -> dict[str, Any]:
    """What pasted credentials hold, to show before they are saved.

    ``{group: {valid, threshold, totalShares, groupPubkey, npub} | {valid: false, error}, share: {valid, idx,
    pubkey} | {...}, matches: bool | None}``; a part not given is None. Messages never contain the input.
    The share's secret stays here: only its index and public key leave.
    """
    result: dict[str, Any] = {"group": None, "share": None, "matches": None}
    pkg = parsed = None
    if group:
        try:
            pkg = credentials.decode_group(group.strip())
            result["group"] = {"valid": True, "threshold": pkg.threshold, "totalShares": len(pkg.commits),
                               "groupPubkey": pkg.group_pubkey_xonly,
                               "npub": nip19.npub_encode(pkg.group_pk[1:])}
        except ValueError as exc:
            result["group"] = {"valid": False, "error": str(exc)}
    if share:
        try:
            parsed = credentials.decode_share(share.strip())
            result["share"] = {"valid": True, "idx": parsed.idx, "pubkey": parsed.pubkey_xonly()}
        except ValueError:
            result["share"] = {"valid": False, "error": "not a valid share credential"}
    if pkg is not None and parsed is not None:
        try:
            credentials.check_share_in_group(pkg, parsed)
            result["matches"] = True
        except ValueError:
            result["matches"] = False
    return result
