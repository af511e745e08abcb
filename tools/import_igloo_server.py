"""``igloo-server import-igloo-server PATH``: bring an Igloo Server installation's data into Igloo.

``PATH`` is Igloo Server's directory, its database file (``data/igloo.db``) or its ``.env``:

- a headless ``.env``: ``GROUP_CRED``/``SHARE_CRED``, ``RELAYS``, ``PEER_POLICIES`` (parsed exactly as Igloo
  parses them at start-up); ``API_KEY`` and the other settings stay environment variables (the summary says
  which to keep);
- a database: one user's credentials, decrypted with that user's password (``store.igloo_server_db``),
  their relays and peer policies, and an Igloo account with the same name and password.

Everything is read, decrypted and validated first; only then is Igloo's database written, in one
transaction. A problem stops the import with one message naming the row or variable and the field; no
message carries a secret.
"""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dotenv import dotenv_values

from config.kinds import PeerPolicies, PeerPolicySetting
from config.settings import BY_NAME, ConfigError, Settings
from node import StoredPolicy, validate, validate_credentials
from store import igloo_server_db
from store.credentials import CredentialStore
from store.db import Database
from store.igloo_server_db import ServerDataError, ServerUser
from store.policies import SqlitePolicyStore
from store.users import ADMIN, UserError, UserStore, check_new_password, check_username

MAX_ENV_FILE = 1 << 20
PasswordReader = Callable[[str], str]


class ImportRefused(ValueError):
    """The import cannot go ahead; the message says why and names the row or variable."""


@dataclass
class ImportPlan:
    """What will be written. ``repr`` never shows the credentials or the password."""

    source: str
    group_cred: str = field(repr=False)
    share_cred: str = field(repr=False)
    relays: tuple[str, ...]
    policies: tuple[StoredPolicy, ...]
    account: tuple[str, str] | None = field(default=None, repr=False)  # (username, password)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- finding what PATH is


def locate(path: Path) -> tuple[str, Path]:
    """``("database" | "env", file)`` for an Igloo Server directory, database file or ``.env``."""
    if path.is_dir():
        env_file = path / ".env"
        if env_file.is_file() and _headless_with_credentials(env_file):
            return "env", env_file
        database = path / "data" / "igloo.db"
        if database.is_file():
            return "database", database
        if env_file.is_file():
            return "env", env_file
        raise ImportRefused(f"{path}: neither data/igloo.db nor .env found (point at one of them)")
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file or directory")
    if igloo_server_db.is_sqlite_file(path):
        return "database", path
    return "env", path


def _headless_with_credentials(env_file: Path) -> bool:
    values = read_env_file(env_file)
    return bool(values.get("GROUP_CRED") and values.get("SHARE_CRED"))


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (python-dotenv, as Igloo reads its own)."""
    try:
        if path.stat().st_size > MAX_ENV_FILE:
            raise ImportRefused(f"{path}: larger than {MAX_ENV_FILE} bytes: not an .env file")
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRefused(f"{path}: cannot read: {exc.__class__.__name__}") from None


# --------------------------------------------------------------------------- shared checks


def _setting(name: str, text: str, where: str) -> Any:
    """Parse one variable with the kind Igloo's own configuration table gives it."""
    try:
        return BY_NAME[name].kind.parse(text.strip())
    except ValueError as exc:
        raise ImportRefused(f"{where}: {name}: {exc}") from None


def checked_credentials(group: object, share: object, where: str) -> tuple[str, str, list[str]]:
    """Decode both credentials and check the share is in the group; return them and the peers' pubkeys."""
    try:
        group_pkg, share_pkg = validate_credentials(group, share)
    except ValueError as exc:
        raise ImportRefused(f"{where}: {exc}") from None
    peers = [commit.pubkey[1:].hex() for commit in group_pkg.commits if commit.idx != share_pkg.idx]
    return str(group).strip(), str(share).strip(), peers


def checked_policies(entries: tuple[PeerPolicySetting, ...], peers: list[str], now: float
                     ) -> tuple[tuple[StoredPolicy, ...], list[str]]:
    """Igloo's stored policies for the entries that name a peer; notes for the others."""
    policies, notes = [], []
    for entry in entries:
        if entry.pubkey not in peers:
            notes.append(f"peer policy for {entry.pubkey[:12]}… not kept: not a peer of this group")
            continue
        if entry.send is None and entry.recv is None:
            notes.append(f"peer policy for {entry.pubkey[:12]}… not kept: it sets only a label or note")
            continue
        policies.append(StoredPolicy(entry.pubkey, entry.send is not False, entry.recv is not False, now))
    return tuple(policies), notes


