"""The one SQLite database of an Igloo process: connection, WAL mode, schema migrations.

All access happens on the IOLoop thread (queries are short); bcrypt, the slow part, runs elsewhere.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

DB_FILE_NAME = "igloo.db"
BUSY_TIMEOUT_MS = 200  # how long a write waits for another process's lock before failing (503)

# The schema of every table, as ordered steps; PRAGMA user_version records how many have been applied.
# Add a step by appending to this list (never edit an applied step); no store creates tables of its own.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        id_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        client_ip TEXT
    );
    CREATE INDEX sessions_last_seen ON sessions(last_seen);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        frame TEXT NOT NULL
    );
    """,
    # Peer policies, the signing budget's ledger and the encrypted credentials. Before this step the
    # stores created these tables on first use, so a database from then has any of them already.
    """
    CREATE TABLE IF NOT EXISTS peer_policies (
        pubkey TEXT PRIMARY KEY,
        allow_send INTEGER NOT NULL,
        allow_receive INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS sign_budget (
        pubkey TEXT NOT NULL,
        spent_at REAL NOT NULL,
        count INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS node_credentials (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        relays TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # NIP-46 bunker (store/nip46.py): transport key (encrypted), relays, pairing secrets (hashed), sessions,
    # requests (never their params).
    """
    CREATE TABLE nip46_transport (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pubkey TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE nip46_settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        relays TEXT
    );
    CREATE TABLE nip46_secrets (
        hash TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        used_by TEXT
    );
    CREATE TABLE nip46_sessions (
        client_pubkey TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        user_pubkey TEXT NOT NULL,
        status TEXT NOT NULL,
        relays TEXT NOT NULL,
        permissions TEXT NOT NULL,
        requested TEXT NOT NULL,
        profile TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_active_at REAL
    );
    CREATE TABLE nip46_requests (
        id TEXT PRIMARY KEY,
        client_pubkey TEXT NOT NULL,
        request_id TEXT NOT NULL,
        method TEXT NOT NULL,
        status TEXT NOT NULL,
        preview TEXT NOT NULL,
        relay TEXT NOT NULL,
        error TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        decided_at REAL,
        completed_at REAL,
        UNIQUE (client_pubkey, request_id)
    );
    CREATE INDEX nip46_requests_status ON nip46_requests(status, created_at);
    CREATE INDEX nip46_requests_created ON nip46_requests(created_at);
    """,
    # Roles (every account made before roles existed was made as the administrator, so it stays one; new
    # accounts default to the least role), named API keys (store/apikeys.py: only a SHA-256 of each token),
    # and the keyset's display name (store/keyset.py).
    """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user'));
    UPDATE users SET role = 'admin';
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        prefix TEXT NOT NULL,
        key_hash BLOB NOT NULL UNIQUE,
        label TEXT,
        scope TEXT NOT NULL CHECK (scope IN ('full', 'read')),
        created_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_by_admin INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_used_at REAL,
        last_used_ip TEXT,
        revoked_at REAL,
        revoked_reason TEXT
    );
    CREATE TABLE keyset_name (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # The dashboard: signing activity counted per time bucket (store/activity.py, pruned after a week),
    # and the relay list set there or with /api/relays, which wins over RELAYS until cleared (store/relays).
    """
    CREATE TABLE activity (
        bucket INTEGER NOT NULL,
        kind TEXT NOT NULL,
        role TEXT NOT NULL,
        outcome TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket, kind, role, outcome)
    ) WITHOUT ROWID;
    CREATE TABLE node_relays (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        relays TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]


class Database:
    """A SQLite connection in WAL mode with migrations applied on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Igloo is the only writer; another process holding a lock must not freeze the IOLoop for long.
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        path.chmod(0o600)
        self._migrate()

    @classmethod
    def open_in(cls, data_dir: Path) -> Database:
        """Open (creating if needed) the database file under ``data_dir``."""
        return cls(data_dir / DB_FILE_NAME)

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for index in range(version, len(MIGRATIONS)):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_sql(MIGRATIONS[index]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {index + 1}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise

    @property
    def schema_version(self) -> int:
        """How many migrations have been applied."""
        row = self.query_one("PRAGMA user_version")
        return int(row[0]) if row is not None else 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (auto-committed)."""
        with self._lock:
            return self._conn.execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything the stores write inside the block commits together, or not at all (BEGIN IMMEDIATE)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def executemany_in_transaction(self, steps: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run several statements in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in steps:
                    self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def insert_many(self, sql: str, rows: Sequence[Sequence[Any]], then: str | None = None,
                    then_params: Sequence[Any] = ()) -> None:
        """Insert many rows in one transaction, optionally followed by one more statement."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
                if then is not None:
                    self._conn.execute(then, then_params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # SQLite has already rolled back after some errors (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK
        # would raise "no transaction is active" and hide the real error.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Return the first row of a query, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def query_all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Return every row of a query."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (migrations contain no semicolons inside literals)."""
    return [part.strip() for part in script.split(";") if part.strip()]
