"""Server-side login sessions: a random 32-byte id goes to the client; only its SHA-256 is stored."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from node.ratelimit import Clock
from store.db import Database


def hash_session_id(session_id: str) -> bytes:
    """The database key of a session id."""
    return hashlib.sha256(session_id.encode("utf-8")).digest()


@dataclass(frozen=True)
class Session:
    """A live session (``id_hash`` identifies it without revealing the id)."""

    id_hash: bytes
    user_id: int
    username: str
    last_seen: float
    expires_at: float
    role: str = "user"  # the account's role, read with the session (a changed role applies at once)


class SessionStore:
    """Create, look up (sliding idle timeout), and end sessions.

    ``clock`` gives wall-clock seconds (the times are stored, so they must survive a restart).
    """

    def __init__(self, db: Database, timeout: int, clock: Clock = time.time) -> None:
        self._db = db
        self.timeout = timeout
        self.clock = clock
        # Sliding renewals are written at most this often per session, not on every request.
        self._touch_every = min(30.0, timeout / 4)

    def create(self, user_id: int, client_ip: str | None) -> str:
        """Start a session for ``user_id``; return the secret id to hand to the client."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        self._db.execute(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen, client_ip) "
            "VALUES (?, ?, ?, ?, ?)",
            (hash_session_id(session_id), user_id, now, now, client_ip),
        )
        return session_id

    def lookup(self, session_id: str, touch: bool = True) -> Session | None:
        """Return the live session for this id (renewing its idle timer), or None when unknown/expired."""
        if not session_id or len(session_id) > 128:
            return None
        return self.lookup_hash(hash_session_id(session_id), touch)

    def lookup_hash(self, id_hash: bytes, touch: bool = False) -> Session | None:
        """Like ``lookup`` but by stored hash (used to re-check open event sockets)."""
        row = self._db.query_one(
            "SELECT s.user_id, s.last_seen, u.username, u.role FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
            (id_hash,),
        )
        if row is None:
            return None
        now = self.clock()
        last_seen = float(row["last_seen"])
        # The expiry delete and the sliding renewal are best effort: a locked or full database must not
        # turn every authenticated read into an error.
        if now - last_seen >= self.timeout:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
            return None
        if touch and now - last_seen >= self._touch_every:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash))
                last_seen = now
        user_id, username = int(row["user_id"]), str(row["username"])
        return Session(id_hash, user_id, username, last_seen, last_seen + self.timeout, str(row["role"]))

    def delete(self, session_id: str) -> bytes:
        """End a session; return its hash (so open sockets bound to it can be closed)."""
        id_hash = hash_session_id(session_id)
        self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
        return id_hash

    def purge_expired(self) -> int:
        """Delete every expired session; return how many."""
        cursor = self._db.execute("DELETE FROM sessions WHERE last_seen <= ?", (self.clock() - self.timeout,))
        return cursor.rowcount

    def live_hashes(self, id_hashes: set[bytes]) -> set[bytes]:
        """Which of ``id_hashes`` still name a live session."""
        if not id_hashes:
            return set()
        cutoff = self.clock() - self.timeout
        alive: set[bytes] = set()
        items = list(id_hashes)
        for start in range(0, len(items), 500):
            chunk = items[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.query_all(
                f"SELECT id_hash FROM sessions WHERE last_seen > ? AND id_hash IN ({marks})",  # noqa: S608
                (cutoff, *chunk),
            )
            alive.update(bytes(r["id_hash"]) for r in rows)
        return alive

    def user_session_hashes(self, user_id: int) -> list[bytes]:
        """The hashes of every session of ``user_id``."""
        rows = self._db.query_all("SELECT id_hash FROM sessions WHERE user_id = ?", (user_id,))
        return [bytes(r["id_hash"]) for r in rows]

    def end_user_sessions(self, user_id: int, keep: bytes | None = None) -> list[bytes]:
        """Delete every session of ``user_id`` except ``keep``; return the hashes deleted (so open event
        sockets bound to them can be closed)."""
        ended = [h for h in self.user_session_hashes(user_id) if h != keep]
        for id_hash in ended:
            self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
        return ended

    def delete_hash(self, id_hash: bytes) -> None:
        """End a session given its stored hash."""
        self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
