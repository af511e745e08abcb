"""Credentials encrypted at rest and persisted peer policies, on a real SQLite file."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from node.policy import SignBudget, StoredPolicy
from store.credentials import CredentialsError, CredentialStore
from store.db import Database
from store.policies import SqliteBudgetLedger, SqlitePolicyStore

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


def test_budget_ledger_survives_a_restart(tmp_path: Path) -> None:
    now = [1_000_000.0]
    db = Database.open_in(tmp_path)
    budget = SignBudget(5, 100, lambda: now[0], SqliteBudgetLedger(db, keep=100))
    assert budget.consume("a" * 64, 3) and budget.consume("b" * 64, 1)
    db.close()

    now[0] += 50  # restarted within the window: what was spent still counts
    db = Database.open_in(tmp_path)
    budget = SignBudget(5, 100, lambda: now[0], SqliteBudgetLedger(db, keep=100))
    assert budget.remaining("a" * 64) == 2 and budget.remaining("b" * 64) == 4
    assert not budget.consume("a" * 64, 3)
    db.close()

    now[0] += 60  # the first records left the window, and the ledger forgets them
    db = Database.open_in(tmp_path)
    budget = SignBudget(5, 100, lambda: now[0], SqliteBudgetLedger(db, keep=100))
    assert budget.remaining("a" * 64) == 5
    assert db.query_all("SELECT COUNT(*) AS n FROM sign_budget")[0]["n"] == 0
    db.close()


def test_budget_ledger_write_failure_keeps_counting_in_memory(tmp_path: Path) -> None:
    db = Database.open_in(tmp_path)
    ledger = SqliteBudgetLedger(db, keep=100)
    budget = SignBudget(2, 100, ledger=ledger)
    db.execute("DROP TABLE sign_budget")  # every ledger write now fails
    assert budget.consume("a" * 64, 2)
    assert not budget.consume("a" * 64, 1)
    db.close()
