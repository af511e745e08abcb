"""The admin API (Igloo Server's paths and shapes) against a real app on a loopback port: API keys created,
used, listed and revoked; accounts listed, added and deleted; your own password changed; roles migrated from
an older database; ``igloo-server adduser --role``.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from handlers.events import COMMAND_ACCESS
from handlers.roles import READ
from store.db import MIGRATIONS, Database
from store.users import UserStore
from tests.server.callers import Callers, call, json_of, make_callers
from tests.server.conftest import PASSWORD, Igloo, read_frame, read_until_closed
from tests.server.test_cli import run_cli, server_env

pytestmark = pytest.mark.timeout(60)


async def create_key(igloo: Igloo, callers: Callers, **body: Any) -> dict[str, Any]:
    resp = await call(igloo, "POST", "/api/admin/api-keys", callers.admin.header(), body)
    assert resp.code == 201, resp.body
    key: dict[str, Any] = json_of(resp)["apiKey"]
    return key


async def test_api_key_lifecycle(igloo: Igloo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    callers = await make_callers(igloo)
    seq = igloo.hub.last_seq
    key = await create_key(igloo, callers, label="  backup script  ")
    token = key["token"]
    assert len(token) == 64 and key["prefix"] == token[:12] and key["label"] == "backup script"
    assert key["scope"] == "full" and key["createdByAdmin"] is True and key["createdByUserId"] == 1

    # Only a SHA-256 is stored: the token appears nowhere in the database file.
    raw = b"".join(Path(igloo.db.path).read_bytes() for _ in [0])
    assert token.encode() not in raw
    stored = igloo.db.query_one("SELECT key_hash FROM api_keys WHERE id = ?", (key["id"],))
    assert bytes(stored["key_hash"]) == hashlib.sha256(token.encode()).digest()

    # The key works at once, as a user (never an administrator), and its use is recorded.
    whoami = json_of(await call(igloo, "GET", "/api/admin/whoami", {"Authorization": f"Bearer {token}"}))
    assert whoami == {
        "admin": False,
        "userId": None,
        "username": f"api-key:{token[:12]}",
        "role": "user",
        "scope": "full",
        "kind": "api-key",
    }
    assert (await call(igloo, "GET", "/api/admin/users", {"X-API-Key": token})).code == 403
    listing = json_of(await call(igloo, "GET", "/api/admin/api-keys", callers.admin.header()))["apiKeys"]
    mine = next(k for k in listing if k["id"] == key["id"])
    assert "token" not in mine and mine["prefix"] == token[:12]
    assert mine["lastUsedAt"] is not None and mine["lastUsedIp"] == "127.0.0.1" and mine["revokedAt"] is None

    # An event socket opened with the key closes the moment the key is revoked.
    ws = await igloo.ws(headers={"X-API-Key": token})
    revoke = await call(
        igloo,
        "POST",
        "/api/admin/api-keys/revoke",
        callers.admin.header(),
        {"apiKeyId": str(key["id"]), "reason": "retired"},
    )
    assert revoke.code == 200 and json_of(revoke) == {"success": True}
    await read_until_closed(ws)
    assert ws.close_code == 4401
    assert (await call(igloo, "GET", "/api/status", {"X-API-Key": token})).code == 200  # public route
    assert (await call(igloo, "GET", "/api/admin/whoami", {"X-API-Key": token})).code == 401
    again = await call(
        igloo, "POST", "/api/admin/api-keys/revoke", callers.admin.header(), {"apiKeyId": key["id"]}
    )
    assert again.code == 409 and json_of(again)["error"] == "API key already revoked"
    missing = await call(
        igloo, "POST", "/api/admin/api-keys/revoke", callers.admin.header(), {"apiKeyId": 999}
    )
    assert missing.code == 404
    for bad in ({"apiKeyId": "x"}, {"apiKeyId": -1}, {"apiKeyId": True}, {}):
        assert (
            await call(igloo, "POST", "/api/admin/api-keys/revoke", callers.admin.header(), bad)
        ).code == 400
    listing = json_of(await call(igloo, "GET", "/api/admin/api-keys", callers.admin.header()))["apiKeys"]
    revoked = next(k for k in listing if k["id"] == key["id"])
    # The token was in the creation answer only: never in a log line or an event.
    igloo.hub.make_durable()
    events = [e.payload.decode() for e in igloo.hub.ring.since(seq).events]
    assert any("API key created" in e for e in events) and any("API key revoked" in e for e in events)
    assert token not in caplog.text and not any(token in e for e in events)
    assert revoked["revokedAt"] is not None and revoked["revokedReason"] == "retired"
    assert listing[-1]["id"] == key["id"]  # active keys first


async def test_read_only_key_reads_status_events_and_peers_only(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    key = await create_key(igloo, callers, label="monitor", scope="read")
    headers = {"X-API-Key": key["token"]}
    assert (await call(igloo, "GET", "/api/peers", headers)).code == 503  # allowed; no node here
    assert (await call(igloo, "GET", "/api/events", headers)).code == 426  # allowed; needs an upgrade
    sign = await call(igloo, "POST", "/api/sign", headers, {"message": "a" * 64})
    assert sign.code == 403 and "read-only" in json_of(sign)["error"]
    assert (await call(igloo, "GET", "/dashboard", headers)).code == 403
    ws = await igloo.ws(headers=headers)
    # Every event-stream command is a read, so a read-only key may send each of them.
    assert set(COMMAND_ACCESS) == {"ping", "resume"} and set(COMMAND_ACCESS.values()) == {READ}
    ws.write_message('{"type": "resume", "since": 0}')
    ws.write_message('{"type": "ping"}')
    for _ in range(200):  # the greeting and recent events come first
        frame = await read_frame(ws)
        assert frame is not None and frame["type"] != "error", frame
        if frame["type"] == "pong":
            break
    else:
        raise AssertionError("no pong")
    ws.close()
    for bad in ({"scope": "admin"}, {"label": 5}, {"label": "x" * 129}):
        resp = await call(igloo, "POST", "/api/admin/api-keys", callers.admin.header(), bad)
        assert resp.code == 400, bad


async def test_users_listed_added_and_deleted_never_the_last_admin(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    users = json_of(await call(igloo, "GET", "/api/admin/users", callers.admin.header()))["users"]
    assert [(u["username"], u["role"]) for u in users] == [("alice", "admin"), ("bob", "user")]
    assert all(set(u) == {"id", "username", "role", "createdAt", "hasCredentials"} for u in users)

    created = await call(
        igloo,
        "POST",
        "/api/admin/users",
        Callers.env_key(),
        {"username": "carol", "password": "another long one", "role": "admin"},
    )
    assert created.code == 201 and json_of(created)["user"]["role"] == "admin"
    for bad, status in (
        ({"username": "carol", "password": "another long one", "role": "user"}, 409),
        ({"username": "dave", "password": "short", "role": "user"}, 400),
        ({"username": "dave", "password": "long enough", "role": "root"}, 400),
        ({"username": "bad name!", "password": "long enough", "role": "user"}, 400),
    ):
        resp = await call(igloo, "POST", "/api/admin/users", callers.admin.header(), bad)
        assert resp.code == status and "error" in json_of(resp), bad

    # Deleting bob ends his sessions at once, event sockets included.
    ws = await igloo.ws(headers=callers.user.header())
    bob_id = next(u["id"] for u in users if u["username"] == "bob")
    deleted = await call(igloo, "POST", "/api/admin/users/delete", callers.admin.header(), {"userId": bob_id})
    assert deleted.code == 200 and json_of(deleted) == {
        "success": True,
        "message": "User deleted successfully",
    }
    await read_until_closed(ws)
    assert ws.close_code == 4401
    assert (await call(igloo, "GET", "/api/auth/status", callers.user.header())).body.count(
        b'"authenticated":false'
    )
    assert (
        await call(igloo, "POST", "/api/admin/users/delete", callers.admin.header(), {"userId": bob_id})
    ).code == 404

    # Two administrators: one may go, the last may not (whoever asks).
    carol = json_of(created)["user"]["id"]
    assert (
        await call(igloo, "POST", "/api/admin/users/delete", Callers.env_key(), {"userId": carol})
    ).code == 200
    last = await call(igloo, "POST", "/api/admin/users/delete", Callers.env_key(), {"userId": 1})
    assert last.code == 400 and json_of(last)["error"] == "Cannot delete the last admin user"
    assert igloo.users.count_admins() == 1


async def test_password_change_needs_the_old_one_and_ends_the_other_sessions(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    _, other_session = await igloo.login("bob")
    ws = await igloo.ws(headers={"X-Session-ID": other_session})
    wrong = await call(
        igloo,
        "POST",
        "/api/user/password",
        callers.user.header(),
        {"currentPassword": "not it", "newPassword": "a brand new passphrase"},
    )
    assert wrong.code == 400 and json_of(wrong)["error"] == "currentPassword: not correct"
    short = await call(
        igloo,
        "POST",
        "/api/user/password",
        callers.user.header(),
        {"currentPassword": PASSWORD, "newPassword": "short"},
    )
    assert short.code == 400 and json_of(short)["error"].startswith("newPassword:")
    assert await igloo.users.verify("bob", PASSWORD) is not None  # nothing changed yet

    done = await call(
        igloo,
        "POST",
        "/api/user/password",
        callers.user.header(),
        {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"},
    )
    assert done.code == 200 and json_of(done) == {"success": True, "sessionsEnded": 1}
    await read_until_closed(ws)
    assert ws.close_code == 4401
    assert (await call(igloo, "GET", "/api/admin/whoami", {"X-Session-ID": other_session})).code == 401
    assert (
        await call(igloo, "GET", "/api/admin/whoami", callers.user.header())
    ).code == 200  # this one stays
    assert await igloo.users.verify("bob", PASSWORD) is None
    assert await igloo.users.verify("bob", "a brand new passphrase") is not None
    # Keys have no password to change.
    keyed = await call(
        igloo,
        "POST",
        "/api/user/password",
        Callers.env_key(),
        {"currentPassword": "x", "newPassword": "a brand new passphrase"},
    )
    assert keyed.code == 403


def test_existing_accounts_become_administrators_in_the_migration(tmp_path: Path) -> None:
    """A database from before roles: its accounts were made as the administrator, and stay so."""
    path = tmp_path / "igloo.db"
    roles_step = next(i for i, step in enumerate(MIGRATIONS) if "ADD COLUMN role" in step)
    with sqlite3.connect(path) as old:
        for step in MIGRATIONS[:roles_step]:
            old.executescript(step)
        old.execute(f"PRAGMA user_version = {roles_step}")
        old.execute("INSERT INTO users (username, password_hash, created_at) VALUES ('old', x'00', 0)")
    db = Database(path)
    try:
        users = UserStore(db, rounds=4)
        assert [(u.username, u.role) for u in users.list_users()] == [("old", "admin")]
        made = users.create_sync("new", "a long passphrase")
        assert made.role == "user"  # new accounts default to the least role
    finally:
        db.close()


def test_first_account_is_an_administrator_whatever_it_asks(tmp_path: Path) -> None:
    db = Database.open_in(tmp_path)
    try:
        users = UserStore(db, rounds=4)
        assert users.create_sync("first", "a long passphrase", role="user").role == "admin"
        assert users.create_sync("second", "a long passphrase").role == "user"
    finally:
        db.close()


def test_adduser_role_on_the_command_line(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    first_as_user = run_cli(
        "adduser", "root", "--role", "user", "--password-stdin", env=env, stdin="a long passphrase\n"
    )
    assert first_as_user.returncode == 1 and "first account is an administrator" in first_as_user.stderr
    first = run_cli("adduser", "root", "--password-stdin", env=env, stdin="a long passphrase\n")
    assert first.returncode == 0 and "Created administrator 'root'" in first.stdout
    second = run_cli("adduser", "carol", "--password-stdin", env=env, stdin="a long passphrase\n")
    assert second.returncode == 0 and "Created user 'carol'" in second.stdout
    third = run_cli(
        "adduser", "dave", "--role", "admin", "--password-stdin", env=env, stdin="a long passphrase\n"
    )
    assert third.returncode == 0 and "Created administrator 'dave'" in third.stdout
    wrong = run_cli("adduser", "erin", "--role", "root", "--password-stdin", env=env, stdin="x\n")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
    with sqlite3.connect(tmp_path / "igloo.db") as db:
        assert db.execute("SELECT username, role FROM users ORDER BY id").fetchall() == [
            ("root", "admin"),
            ("carol", "user"),
            ("dave", "admin"),
        ]
