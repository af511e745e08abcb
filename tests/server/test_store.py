"""store/: migrations, WAL, users (bcrypt), sessions (hashed ids, idle expiry), the persisted event ring."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sqlite3
import stat
from pathlib import Path

import bcrypt
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.policy import StoredPolicy
from store.credentials import CredentialStore
from store.db import MIGRATIONS, Database
from store.events import EventRing, StoredEvent
from store.policies import SqliteBudgetLedger, SqlitePolicyStore
from store.sessions import SessionStore, hash_session_id
from store.users import UserError, UserStore
from tests.clock import ManualClock


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.open_in(tmp_path)
    yield database
    database.close()


def test_migrations_wal_and_permissions(tmp_path: Path, db: Database) -> None:
    assert db.schema_version == len(MIGRATIONS)
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    assert stat.S_IMODE(os.stat(db.path).st_mode) == 0o600
    db.close()
    again = Database.open_in(tmp_path)  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_users_create_verify(db: Database) -> None:
    users = UserStore(db, rounds=4)

    async def run() -> None:
        user = await users.create("alice", "correct horse")
        assert (await users.verify("alice", "correct horse")) == user
        assert await users.verify("alice", "wrong password") is None
        assert await users.verify("nobody", "correct horse") is None
        with pytest.raises(UserError, match="72 bytes"):
            await users.verify("alice", "é" * 40)  # 80 bytes in UTF-8
        with pytest.raises(UserError, match="already taken"):
            await users.create("ALICE", "another password")
        with pytest.raises(UserError, match="already exists"):
            await users.create("bob", "another password", only_if_first=True)

    asyncio.run(run())
    row = db.query_one("SELECT password_hash FROM users")
    assert bytes(row[0]).startswith(b"$2")  # bcrypt, never the password
    assert users.count() == 1


@pytest.mark.parametrize(("name", "password"), [("bad name", "long enough"), ("ok", "short"), ("", "x" * 9)])
def test_user_validation(db: Database, name: str, password: str) -> None:
    with pytest.raises(UserError):
        UserStore(db, rounds=4).create_sync(name, password)


def test_sessions_hashed_sliding_and_expiring(db: Database) -> None:
    user = UserStore(db, rounds=4).create_sync("carol", "a long password")
    clock = ManualClock()
    sessions = SessionStore(db, timeout=60, clock=clock)
    sid = sessions.create(user.id, "127.0.0.1")
    assert len(sid) >= 43
    stored = [bytes(r[0]) for r in db.query_all("SELECT id_hash FROM sessions")]
    assert stored == [hashlib.sha256(sid.encode()).digest()]  # only the hash is stored
    found = sessions.lookup(sid)
    assert found is not None and found.username == "carol" and found.expires_at == clock.now + 60
    clock.advance(40)
    assert sessions.lookup(sid) is not None  # renews the idle timer
    clock.advance(40)
    found = sessions.lookup(sid)  # 80 s after creation, still alive: sliding
    assert found is not None and found.expires_at == clock.now + 60
    clock.advance(59.5)
    assert sessions.lookup(sid, touch=False) is not None  # a look without renewing
    clock.advance(0.5)
    assert sessions.lookup(sid) is None  # 60 s idle: gone, and deleted
    assert db.query_one("SELECT COUNT(*) FROM sessions")[0] == 0
    assert sessions.lookup("not-a-session") is None


def test_session_renewals_are_written_at_most_every_touch_interval(db: Database) -> None:
    user = UserStore(db, rounds=4).create_sync("erin", "a long password")
    clock = ManualClock()
    sessions = SessionStore(db, timeout=3600, clock=clock)
    sid = sessions.create(user.id, None)
    created = clock.now

    def last_seen() -> float:
        return float(db.query_one("SELECT last_seen FROM sessions")[0])

    clock.advance(29)
    assert sessions.lookup(sid) is not None and last_seen() == created  # within 30 s: no write
    clock.advance(1)
    assert sessions.lookup(sid) is not None and last_seen() == clock.now


def test_session_delete_purge_and_live_hashes(db: Database) -> None:
    user = UserStore(db, rounds=4).create_sync("dave", "a long password")
    clock = ManualClock()
    sessions = SessionStore(db, timeout=60, clock=clock)
    a, b = sessions.create(user.id, None), sessions.create(user.id, None)
    ha = sessions.delete(a)
    hb = hashlib.sha256(b.encode()).digest()
    assert sessions.lookup(a) is None and sessions.lookup(b) is not None
    assert sessions.live_hashes({ha, hb}) == {hb}
    clock.advance(30)
    c = sessions.create(user.id, None)
    clock.advance(30)  # b is 60 s idle, c 30 s
    assert sessions.live_hashes({hb, hash_session_id(c)}) == {hash_session_id(c)}
    assert sessions.purge_expired() == 1
    assert [bytes(r[0]) for r in db.query_all("SELECT id_hash FROM sessions")] == [hash_session_id(c)]


# The schema as Igloo wrote it before every table moved into MIGRATIONS (copied from store/db.py,
# store/policies.py and store/credentials.py at commit f8b508f): migration 1 with user_version 1, then
# each store created its table with CREATE TABLE IF NOT EXISTS when it was first constructed.
OLD_MIGRATION_1 = """
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
"""
OLD_STORE_TABLES = {
    "peer_policies": """
