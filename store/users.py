"""User accounts: usernames, roles and bcrypt password hashes (bcrypt runs in an executor, off the IOLoop).

Two roles: ``admin`` (may change credentials, relays, policies, API keys, accounts, and recover the key) and
``user`` (sees the dashboard and may sign). The first account is always an administrator, and the last
administrator cannot be deleted.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import time
from dataclasses import dataclass

import bcrypt

from node.ratelimit import Clock
from store.db import Database

MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything beyond 72 bytes; Igloo refuses instead of truncating
MIN_PASSWORD_LENGTH = 8
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
BCRYPT_ROUNDS = 12
ADMIN = "admin"
USER = "user"
ROLES = (ADMIN, USER)



@functools.cache
def dummy_hash(rounds: int) -> bytes:
    """Compared against when the username does not exist, at the cost of real hashes, so that a miss takes as
    long as a wrong password and timing does not tell which usernames exist."""
    return bcrypt.hashpw(b"igloo-dummy-password", bcrypt.gensalt(rounds))


def _check_password(raw: bytes, hashed: bytes | None, rounds: int) -> bool:
    """bcrypt's check against ``hashed``, or against the dummy hash when there is no such user."""
    return bcrypt.checkpw(raw, hashed if hashed is not None else dummy_hash(rounds))


class UserError(ValueError):
    """A username or password that cannot be accepted; the message is safe to show."""


@dataclass(frozen=True)
class User:
    """One account (never carries the password hash)."""

    id: int
    username: str
    role: str = USER
    created_at: float | None = None

    @property
    def is_admin(self) -> bool:
        """True for an administrator."""
        return self.role == ADMIN


def check_role(role: object) -> str:
    """Validate a role name ("admin" or "user")."""
    if role not in ROLES:
        raise UserError('role: must be "admin" or "user"')
    return str(role)


def _user(row: sqlite3.Row) -> User:
    return User(int(row["id"]), str(row["username"]), str(row["role"]), float(row["created_at"]))


def check_password(password: str) -> bytes:
    """Return the UTF-8 password bytes, or raise UserError when bcrypt could not hash it faithfully."""
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise UserError(f"Password is too long: at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")
    return raw


def check_new_password(password: str) -> bytes:
    """Validate a password being set: length bounds in both directions."""
    raw = check_password(password)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"Password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    return raw


def check_username(username: str) -> str:
    """Validate a username (1-64 of letters, digits, _ . @ -)."""
    if not USERNAME_RE.match(username):
        raise UserError("Username must be 1-64 characters: letters, digits, _ . @ -")
    return username


class UserStore:
    """Create and verify accounts."""

    def __init__(self, db: Database, rounds: int = BCRYPT_ROUNDS, clock: Clock = time.time) -> None:
        self._db = db
        self._rounds = rounds
        dummy_hash(rounds)  # made now, not inside the first login with an unknown name (which it would slow)
        self._clock = clock  # wall-clock seconds for ``created_at``

    def count(self) -> int:
        """How many accounts exist."""
        row = self._db.query_one("SELECT COUNT(*) FROM users")
        return int(row[0]) if row is not None else 0

    def count_admins(self) -> int:
        """How many administrators exist."""
        row = self._db.query_one("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        return int(row[0]) if row is not None else 0

    def get(self, user_id: int) -> User | None:
        """The account with this id, or None."""
        row = self._db.query_one("SELECT id, username, role, created_at FROM users WHERE id = ?", (user_id,))
        return _user(row) if row is not None else None

    def list_users(self) -> list[User]:
        """Every account, oldest first."""
        rows = self._db.query_all("SELECT id, username, role, created_at FROM users ORDER BY id")
        return [_user(row) for row in rows]

    def create_sync(self, username: str, password: str, role: str = USER) -> User:
        """Create an account, hashing in this thread (for the command line). The first one is an admin."""
        check_username(username)
        check_role(role)
        raw = check_new_password(password)
        hashed = bcrypt.hashpw(raw, bcrypt.gensalt(self._rounds))
        return self._insert(username, hashed, role)

    async def create(self, username: str, password: str, only_if_first: bool = False,
                     role: str = USER) -> User:
        """Create an account, hashing in the default executor. The first account is an administrator
        whatever ``role`` says.

        With ``only_if_first`` the insert happens only while no account exists (first-admin onboarding),
        checked atomically in the INSERT itself.
        """
        check_username(username)
        check_role(role)
        raw = check_new_password(password)
        hashed = await self._hash(raw)
        return self._insert(username, hashed, role, only_if_first)

    async def _hash(self, raw: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, bcrypt.hashpw, raw, bcrypt.gensalt(self._rounds))

    def _insert(self, username: str, hashed: bytes, role: str, only_if_first: bool = False) -> User:
        # The role is decided in the INSERT itself, so two first accounts made at once cannot both be users.
        sql = ("INSERT INTO users (username, password_hash, created_at, role) SELECT ?, ?, ?, "
               "CASE WHEN EXISTS (SELECT 1 FROM users) THEN ? ELSE 'admin' END")
        if only_if_first:
            sql += " WHERE NOT EXISTS (SELECT 1 FROM users)"
        try:
            cursor = self._db.execute(sql, (username, hashed, self._clock(), role))
        except sqlite3.IntegrityError:
            raise UserError("Username already taken") from None
        if cursor.rowcount != 1:
            raise UserError("An administrator account already exists")
        user = self.get(int(cursor.lastrowid or 0))
        assert user is not None  # just inserted
        return user

    def delete(self, user_id: int) -> str:
        """Delete an account: "deleted", "not_found", or "last_admin" (the last administrator stays).

        The guard is part of the DELETE statement, so two administrators deleting each other at once
        cannot leave none.
        """
        cursor = self._db.execute(
            "DELETE FROM users WHERE id = ? AND (role != 'admin' OR "
            "(SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)",
            (user_id,),
        )
        if cursor.rowcount == 1:
            return "deleted"
        return "not_found" if self.get(user_id) is None else "last_admin"

    async def change_password(self, user_id: int, old_password: str, new_password: str) -> bool:
        """Replace the password when ``old_password`` is right (False otherwise). UserError for a new
        password that cannot be accepted."""
        raw_new = check_new_password(new_password)
        raw_old = check_password(old_password)
        row = self._db.query_one("SELECT password_hash FROM users WHERE id = ?", (user_id,))
        if row is None:
            return False
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, bcrypt.checkpw, raw_old, bytes(row["password_hash"])):
            return False
        hashed = await self._hash(raw_new)
        self._db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user_id))
        return True

    async def verify(self, username: str, password: str) -> User | None:
        """Return the account when the password matches, else None. Raises UserError for >72 bytes."""
        raw = check_password(password)
        row = self._db.query_one(
            "SELECT id, username, role, created_at, password_hash FROM users WHERE username = ?", (username,)
        )
        hashed = bytes(row["password_hash"]) if row is not None else None
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, _check_password, raw, hashed, self._rounds)
        if row is None or not ok:
            return None
        return _user(row)
