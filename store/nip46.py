"""The NIP-46 bunker's state in SQLite (``node.nip46.records.Nip46Storage``).

The transport secret key is encrypted at rest with the credentials key (AES-256-GCM, as the node credentials).
Pairing secrets are kept only as SHA-256 hashes. Requests are kept without their params (a decrypt request's
ciphertext or an encrypt request's plaintext never touch the disk), and finished ones are pruned after the
retention period. Sessions survive restarts, so a paired client keeps signing after ``systemctl restart``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from node.nip46.permissions import Permissions
from node.nip46.records import (
    FINAL_STATES,
    Nip46Storage,
    RequestRecord,
    SecretCheck,
    Session,
)
from store.credentials import open_secret, seal_secret
from store.db import Database

_TRANSPORT_AAD = b"igloo-nip46-transport-key-v1"
MAX_LISTED = 500


class Nip46Store(Nip46Storage):
    """Bunker storage on the Igloo database; ``key`` is the 32-byte credentials key."""

    def __init__(self, db: Database, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("credentials key must be 32 bytes")
        self._db = db
        self._key = key

    # ----- transport key ------------------------------------------------------------------------------

    def load_transport_key(self) -> bytes | None:
        """The transport secret key, decrypted; None before the first use."""
        row = self._db.query_one("SELECT nonce, ciphertext FROM nip46_transport WHERE id = 1")
        if row is None:
            return None
        return open_secret(self._key, bytes(row["nonce"]), bytes(row["ciphertext"]), _TRANSPORT_AAD)

    def save_transport_key(self, seckey: bytes) -> None:
        """Encrypt and store the transport secret key (replacing the old one); its pubkey in clear."""
        from node.crypto import curve

        nonce, ciphertext = seal_secret(self._key, seckey, _TRANSPORT_AAD)
        pubkey = curve.pubkey_of(seckey)[1:].hex()
        self._db.execute(
            "INSERT OR REPLACE INTO nip46_transport (id, pubkey, nonce, ciphertext, created_at)"
            " VALUES (1, ?, ?, ?, ?)",
            (pubkey, nonce, ciphertext, time.time()),
        )

    def transport_pubkey(self) -> str | None:
        """The transport pubkey (no decryption needed)."""
        row = self._db.query_one("SELECT pubkey FROM nip46_transport WHERE id = 1")
        return str(row["pubkey"]) if row else None

    # ----- relays -------------------------------------------------------------------------------------

    def load_relays(self) -> list[str] | None:
        """Relays set through the API, or None (use the default)."""
        row = self._db.query_one("SELECT relays FROM nip46_settings WHERE id = 1")
        if row is None or row["relays"] is None:
            return None
        relays = json.loads(row["relays"])
        return [str(r) for r in relays] if isinstance(relays, list) and relays else None

    def save_relays(self, relays: list[str] | None) -> None:
        """Store the relay list (None = back to the default)."""
        value = json.dumps(list(relays)) if relays else None
        self._db.execute("INSERT OR REPLACE INTO nip46_settings (id, relays) VALUES (1, ?)", (value,))

    # ----- pairing secrets ----------------------------------------------------------------------------

    def add_secret(self, secret_hash: str, created_at: float, expires_at: float) -> None:
        """Store a new secret's hash; every older unused secret stops working (only the newest link pairs)."""
        self._db.executemany_in_transaction([
            ("DELETE FROM nip46_secrets WHERE used_at IS NULL", ()),
            ("INSERT INTO nip46_secrets (hash, created_at, expires_at) VALUES (?, ?, ?)",
             (secret_hash, created_at, expires_at)),
        ])

    def use_secret(self, secret_hash: str, now: float, client_pubkey: str) -> str:
        """Spend a secret once: ``ok``, or why not (``used``, ``expired``, ``unknown``)."""
        cursor = self._db.execute(
            "UPDATE nip46_secrets SET used_at = ?, used_by = ? WHERE hash = ? AND used_at IS NULL"
            " AND expires_at > ?",
            (now, client_pubkey, secret_hash, now),
        )
        if cursor.rowcount == 1:
            return SecretCheck.OK
        row = self._db.query_one("SELECT used_at FROM nip46_secrets WHERE hash = ?", (secret_hash,))
        if row is None:
            return SecretCheck.UNKNOWN
        return SecretCheck.USED if row["used_at"] is not None else SecretCheck.EXPIRED

    def purge_secrets(self, now: float) -> int:
        """Forget unused secrets that expired before ``now`` (used ones are kept so a reuse says "used")."""
        cursor = self._db.execute(
            "DELETE FROM nip46_secrets WHERE used_at IS NULL AND expires_at <= ?", (now,))
        return int(cursor.rowcount)

    # ----- sessions -----------------------------------------------------------------------------------

    def load_sessions(self) -> list[Session]:
        """Every stored session."""
        return [_session(row) for row in self._db.query_all("SELECT * FROM nip46_sessions")]

    def save_session(self, session: Session) -> None:
        """Insert or replace one session."""
        self._db.execute(
            "INSERT OR REPLACE INTO nip46_sessions (client_pubkey, origin, user_pubkey, status, relays,"
            " permissions, requested, profile, secret_hash, created_at, updated_at, last_active_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session.client_pubkey, session.origin, session.user_pubkey, session.status,
             json.dumps(session.relays), json.dumps(session.permissions.to_stored()),
             json.dumps(session.requested), json.dumps(session.profile), session.secret_hash,
             session.created_at, session.updated_at, session.last_active_at),
        )

    def delete_session(self, client_pubkey: str) -> bool:
        """Remove one session; False when there was none."""
        cursor = self._db.execute("DELETE FROM nip46_sessions WHERE client_pubkey = ?", (client_pubkey,))
        return cursor.rowcount > 0

    def delete_sessions(self) -> int:
        """Remove every session."""
        return int(self._db.execute("DELETE FROM nip46_sessions").rowcount)

    # ----- requests -----------------------------------------------------------------------------------

    def save_request(self, record: RequestRecord) -> None:
        """Insert or update one request (its params are never written)."""
        self._db.execute(
            "INSERT INTO nip46_requests (id, client_pubkey, request_id, method, status, preview, relay,"
            " error, created_at, expires_at, decided_at, completed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET status = excluded.status, error = excluded.error,"
            " decided_at = excluded.decided_at, completed_at = excluded.completed_at",
            (record.id, record.client_pubkey, record.request_id, record.method, record.status,
             json.dumps(record.preview), record.relay, record.error, record.created_at, record.expires_at,
             record.decided_at, record.completed_at),
        )

    def load_requests(self, statuses: list[str] | None, limit: int) -> list[RequestRecord]:
        """Requests, newest first, optionally only in ``statuses``."""
        limit = max(1, min(int(limit), 10_000))
        if statuses:
            marks = ",".join("?" for _ in statuses)
            rows = self._db.query_all(
                f"SELECT * FROM nip46_requests WHERE status IN ({marks})"  # noqa: S608 - placeholders only
                " ORDER BY created_at DESC, rowid DESC LIMIT ?", (*statuses, limit))
        else:
            rows = self._db.query_all(
                "SELECT * FROM nip46_requests ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [_request(row) for row in rows]

    def get_request(self, request_id: str) -> RequestRecord | None:
        """One request by Igloo's id."""
        row = self._db.query_one("SELECT * FROM nip46_requests WHERE id = ?", (request_id,))
        return _request(row) if row else None

    def seen_request(self, client_pubkey: str, client_request_id: str) -> bool:
        """True when this client already sent a request with this id (a replay, even across a restart)."""
        row = self._db.query_one(
            "SELECT 1 FROM nip46_requests WHERE client_pubkey = ? AND request_id = ?",
            (client_pubkey, client_request_id))
        return row is not None

    def delete_request(self, request_id: str) -> bool:
        """Remove one finished request."""
        finals = tuple(FINAL_STATES)
        marks = ",".join("?" for _ in finals)
        cursor = self._db.execute(
            f"DELETE FROM nip46_requests WHERE id = ? AND status IN ({marks})",  # noqa: S608 - placeholders only
            (request_id, *finals))
        return cursor.rowcount > 0

    def prune_requests(self, before: float) -> int:
        """Delete finished requests created before ``before``; how many."""
        finals = tuple(FINAL_STATES)
        marks = ",".join("?" for _ in finals)
        try:
            cursor = self._db.execute(
                f"DELETE FROM nip46_requests WHERE created_at < ? AND status IN ({marks})",  # noqa: S608
                (before, *finals))
        except sqlite3.Error:
            return 0
        return int(cursor.rowcount)


def _loads(text: Any, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


def _session(row: sqlite3.Row) -> Session:
    return Session(
        client_pubkey=row["client_pubkey"],
        origin=row["origin"],
        user_pubkey=row["user_pubkey"],
        status=row["status"],
        relays=[str(u) for u in _loads(row["relays"], [])],
        permissions=Permissions.from_stored(_loads(row["permissions"], {})),
        requested=[str(p) for p in _loads(row["requested"], [])],
        profile={str(k): str(v) for k, v in _loads(row["profile"], {}).items()},
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_active_at=row["last_active_at"],
    )


def _request(row: sqlite3.Row) -> RequestRecord:
    return RequestRecord(
        id=row["id"],
        client_pubkey=row["client_pubkey"],
        request_id=row["request_id"],
        method=row["method"],
        status=row["status"],
        preview=_loads(row["preview"], {}),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        relay=row["relay"],
        error=row["error"],
        decided_at=row["decided_at"],
        completed_at=row["completed_at"],
    )
