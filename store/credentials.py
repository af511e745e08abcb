"""Node credentials (group and share) encrypted at rest with AES-256-GCM.

The key comes from ``Settings.credentials_key`` (CREDENTIALS_KEY, a systemd credential, or a 0600 key
file under DATA_DIR). The database file alone never reveals the share. Relays are not secret and are
stored in clear so the status page can show them without decrypting anything.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.ratelimit import Clock
from store.db import Database

_AAD = b"igloo-node-credentials-v1"


class CredentialsError(Exception):
    """Stored credentials cannot be decrypted (wrong key or tampered row)."""


@dataclass(frozen=True)
class StoredCredentials:
    """Decrypted credentials; ``repr`` never shows them."""

    group_cred: str = field(repr=False)
    share_cred: str = field(repr=False)
    relays: tuple[str, ...]
    updated_at: float


class CredentialStore:
    """The single stored credential set, encrypted with AES-256-GCM under a 32-byte key."""

    def __init__(self, db: Database, key: bytes, clock: Clock = time.time) -> None:
        if len(key) != 32:
            raise ValueError("credentials key must be 32 bytes")
        self._db = db
        self._clock = clock  # wall-clock seconds for ``updated_at``
        self._aead = AESGCM(key)

    def exists(self) -> bool:
        """True when a credential set is stored (no decryption needed)."""
        return self._db.query_one("SELECT 1 FROM node_credentials WHERE id = 1") is not None

    def relays(self) -> tuple[str, ...]:
        """The stored relay list (empty when nothing is stored)."""
        row = self._db.query_one("SELECT relays FROM node_credentials WHERE id = 1")
        return tuple(json.loads(row["relays"])) if row else ()

    def save(self, group_cred: str, share_cred: str, relays: tuple[str, ...] | list[str]) -> None:
        """Encrypt and store (replacing any previous set)."""
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps({"group": group_cred, "share": share_cred}).encode()
        ciphertext = self._aead.encrypt(nonce, plaintext, _AAD)
        self._db.execute(
            "INSERT OR REPLACE INTO node_credentials (id, nonce, ciphertext, relays, updated_at)"
            " VALUES (1, ?, ?, ?, ?)",
            (nonce, ciphertext, json.dumps(list(relays)), self._clock()),
        )

    def load(self) -> StoredCredentials | None:
        """Decrypt the stored set; None when nothing is stored. Raises CredentialsError on a bad key."""
        row = self._db.query_one(
            "SELECT nonce, ciphertext, relays, updated_at FROM node_credentials WHERE id = 1"
        )
        if row is None:
            return None
        try:
            plaintext = self._aead.decrypt(bytes(row["nonce"]), bytes(row["ciphertext"]), _AAD)
        except InvalidTag as exc:
            raise CredentialsError("stored credentials cannot be decrypted with the configured key") from exc
        obj = json.loads(plaintext)
        relays = tuple(json.loads(row["relays"]))
        return StoredCredentials(obj["group"], obj["share"], relays, row["updated_at"])

    def clear(self) -> None:
        """Forget the stored credentials."""
        self._db.execute("DELETE FROM node_credentials")
