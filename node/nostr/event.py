"""NIP-01 events: the canonical id, signing and verification.

Verification always recomputes the id from the fields, compares it with the claimed id,
and only then checks the BIP-340 signature over it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from node.crypto import curve
from node.validate import is_hex


@dataclass(frozen=True, slots=True)
class Event:
    """A signed Nostr event with its fields checked for shape (not yet for signature)."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: list[list[str]]
    content: str
    sig: str

    @classmethod
    def from_json(cls, obj: Any) -> Event:
        """Check the shape of a decoded JSON event; ``ValueError`` names the bad field."""
        if not isinstance(obj, dict):
            raise ValueError("event must be an object")
        for name, nbytes in (("id", 32), ("pubkey", 32), ("sig", 64)):
            if not is_hex(obj.get(name), nbytes):
                raise ValueError(f"event.{name} must be {2 * nbytes} lowercase hex characters")
        for name in ("created_at", "kind"):
            value = obj.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
                raise ValueError(f"event.{name} must be a non-negative integer")
        tags = obj.get("tags")
        if not isinstance(tags, list) or not all(
            isinstance(tag, list) and all(isinstance(item, str) for item in tag) for tag in tags
        ):
            raise ValueError("event.tags must be a list of lists of strings")
        if not isinstance(obj.get("content"), str):
            raise ValueError("event.content must be a string")
        return cls(
            id=obj["id"],
            pubkey=obj["pubkey"],
            created_at=obj["created_at"],
            kind=obj["kind"],
            tags=tags,
            content=obj["content"],
            sig=obj["sig"],
        )

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict in NIP-01 field order."""
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": self.tags,
            "content": self.content,
            "sig": self.sig,
        }


def serialize_for_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    """The exact NIP-01 serialization whose SHA-256 is the event id."""
    text = json.dumps([0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def compute_event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    """The NIP-01 event id (hex) of these fields."""
    return hashlib.sha256(serialize_for_id(pubkey, created_at, kind, tags, content)).hexdigest()


def template_fields(template: object) -> tuple[int, int, list[list[str]], str]:
    """``(kind, created_at, tags, content)`` of an event template ``{kind, created_at, tags?, content?}``.

    ``kind`` and ``created_at`` are required (never defaulted); ``created_at`` stays below 2^53 so every
    client reads it exactly; ``tags`` defaults to ``[]`` and ``content`` to ``""``. ``ValueError`` names the
    bad field (``event.kind: ...``).
    """
    if not isinstance(template, dict):
        raise ValueError("event: expected an object")
    kind, created_at = template.get("kind"), template.get("created_at")
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 65535:
        raise ValueError("event.kind: required, an integer 0..65535")
    if not isinstance(created_at, int) or isinstance(created_at, bool) or not 0 < created_at < 2**53:
        raise ValueError("event.created_at: required, a positive integer timestamp")
    tags = template.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(tag, list) and all(isinstance(item, str) for item in tag) for tag in tags
    ):
        raise ValueError("event.tags: must be a list of lists of strings")
    content = template.get("content", "")
    if not isinstance(content, str):
        raise ValueError("event.content: must be a string")
    return kind, created_at, tags, content


def template_event_id(template: object, pubkey: str) -> str:
    """The NIP-01 id of the template ``{kind, created_at, tags?, content?, pubkey?}`` signed by ``pubkey``.

    The fields are checked by :func:`template_fields`; a ``pubkey`` in the template must be the signer's.
    """
    kind, created_at, tags, content = template_fields(template)
    assert isinstance(template, dict)  # template_fields refuses anything else
    claimed = template.get("pubkey")
    if claimed is not None and (not isinstance(claimed, str) or claimed.lower() != pubkey):
        raise ValueError("event.pubkey: must be the signing key's pubkey (or omitted)")
    return compute_event_id(pubkey, created_at, kind, tags, content)


def sign_event(
    seckey: bytes, kind: int, tags: list[list[str]], content: str, created_at: int, aux: bytes
) -> Event:
    """Build and BIP-340-sign an event with the given auxiliary randomness."""
    pubkey = curve.pubkey_of(seckey)[1:].hex()
    event_id = compute_event_id(pubkey, created_at, kind, tags, content)
    sig = curve.schnorr_sign(seckey, bytes.fromhex(event_id), aux)
    return Event(event_id, pubkey, created_at, kind, tags, content, sig.hex())


def sign_event_gen(seckey: bytes, kind: int, tags: list[list[str]], content: str, created_at: int) -> Event:
    """``sign_event`` with fresh auxiliary randomness."""
    return sign_event(seckey, kind, tags, content, created_at, secrets.token_bytes(32))


def verify_event(event: Event) -> None:
    """Raise ``ValueError`` unless the id matches the fields and the signature is valid."""
    expected = compute_event_id(event.pubkey, event.created_at, event.kind, event.tags, event.content)
    if expected != event.id:
        raise ValueError("event id does not match its contents")
    pubkey, event_id, sig = bytes.fromhex(event.pubkey), bytes.fromhex(event.id), bytes.fromhex(event.sig)
    if not curve.schnorr_verify(pubkey, event_id, sig):
        raise ValueError("event signature is invalid")
