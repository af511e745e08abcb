"""Igloo Server's SQLite database, read-only: its users, their encrypted credentials, its API keys.

The format is Igloo Server's (``src/db/database.ts`` and ``src/config/crypto.ts``, commit e6f814a):

- ``users``: ``username``, ``password_hash`` (Argon2id PHC string from Bun.password, or a legacy bcrypt
  hash), ``salt`` (32 random bytes in hex, for the credentials key only), ``group_cred_encrypted`` and
  ``share_cred_encrypted`` (base64 of IV(12) | tag(16) | AES-256-GCM ciphertext, no associated data),
  ``relays`` (JSON array), ``peer_policies`` (JSON array of ``{pubkey, allowSend?, allowReceive?, label?,
  note?}``), ``group_name``, ``role``.
- The credentials key is PBKDF2-HMAC-SHA256(password as UTF-8, salt, 200 000 iterations, 32 bytes).
- ``api_keys``: ``prefix`` (first 12 characters of the token), ``key_hash`` (hex SHA-256 of the token),
  ``label``, ``revoked_at``. The tokens themselves are not stored.

Every problem is a ``ServerDataError`` whose message names the table, the row and the field, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

PBKDF2_ITERATIONS = 200_000
KEY_LENGTH = 32
IV_LENGTH = 12
TAG_LENGTH = 16
SALT_HEX_LENGTH = 64
MAX_USERS = 10_000
MAX_API_KEYS = 100_000
MAX_FIELD = 64 * 1024  # no credential, relay list or policy list of a real database comes near this
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")
_USER_COLUMNS = {"id", "username", "password_hash", "salt", "group_cred_encrypted", "share_cred_encrypted",
                 "relays", "group_name"}


class ServerDataError(ValueError):
    """Igloo Server's data cannot be read or decrypted; the message names the row and field."""


@dataclass(frozen=True)
class ServerUser:
    """One ``users`` row, still encrypted. ``repr`` shows no hash, salt or ciphertext."""

    id: int
    username: str
    role: str
    password_hash: str = field(repr=False)
    salt: str = field(repr=False)
    group_cred_encrypted: str | None = field(repr=False)
    share_cred_encrypted: str | None = field(repr=False)
    relays: str | None
    peer_policies: str | None
    group_name: str | None

    @property
    def where(self) -> str:
        """How messages name this row."""
        return f"users row {self.id} ({self.username})"

    @property
    def has_credentials(self) -> bool:
        """Both credentials are stored (Igloo Server's own test)."""
        return bool(self.group_cred_encrypted and self.share_cred_encrypted)


@dataclass(frozen=True)
class ServerApiKey:
    """One ``api_keys`` row: only the token's prefix and SHA-256 exist."""

    id: int
    prefix: str
    key_hash: str = field(repr=False)
    label: str | None
    created_at: str | None
    revoked: bool


@dataclass(frozen=True)
class ServerDatabase:
    """What an Igloo Server database holds that Igloo can use."""

    path: Path
    users: tuple[ServerUser, ...]
    api_keys: tuple[ServerApiKey, ...]