# --------------------------------------------------------------------------- a headless .env


ENV_KEPT_AS_ENVIRONMENT = ("API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "ADMIN_SECRET", "SESSION_SECRET",
                           "ALLOWED_ORIGINS", "TRUST_PROXY", "FROSTR_SIGN_TIMEOUT", "SESSION_TIMEOUT")


def plan_from_env(path: Path, now: float) -> ImportPlan:
    """Read and check a headless ``.env``."""
    values = read_env_file(path)
    where = str(path)
    for name in ("GROUP_CRED", "SHARE_CRED"):
        if not values.get(name, "").strip():
            raise ImportRefused(f"{where}: {name} is not set: nothing to import")
    group, share, peers = checked_credentials(values["GROUP_CRED"], values["SHARE_CRED"], where)
    relays: tuple[str, ...] = ()
    if values.get("RELAYS", "").strip():
        relays = _setting("RELAYS", values["RELAYS"], where)
    entries: tuple[PeerPolicySetting, ...] = ()
    if values.get("PEER_POLICIES", "").strip():
        entries = _setting("PEER_POLICIES", values["PEER_POLICIES"], where)
    policies, notes = checked_policies(entries, peers, now)
    for name in ENV_KEPT_AS_ENVIRONMENT:
        if values.get(name, "").strip():
            try:
                _setting(name, values[name], where)
            except ImportRefused as exc:
                notes.append(f"{exc} (Igloo would not start with it: write a new value)")
                continue
            notes.append(f"{name}: not stored in the database; keep the line in Igloo's environment "
                         "(/etc/igloo/igloo.env or the .env Igloo starts with)")
    if values.get("GROUP_NAME", "").strip():
        notes.append("GROUP_NAME: keep the line in Igloo's environment (it is a setting here)")
    return ImportPlan(f"headless .env {path}", group, share, relays, policies, None, notes)


# --------------------------------------------------------------------------- a database


def choose_user(users: tuple[ServerUser, ...], username: str | None) -> ServerUser:
    """The user named, else the one user with stored credentials."""
    if username is not None:
        for user in users:
            if user.username == username:
                if not user.has_credentials:
                    raise ImportRefused(f"{user.where}: no stored credentials to import")
                return user
        raise ImportRefused(f"no user {username!r} in the database")
    with_credentials = [user for user in users if user.has_credentials]
    if not with_credentials:
        raise ImportRefused("no user in the database has stored credentials: nothing to import")
    if len(with_credentials) > 1:
        names = ", ".join(user.username for user in with_credentials)
        raise ImportRefused(f"several users have credentials ({names}): choose one with --user NAME "
                            "(Igloo runs one signer)")
    return with_credentials[0]


def plan_from_database(path: Path, username: str | None, read_password: PasswordReader, now: float
                       ) -> ImportPlan:
    """Read the database, verify the user's password, decrypt and check everything."""
    try:
        database = igloo_server_db.read_database(path)
        user = choose_user(database.users, username)
        password = read_password(f"Igloo Server password of {user.username}: ")
        igloo_server_db.check_password(user, password)
        key = igloo_server_db.credentials_key(user, password)
        group = igloo_server_db.decrypt_field(user, "group_cred_encrypted", key)
        share = igloo_server_db.decrypt_field(user, "share_cred_encrypted", key)
        del key
    except ServerDataError as exc:
        raise ImportRefused(str(exc)) from None
    where = user.where
    group, share, peers = checked_credentials(group, share, where)
    relays: tuple[str, ...] = ()
    if user.relays:
        try:
            relays = tuple(validate.relay_urls(user.relays, field="relays"))
        except ValueError as exc:
            raise ImportRefused(f"{where}: {exc}") from None
    entries: tuple[PeerPolicySetting, ...] = ()
    if user.peer_policies:
        try:
            entries = PeerPolicies().parse(user.peer_policies)
        except ValueError as exc:
            raise ImportRefused(f"{where}: peer_policies: {exc}") from None
    policies, notes = checked_policies(entries, peers, now)
    account: tuple[str, str] | None = None
    try:
        check_username(user.username)
        check_new_password(password)
        account = (user.username, password)
    except UserError as exc:
        notes.append(f"account {user.username!r} not created ({exc}); create one with igloo-server adduser")
    if user.group_name:
        notes.append(f"group name {user.group_name!r}: set GROUP_NAME in Igloo's environment to keep it")
    others = [u.username for u in database.users if u is not user]
    if others:
        notes.append(f"other users not imported: {', '.join(others)} (Igloo runs one signer; create their "
                     "accounts with igloo-server adduser)")
    notes.extend(api_key_notes(database.api_keys))
    return ImportPlan(f"{where} of {path}", group, share, relays, policies, account, notes)