CREATE TABLE IF NOT EXISTS peer_policies (
    pubkey TEXT PRIMARY KEY,
    allow_send INTEGER NOT NULL,
    allow_receive INTEGER NOT NULL,
    updated_at REAL NOT NULL
)
""",
    "sign_budget": """
CREATE TABLE IF NOT EXISTS sign_budget (
    pubkey TEXT NOT NULL,
    spent_at REAL NOT NULL,
    count INTEGER NOT NULL
)
""",
    "node_credentials": """
CREATE TABLE IF NOT EXISTS node_credentials (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    relays TEXT NOT NULL,
    updated_at REAL NOT NULL
)
""",
}
OLD_CREDENTIALS_AAD = b"igloo-node-credentials-v1"  # the at-rest format of store/credentials.py


def make_old_database(path: Path, tables: list[str], key: bytes, session_id: str) -> None:
    """A database file as the code before this change left it, with a row in every table it has."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in OLD_MIGRATION_1.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                 ("olduser", bcrypt.hashpw(b"old password", bcrypt.gensalt(4)), 1.0))
    conn.execute("INSERT INTO sessions VALUES (?, 1, ?, ?, '127.0.0.1')",
                 (hash_session_id(session_id), 100.0, 100.0))
    conn.execute("INSERT INTO events (seq, frame) VALUES (7, '{\"seq\":7}')")
    for name in tables:
        conn.execute(OLD_STORE_TABLES[name])
    if "peer_policies" in tables:
        conn.execute("INSERT INTO peer_policies VALUES (?, 0, 1, 5.0)", ("a" * 64,))
    if "sign_budget" in tables:
        conn.execute("INSERT INTO sign_budget VALUES (?, 50.0, 3)", ("b" * 64,))
    if "node_credentials" in tables:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(nonce, json.dumps({"group": "G", "share": "S"}).encode(),
                                     OLD_CREDENTIALS_AAD)
        conn.execute("INSERT INTO node_credentials VALUES (1, ?, ?, ?, 9.0)",
                     (nonce, sealed, json.dumps(["ws://127.0.0.1:1/"])))
    conn.close()