def is_sqlite_file(path: Path) -> bool:
    """True when ``path`` starts with SQLite's file header."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def read_database(path: Path) -> ServerDatabase:
    """Read users and API keys from Igloo Server's database at ``path`` (opened read-only)."""
    if not is_sqlite_file(path):
        raise ServerDataError(f"{path}: not a SQLite database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ServerDataError(f"{path}: cannot open: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "users" not in tables:
            raise ServerDataError(f"{path}: no users table: not an Igloo Server database")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        missing = sorted(_USER_COLUMNS - columns)
        if missing:
            raise ServerDataError(
                f"{path}: users table without {', '.join(missing)}: not an Igloo Server database")
        users = tuple(_user(row, columns) for row in conn.execute(
            f"SELECT * FROM users ORDER BY id LIMIT {MAX_USERS + 1}"))  # noqa: S608 - a constant
        if len(users) > MAX_USERS:
            raise ServerDataError(f"{path}: more than {MAX_USERS} users")
        keys: tuple[ServerApiKey, ...] = ()
        if "api_keys" in tables:
            keys = tuple(_api_key(row) for row in conn.execute(
                f"SELECT * FROM api_keys ORDER BY id LIMIT {MAX_API_KEYS}"))  # noqa: S608 - a constant
    except sqlite3.DatabaseError as exc:
        raise ServerDataError(f"{path}: cannot be read: {exc}") from None
    finally:
        conn.close()
    return ServerDatabase(path, users, keys)


def _text(row: sqlite3.Row, name: str, where: str, required: bool = False) -> str | None:
    value = row[name]
    if value is None or value == "":
        if required:
            raise ServerDataError(f"{where}: {name} is empty")
        return None
    if not isinstance(value, str):
        raise ServerDataError(f"{where}: {name} is not text")
    if len(value) > MAX_FIELD:
        raise ServerDataError(f"{where}: {name} is longer than {MAX_FIELD} characters")
    return value


def _user(row: sqlite3.Row, columns: set[str]) -> ServerUser:
    user_id = row["id"]
    if not isinstance(user_id, int):
        raise ServerDataError("users: a row without an integer id")
    where = f"users row {user_id}"
    username = _text(row, "username", where, required=True) or ""
    where = f"users row {user_id} ({username[:64]})"
    salt = (_text(row, "salt", where, required=True) or "").lower()
    if len(salt) != SALT_HEX_LENGTH or not _HEX64.match(salt):
        raise ServerDataError(f"{where}: salt is not 32 bytes of hex")
    return ServerUser(
        id=user_id,
        username=username,
        role=(_text(row, "role", where) if "role" in columns else None) or "user",
        password_hash=_text(row, "password_hash", where, required=True) or "",
        salt=salt,
        group_cred_encrypted=_text(row, "group_cred_encrypted", where),
        share_cred_encrypted=_text(row, "share_cred_encrypted", where),
        relays=_text(row, "relays", where),
        peer_policies=_text(row, "peer_policies", where) if "peer_policies" in columns else None,
        group_name=_text(row, "group_name", where),
    )


def _api_key(row: sqlite3.Row) -> ServerApiKey:
    key_id = row["id"]
    where = f"api_keys row {key_id}"
    prefix = _text(row, "prefix", where, required=True) or ""
    key_hash = (_text(row, "key_hash", where, required=True) or "").lower()
    if not _HEX64.match(key_hash):
        raise ServerDataError(f"{where}: key_hash is not a SHA-256 in hex")
    return ServerApiKey(int(key_id), prefix, key_hash, _text(row, "label", where),
                        _text(row, "created_at", where), revoked=row["revoked_at"] is not None)


def check_password(user: ServerUser, password: str) -> None:
    """Check ``password`` against the row's Argon2id (or bcrypt) hash; ``ServerDataError`` when wrong."""
    stored = user.password_hash
    match = _ARGON2.match(stored)
    if match is not None:
        memory, iterations, lanes = (int(match.group(n)) for n in (1, 2, 3))
        if memory > 1 << 21 or iterations > 64 or lanes > 64:  # 2 GiB: beyond any real Igloo Server setting
            raise ServerDataError(f"{user.where}: password_hash asks for more work than Igloo will do")
        salt, digest = (_b64(match.group(n)) for n in (4, 5))
        kdf = Argon2id(salt=salt, length=len(digest), iterations=iterations, lanes=lanes, memory_cost=memory)
        try:
            kdf.verify(password.encode("utf-8"), digest)
        except InvalidKey:
            raise ServerDataError(f"{user.where}: wrong password") from None
        return
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), stored.encode("ascii"))
        except ValueError:
            raise ServerDataError(f"{user.where}: password_hash is not a valid bcrypt hash") from None
        if not ok:
            raise ServerDataError(f"{user.where}: wrong password")
        return
    raise ServerDataError(f"{user.where}: password_hash is neither Argon2id nor bcrypt")


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def credentials_key(user: ServerUser, password: str) -> bytes:
    """The AES key Igloo Server derived for this user's credentials (callers drop it after use)."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(user.salt),
                               PBKDF2_ITERATIONS, KEY_LENGTH)


def decrypt_field(user: ServerUser, name: str, key: bytes) -> str | None:
    """Decrypt ``group_cred_encrypted`` or ``share_cred_encrypted``; None when the row has none."""
    blob_text: str | None = getattr(user, name)
    if blob_text is None:
        return None
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise ServerDataError(f"{user.where}: {name} is not base64") from None
    if len(blob) <= IV_LENGTH + TAG_LENGTH:
        raise ServerDataError(f"{user.where}: {name} is too short to be AES-GCM output")
    body = IV_LENGTH + TAG_LENGTH
    iv, tag, ciphertext = blob[:IV_LENGTH], blob[IV_LENGTH:body], blob[body:]
    try:
        plaintext = AESGCM(key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise ServerDataError(
            f"{user.where}: {name} does not decrypt with this password (the row was changed or is corrupt)"
        ) from None
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise ServerDataError(f"{user.where}: {name} does not decrypt to text") from None


def token_matches(key: ServerApiKey, token: str) -> bool:
    """True when ``token`` is the key this row hashes (constant-time compare)."""
    return hmac.compare_digest(hashlib.sha256(token.encode("utf-8")).hexdigest(), key.key_hash)
