"""store/: migrations, WAL, users (bcrypt), sessions (hashed ids, idle expiry), the persisted event ring."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from store.db import MIGRATIONS, Database
from store.events import EventRing, StoredEvent
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
