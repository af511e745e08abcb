"""``igloo-server import-igloo-server``: the data the real Igloo Server wrote (tests/migration/fixtures,
made by running it) comes into Igloo, and any problem stops the import before anything is written.

Checked against Igloo's own stores afterwards: the credentials decrypt with Igloo's credentials key to exactly
what Igloo Server was given, relays and peer policies are Igloo's, the imported account logs in with the old
password, and after a refusal the Igloo database holds nothing new.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from config.settings import Settings
from config.startup import with_credentials_key
from store import igloo_server_db
from store.credentials import CredentialStore
from store.db import Database
from store.policies import SqlitePolicyStore
from tools import import_igloo_server

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "igloo-server"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
ALICE = EXPECTED["database"]["users"][0]

pytestmark = pytest.mark.timeout(60)


def env_for(data_dir: Path) -> dict[str, str]:
    """The environment of an Igloo command with its own DATA_DIR (no API key or credentials)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("API_KEY", "ADMIN_SECRET", "GROUP_CRED", "SHARE_CRED", "CREDENTIALS_"))}
    env["DATA_DIR"] = str(data_dir)
    return env


def cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "import-igloo-server", *args],
                          input=stdin, env=env_for(data_dir), capture_output=True, text=True, timeout=60,
                          cwd=data_dir.parent)


def config_for(data_dir: Path) -> Settings:
    return with_credentials_key(Settings.from_env({"DATA_DIR": str(data_dir)}))


def stored(data_dir: Path) -> dict[str, Any]:
    """What Igloo's database holds after an import, read through Igloo's own stores."""
    config = config_for(data_dir)
    assert config.credentials_key is not None
    db = Database.open_in(data_dir)
    try:
        creds = CredentialStore(db, config.credentials_key).load()
        policies = {p.pubkey: {"send": p.send, "recv": p.recv} for p in SqlitePolicyStore(db).load_policies()}
        users = {row["username"]: bytes(row["password_hash"])
                 for row in db.query_all("SELECT username, password_hash FROM users")}
    finally:
        db.close()
    return {"creds": creds, "policies": policies, "users": users}


def assert_nothing_written(data_dir: Path) -> None:
    if not (data_dir / "igloo.db").exists():
        return
    after = stored(data_dir)
    assert after["creds"] is None and after["policies"] == {} and after["users"] == {}


def run_in_process(data_dir: Path, path: Path, password: str = "", **kwargs: Any) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = import_igloo_server.run(config_for(data_dir), path, read_password=lambda _prompt: password,
                                   out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- the database


def test_database_import_brings_credentials_relays_policies_and_account(tmp_path: Path) -> None:
    data_dir = tmp_path / "igloo-data"
    result = cli(data_dir, str(FIXTURES / "igloo.db"), "--password-stdin", stdin=ALICE["password"] + "\n")
    assert result.returncode == 0, result.stderr
    after = stored(data_dir)
    assert after["creds"].group_cred == ALICE["group_cred"]
    assert after["creds"].share_cred == ALICE["share_cred"]
    assert list(after["creds"].relays) == ALICE["relays"]
    assert after["policies"] == EXPECTED["database"]["policies"]
    # The account logs in with the password it had on Igloo Server (bcrypt here, Argon2id there).
    assert bcrypt.checkpw(ALICE["password"].encode(), after["users"]["alice"])
    # The summary says what did not come over and why; no secret in any output.
    assert "API keys not carried over: 2 active (ci deploy, monitoring), 1 revoked" in result.stdout
    assert "GROUP_NAME" in result.stdout
    tokens = [key["token"] for key in EXPECTED["database"]["api_keys"]]
    for secret in (ALICE["password"], ALICE["share_cred"], *tokens):
        assert secret not in result.stdout + result.stderr
    # Igloo's database never holds the share in clear.
    assert ALICE["share_cred"].encode() not in (data_dir / "igloo.db").read_bytes()


async def test_imported_account_logs_in_to_a_running_igloo(tmp_path: Path) -> None:
    data_dir = tmp_path / "igloo-data"
    code, _, err = await asyncio.to_thread(run_in_process, data_dir, FIXTURES / "igloo.db", ALICE["password"])
    assert code == 0, err
    from tests.server.conftest import start_igloo, stop_igloo

    igloo = start_igloo({"DATA_DIR": str(data_dir), "WS_PING_INTERVAL": "0"})  # no node: nothing dials out
    try:
        wrong = await igloo.fetch("/api/auth/login", method="POST",
                                  headers={"Content-Type": "application/json"},
                                  body=json.dumps({"username": "alice", "password": "not her password"}))
        assert wrong.code == 401
        cookie, _ = await igloo.login("alice", ALICE["password"])
        status = json.loads((await igloo.fetch("/api/auth/status", headers={"Cookie": cookie})).body)
        assert status["authenticated"] is True and status["username"] == "alice"
    finally:
        stop_igloo(igloo)


def test_wrong_password_names_the_row_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "igloo-data"
    result = cli(data_dir, str(FIXTURES / "igloo.db"), "--password-stdin", stdin="Not-Her-Password-1!\n")
    assert result.returncode == 1
    assert "users row 1 (alice): wrong password" in result.stderr and "nothing written" in result.stderr
    assert_nothing_written(data_dir)


def copy_db(tmp_path: Path) -> Path:
    copy = tmp_path / "igloo-server" / "data" / "igloo.db"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "igloo.db", copy)
    return copy