def table_columns(db: Database) -> dict[str, list[tuple[object, ...]]]:
    names = [r[0] for r in db.query_all("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {name: [tuple(row) for row in db.query_all(f"PRAGMA table_info({name})")] for name in names}


@pytest.mark.parametrize("tables", [
    ["peer_policies", "sign_budget", "node_credentials"],  # a server with a credentials key
    ["peer_policies", "sign_budget"],  # no credentials key: the credential store was never built
    [],  # only `igloo-server adduser` ever ran
], ids=["all", "no-credentials-key", "adduser-only"])
def test_database_from_before_the_one_migration_list_opens_with_its_data(
    tmp_path: Path, tables: list[str]
) -> None:
    key, session_id = secrets.token_bytes(32), "an-old-session-id"
    old_dir, fresh_dir = tmp_path / "old", tmp_path / "fresh"
    old_dir.mkdir()
    make_old_database(old_dir / "igloo.db", tables, key, session_id)

    db = Database.open_in(old_dir)
    fresh = Database.open_in(fresh_dir)
    try:
        assert db.schema_version == len(MIGRATIONS)
        assert table_columns(db) == table_columns(fresh)  # the same tables and columns as a new install
        assert asyncio.run(UserStore(db, rounds=4).verify("olduser", "old password")) is not None
        assert SessionStore(db, timeout=60, clock=ManualClock(130.0)).lookup(session_id) is not None
        assert [e.seq for e in EventRing(db, size=10).recent(10)] == [7]
        policies, ledger = SqlitePolicyStore(db), SqliteBudgetLedger(db, keep=3600)
        credentials = CredentialStore(db, key)
        if tables:
            assert policies.load_policies() == [StoredPolicy("a" * 64, False, True, 5.0)]
            assert ledger.load_spent(since=0) == [("b" * 64, 50.0, 3)]
        if "node_credentials" in tables:
            stored = credentials.load()
            assert stored is not None and (stored.group_cred, stored.share_cred) == ("G", "S")
            assert stored.relays == ("ws://127.0.0.1:1/",)
        else:
            assert credentials.load() is None
        # Every table takes writes.
        policies.save_policy(StoredPolicy("c" * 64, True, False, 6.0))
        ledger.record_spent("c" * 64, 60.0, 1)
        credentials.save("G2", "S2", ["ws://127.0.0.1:2/"])
    finally:
        db.close()
        fresh.close()
    again = Database.open_in(old_dir)  # reopening applies nothing twice and keeps what was written
    try:
        assert again.schema_version == len(MIGRATIONS)
        assert StoredPolicy("c" * 64, True, False, 6.0) in SqlitePolicyStore(again).load_policies()
        reloaded = CredentialStore(again, key).load()
        assert reloaded is not None and reloaded.share_cred == "S2"
    finally:
        again.close()


def test_no_store_creates_tables_of_its_own() -> None:
    store_dir = Path(__file__).resolve().parents[2] / "store"
    for module in sorted(store_dir.glob("*.py")):
        if module.name != "db.py":
            assert "CREATE TABLE" not in module.read_text().upper(), (
                f"{module.name}: add a step to MIGRATIONS in store/db.py instead")


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq, f'{{"seq":{seq}}}'.encode())


def test_ring_bounded_persisted_and_replay(tmp_path: Path, db: Database) -> None:
    ring = EventRing(db, size=5)
    for _ in range(8):
        ring.append(_event(ring.next_seq()))
    assert [e.seq for e in ring.recent(10)] == [4, 5, 6, 7, 8]
    assert ring.pending == 5 and ring.flush() == 5 and ring.pending == 0
    replay = ring.since(6)
    assert [e.seq for e in replay.events] == [7, 8] and replay.gap is None
    replay = ring.since(1)
    assert replay.gap == (2, 3) and [e.seq for e in replay.events] == [4, 5, 6, 7, 8]
    assert ring.since(8).events == [] and ring.since(50).reset
    db.close()
    reopened = Database.open_in(tmp_path)
    again = EventRing(reopened, size=5)
    assert again.last_seq == 8 and [e.seq for e in again.recent(3)] == [6, 7, 8]
    assert again.next_seq() == 9
    assert reopened.query_one("SELECT COUNT(*) FROM events")[0] == 5  # trimmed to the ring size
    reopened.close()
