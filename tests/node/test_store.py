"""Credentials encrypted at rest and persisted peer policies, on a real SQLite file."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from node.policy import StoredPolicy
from store.credentials import CredentialsError, CredentialStore
from store.db import Database
from store.policies import SqlitePolicyStore

GROUP = "bfgroup1" + "q" * 80
SHARE = "bfshare1" + "p" * 70 + "zzsecretsharetail"


def test_credentials_round_trip_and_never_plain_on_disk(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    db = Database.open_in(tmp_path)
    store = CredentialStore(db, key)
    assert not store.exists() and store.load() is None
    store.save(GROUP, SHARE, ["ws://127.0.0.1:1/"])
    loaded = store.load()
    assert loaded is not None and loaded.share_cred == SHARE and loaded.group_cred == GROUP
    assert loaded.relays == ("ws://127.0.0.1:1/",) and store.relays() == ("ws://127.0.0.1:1/",)
    assert SHARE not in repr(loaded)
    db.close()
    for path in tmp_path.iterdir():  # db file plus WAL/SHM
        data = path.read_bytes()
        assert b"zzsecretsharetail" not in data and b"bfshare1" not in data
    reopened = CredentialStore(Database.open_in(tmp_path), key)
    assert reopened.load().share_cred == SHARE  # type: ignore[union-attr]
    with pytest.raises(CredentialsError):
        CredentialStore(Database.open_in(tmp_path), secrets.token_bytes(32)).load()
    reopened.clear()
    assert not reopened.exists()


def test_policy_store(tmp_path: Path) -> None:
    store = SqlitePolicyStore(Database.open_in(tmp_path))
    store.save_policy(StoredPolicy("a" * 64, True, False, 1.0))
    store.save_policy(StoredPolicy("a" * 64, False, False, 2.0))
    again = SqlitePolicyStore(Database.open_in(tmp_path))
    assert again.load_policies() == [StoredPolicy("a" * 64, False, False, 2.0)]
    assert again.delete_policy("a" * 64) and not again.delete_policy("a" * 64)