def api_key_notes(keys: tuple[igloo_server_db.ServerApiKey, ...]) -> list[str]:
    """What becomes of Igloo Server's API keys: it stored only their SHA-256, so they cannot be re-created."""
    active = [key for key in keys if not key.revoked]
    if not keys:
        return []
    labels = ", ".join(f"{key.label or key.prefix}" for key in active) or "none"
    return [f"API keys not carried over: {len(active)} active ({labels}), {len(keys) - len(active)} revoked. "
            "Igloo Server kept only their SHA-256 hashes and this Igloo has no stored API keys to put them "
            "in; set API_KEY in Igloo's environment and give the clients that key"]


# --------------------------------------------------------------------------- writing


def write_plan(config: Settings, plan: ImportPlan, replace: bool) -> list[str]:
    """Write the plan into Igloo's database in one transaction; the summary lines."""
    assert config.credentials_key is not None  # with_credentials_key ran
    db = Database.open_in(config.data_dir)
    try:
        credentials = CredentialStore(db, config.credentials_key)
        users = UserStore(db)
        if credentials.exists() and not replace:
            raise ImportRefused(f"{config.data_dir}: Igloo already has stored credentials; run again with "
                                "--replace to overwrite them")
        create_account = plan.account is not None and not _user_exists(db, plan.account[0])
        lines = [f"Imported from {plan.source}:",
                 f"  credentials: stored encrypted in {db.path}",
                 f"  relays: {', '.join(plan.relays) if plan.relays else 'none (the defaults apply)'}",
                 f"  peer policies: {len(plan.policies)}"]
        with db.transaction():
            credentials.save(plan.group_cred, plan.share_cred, plan.relays)
            policy_store = SqlitePolicyStore(db)
            for policy in plan.policies:
                policy_store.save_policy(policy)
            if create_account and plan.account is not None:
                # The account whose signer is imported runs it here too: an administrator.
                users.create_sync(*plan.account, role=ADMIN)
        if plan.account is not None:
            state = "created with the same password" if create_account else "already exists, left as it is"
            lines.append(f"  account {plan.account[0]!r}: {state}")
    finally:
        db.close()
    if config.group_cred or config.share_cred:
        lines.append("  note: GROUP_CRED/SHARE_CRED in Igloo's environment still win over the stored ones")
    lines.extend(f"  note: {note}" for note in plan.notes)
    lines.append("Restart Igloo (systemctl restart igloo) to run the signer on them.")
    return lines


def _user_exists(db: Database, username: str) -> bool:
    return db.query_one("SELECT 1 FROM users WHERE username = ?", (username,)) is not None


# --------------------------------------------------------------------------- the command


def password_reader(from_stdin: bool, stdin: TextIO = sys.stdin) -> PasswordReader:
    """Read the password from one line of stdin, or prompt without echo."""
    if from_stdin:
        return lambda _prompt: stdin.readline().rstrip("\r\n")
    return getpass.getpass


def run(config: Settings, path: Path, *, username: str | None = None, read_password: PasswordReader,
        replace: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Import; 0 when written, 1 when refused (nothing written)."""
    try:
        kind, file = locate(path)
        now = time.time()
        if kind == "env":
            plan = plan_from_env(file, now)
        else:
            plan = plan_from_database(file, username, read_password, now)
        lines = write_plan(config, plan, replace)
    except (ImportRefused, ConfigError, UserError) as exc:
        print(f"igloo-server: import refused, nothing written: {exc}", file=err)
        return 1
    print("\n".join(lines), file=out)
    return 0