def tamper(db_path: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(sql, params)


def flipped(b64: str, at: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(("column", "change", "message"), [
    ("share_cred_encrypted", lambda v: flipped(v, 40),
     "users row 1 (alice): share_cred_encrypted does not decrypt with this password"),
    ("group_cred_encrypted", lambda v: flipped(v, 5),  # inside the tag
     "users row 1 (alice): group_cred_encrypted does not decrypt with this password"),
    ("share_cred_encrypted", lambda v: "not base64!",
     "users row 1 (alice): share_cred_encrypted is not base64"),
    ("relays", lambda v: '["wss://ok.example", "http://not-a-relay"]', "users row 1 (alice): relays"),
    ("relays", lambda v: "{broken", "users row 1 (alice): relays"),
    ("peer_policies", lambda v: '[{"pubkey": "zz", "allowSend": false}]',
     "users row 1 (alice): peer_policies"),
    ("peer_policies", lambda v: '[{"pubkey": "' + "ab" * 32 + '", "allowSend": "no"}]',
     "users row 1 (alice): peer_policies"),
    ("salt", lambda v: "abc", "users row 1 (alice): salt is not 32 bytes of hex"),
])
def test_a_corrupt_row_is_named_and_nothing_is_written(tmp_path: Path, column: str, change: Any,
                                                       message: str) -> None:
    source = copy_db(tmp_path)
    with sqlite3.connect(source) as conn:
        value = conn.execute(f"SELECT {column} FROM users WHERE id = 1").fetchone()[0]
    tamper(source, f"UPDATE users SET {column} = ? WHERE id = 1", change(value))
    data_dir = tmp_path / "igloo-data"
    code, out, err = run_in_process(data_dir, source, ALICE["password"])
    assert code == 1 and message in err and out == ""
    assert ALICE["password"] not in err and ALICE["share_cred"] not in err
    assert_nothing_written(data_dir)


def test_a_share_from_another_group_is_refused(tmp_path: Path) -> None:
    """Decrypts fine, but the share does not belong to the group: refused, nothing written."""
    source = copy_db(tmp_path)
    user = igloo_server_db.read_database(source).users[0]
    key = igloo_server_db.credentials_key(user, ALICE["password"])
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from node.keytools import keygen

    other_share = keygen(threshold=2, total=3)["shares"][0]
    sealed = AESGCM(key).encrypt(b"\x00" * 12, other_share.encode(), None)
    blob = base64.b64encode(b"\x00" * 12 + sealed[-16:] + sealed[:-16]).decode()  # Igloo Server's layout
    tamper(source, "UPDATE users SET share_cred_encrypted = ? WHERE id = 1", blob)
    data_dir = tmp_path / "igloo-data"
    code, _, err = run_in_process(data_dir, source, ALICE["password"])
    assert code == 1 and "users row 1 (alice): SHARE_CRED: this share does not belong to the group" in err
    assert_nothing_written(data_dir)


def test_several_users_with_credentials_need_a_choice(tmp_path: Path) -> None:
    source = copy_db(tmp_path)
    with sqlite3.connect(source) as conn:
        columns = ("password_hash, salt, group_cred_encrypted, share_cred_encrypted, relays, peer_policies, "
                   "role")
        conn.execute(f"INSERT INTO users (username, {columns}) SELECT 'bob', {columns} FROM users "
                     "WHERE id = 1")
    data_dir = tmp_path / "igloo-data"
    code, _, err = run_in_process(data_dir, source, ALICE["password"])
    assert code == 1 and "several users have credentials (alice, bob): choose one with --user NAME" in err
    code, _, err = run_in_process(data_dir, source, ALICE["password"], username="carol")
    assert code == 1 and "no user 'carol'" in err
    assert_nothing_written(data_dir)
    code, out, err = run_in_process(data_dir, source, ALICE["password"], username="bob")
    assert code == 0, err
    assert "other users not imported: alice" in out
    assert set(stored(data_dir)["users"]) == {"bob"}


def test_existing_credentials_are_kept_unless_replace(tmp_path: Path) -> None:
    data_dir = tmp_path / "igloo-data"
    assert run_in_process(data_dir, FIXTURES / "headless.env")[0] == 0
    code, _, err = run_in_process(data_dir, FIXTURES / "igloo.db", ALICE["password"])
    assert code == 1 and "already has stored credentials" in err and "--replace" in err
    assert stored(data_dir)["creds"].share_cred == EXPECTED["headless"]["share_cred"]
    code, _, err = run_in_process(data_dir, FIXTURES / "igloo.db", ALICE["password"], replace=True)
    assert code == 0, err
    assert stored(data_dir)["creds"].share_cred == ALICE["share_cred"]


def test_api_key_rows_are_read_as_igloo_server_wrote_them() -> None:
    """Only SHA-256 hashes are stored there: each token of the fixture hashes to its row; revocation read."""
    keys = igloo_server_db.read_database(FIXTURES / "igloo.db").api_keys
    made = EXPECTED["database"]["api_keys"]
    assert [k.label for k in keys] == [m["label"] for m in made]
    assert [k.revoked for k in keys] == [bool(m.get("revoked")) for m in made]
    for key, token in zip(keys, (m["token"] for m in made), strict=True):
        assert key.prefix == token[:12] and igloo_server_db.token_matches(key, token)
        assert not igloo_server_db.token_matches(key, token[:-1] + "0")


def test_not_an_igloo_server_database(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE things (id INTEGER)")
    code, _, err = run_in_process(tmp_path / "igloo-data", other)
    assert code == 1 and "no users table: not an Igloo Server database" in err


def test_a_directory_is_searched_like_an_installation(tmp_path: Path) -> None:
    source = copy_db(tmp_path)  # tmp/igloo-server/data/igloo.db
    code, out, err = run_in_process(tmp_path / "igloo-data", source.parent.parent, ALICE["password"])
    assert code == 0 and "users row 1 (alice)" in out, err
    headless_dir = tmp_path / "headless"
    headless_dir.mkdir()
    shutil.copyfile(FIXTURES / "headless.env", headless_dir / ".env")
    code, out, err = run_in_process(tmp_path / "igloo-data-2", headless_dir)
    assert code == 0 and "headless .env" in out, err


# --------------------------------------------------------------------------- a headless .env


def test_headless_env_import(tmp_path: Path) -> None:
    data_dir = tmp_path / "igloo-data"
    result = cli(data_dir, str(FIXTURES / "headless.env"))
    assert result.returncode == 0, result.stderr
    headless = EXPECTED["headless"]
    after = stored(data_dir)
    assert after["creds"].group_cred == headless["group_cred"]
    assert after["creds"].share_cred == headless["share_cred"]
    assert list(after["creds"].relays) == headless["relays"]
    assert after["policies"] == headless["policies"]
    assert after["users"] == {}  # a headless installation has no accounts
    assert "API_KEY: not stored in the database; keep the line" in result.stdout
    assert headless["api_key"] not in result.stdout + result.stderr


@pytest.mark.parametrize(("line", "message"), [
    ("SHARE_CRED=bfshare1qqqqbroken", "SHARE_CRED: not a valid share credential"),
    ("GROUP_CRED=", "GROUP_CRED is not set: nothing to import"),
    ("RELAYS=[\"wss://fine.example\", \"https://not-a-relay\"]", "RELAYS:"),
    ("PEER_POLICIES=[{\"pubkey\": \"abc\"}]", "PEER_POLICIES: entry 1: pubkey"),
    ("PEER_POLICIES=[{\"pubkey\": \"" + "ab" * 32 + "\", \"allowRecieve\": false}]",
     "unknown field 'allowRecieve'"),
])
def test_a_bad_headless_env_is_refused(tmp_path: Path, line: str, message: str) -> None:
    name = line.split("=", 1)[0]
    rows = (FIXTURES / "headless.env").read_text().splitlines()
    kept = [row for row in rows if not row.startswith(name + "=")]
    env_file = tmp_path / "bad.env"
    env_file.write_text("\n".join([*kept, line]) + "\n")
    data_dir = tmp_path / "igloo-data"
    code, _, err = run_in_process(data_dir, env_file)
    assert code == 1 and message in err, err
    assert "bfshare1" not in err
    assert_nothing_written(data_dir)


def test_a_placeholder_api_key_is_reported_not_fatal(tmp_path: Path) -> None:
    env_file = tmp_path / "placeholder.env"
    text = (FIXTURES / "headless.env").read_text()
    text = text.replace(EXPECTED["headless"]["api_key"], "your-secure-api-key-here")
    env_file.write_text(text)
    code, out, err = run_in_process(tmp_path / "igloo-data", env_file)
    assert code == 0, err
    assert "API_KEY:" in out and "Igloo would not start with it" in out
