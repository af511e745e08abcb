"""Named API keys: each token is shown once at creation; only its SHA-256 is stored, next to a short prefix
that names it in listings. A key is ``full`` (what an account with the ``user`` role may do: read and sign)
or ``read`` (status, events and peers only). Revoking takes effect on the next request: every request looks
the key up again.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from node.ratelimit import Clock
from store.db import Database

TOKEN_BYTES = 32  # 64 hex characters, as Igloo Server's keys
PREFIX_LENGTH = 12
MAX_LABEL = 128
MAX_REASON = 256
FULL = "full"
READ = "read"
SCOPES = (FULL, READ)
# A key's last use is written at most this often (seconds) unless it comes from another address, so a busy
# program does not turn every request into a database write.
LAST_USED_EVERY = 60.0

_COLUMNS = ("id, prefix, label, scope, created_by_user_id, created_by_admin, created_at, updated_at, "
            "last_used_at, last_used_ip, revoked_at, revoked_reason")


def hash_token(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One key's metadata (never the token)."""

    id: int
    prefix: str
    label: str | None
    scope: str
    created_by_user_id: int | None
    created_by_admin: bool
    created_at: float
    updated_at: float
    last_used_at: float | None
    last_used_ip: str | None
    revoked_at: float | None
    revoked_reason: str | None

    @property
    def active(self) -> bool:
        """True until revoked."""
        return self.revoked_at is None


def _key(row: sqlite3.Row) -> ApiKey:
    def opt_float(name: str) -> float | None:
        return None if row[name] is None else float(row[name])

    return ApiKey(
        id=int(row["id"]),
        prefix=str(row["prefix"]),
        label=row["label"],
        scope=str(row["scope"]),
        created_by_user_id=None if row["created_by_user_id"] is None else int(row["created_by_user_id"]),
        created_by_admin=bool(row["created_by_admin"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        last_used_at=opt_float("last_used_at"),
        last_used_ip=row["last_used_ip"],
        revoked_at=opt_float("revoked_at"),
        revoked_reason=row["revoked_reason"],
    )


def check_label(label: object) -> str | None:
    """A label: a string of at most 128 characters after trimming (empty = none); ValueError otherwise."""
    if label is None:
        return None
    if not isinstance(label, str):
        raise ValueError("label: must be a string")
    trimmed = label.strip()
    if len(trimmed) > MAX_LABEL:
        raise ValueError(f"label: at most {MAX_LABEL} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in trimmed):
        raise ValueError("label: control characters are not allowed")
    return trimmed or None


def check_scope(scope: object) -> str:
    """``full`` or ``read``; ValueError otherwise."""
    if scope not in SCOPES:
        raise ValueError('scope: must be "full" or "read"')
    return str(scope)


class ApiKeyStore:
    """Create, verify, list and revoke API keys (wall-clock ``clock`` for the stored times)."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    def create(self, label: str | None = None, scope: str = FULL, created_by_user_id: int | None = None,
               created_by_admin: bool = True) -> tuple[ApiKey, str]:
        """A new key and its token (the only time the token exists outside the caller's hands)."""
        label = check_label(label)
        scope = check_scope(scope)
        token = secrets.token_hex(TOKEN_BYTES)
        now = self._clock()
        cursor = self._db.execute(
            "INSERT INTO api_keys (prefix, key_hash, label, scope, created_by_user_id, created_by_admin, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (token[:PREFIX_LENGTH], hash_token(token), label, scope, created_by_user_id,
             int(created_by_admin), now, now),
        )
        key = self.get(int(cursor.lastrowid or 0))
        assert key is not None  # just inserted
        return key, token

    def get(self, key_id: int) -> ApiKey | None:
        """One key by id."""
        row = self._db.query_one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))  # noqa: S608
        return _key(row) if row is not None else None

    def list_keys(self) -> list[ApiKey]:
        """Every key: active ones first, newest first."""
        rows = self._db.query_all(
            f"SELECT {_COLUMNS} FROM api_keys ORDER BY revoked_at IS NULL DESC, created_at DESC, id DESC"  # noqa: S608
        )
        return [_key(row) for row in rows]

    def verify(self, token: str, client_ip: str | None = None) -> ApiKey | None:
        """The active key whose token this is (recording its use), or None.

        The lookup is by the token's SHA-256: an index on a hash tells a timing observer nothing about the
        token itself.
        """
        if not token or len(token) > 256:
            return None
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",  # noqa: S608
            (hash_token(token),),
        )
        if row is None:
            return None
        key = _key(row)
        now = self._clock()
        stale = key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY
        if stale or key.last_used_ip != client_ip:
            try:
                self._db.execute("UPDATE api_keys SET last_used_at = ?, last_used_ip = ? WHERE id = ?",
                                 (now, client_ip, key.id))
            except sqlite3.OperationalError:
                pass  # a locked or full database must not refuse a valid key; the use is noted next time
        return key

    def revoke(self, key_id: int, reason: str | None = None) -> str:
        """Revoke a key: "revoked", "not_found" or "already_revoked"."""
        if reason is not None:
            reason = reason.strip()[:MAX_REASON] or None
        now = self._clock()
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at = ?, revoked_reason = ?, updated_at = ? "
            "WHERE id = ? AND revoked_at IS NULL",
            (now, reason, now, key_id),
        )
        if cursor.rowcount == 1:
            return "revoked"
        return "not_found" if self.get(key_id) is None else "already_revoked"
