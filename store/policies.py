"""Peer policies (allow send / allow receive per peer) and the signing budget's ledger, in SQLite."""

from __future__ import annotations

import logging
import sqlite3

from node.policy import StoredPolicy
from store.db import Database

log = logging.getLogger("igloo.store")


class SqlitePolicyStore:
    """``node.policy.PolicyStore`` on the Igloo database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load_policies(self) -> list[StoredPolicy]:
        """Every stored policy."""
        rows = self._db.query_all(
            "SELECT pubkey, allow_send, allow_receive, updated_at FROM peer_policies ORDER BY pubkey"
        )
        return [StoredPolicy(r["pubkey"], bool(r["allow_send"]), bool(r["allow_receive"]), r["updated_at"])
                for r in rows]

    def save_policy(self, policy: StoredPolicy) -> None:
        """Insert or replace one policy."""
        self._db.execute(
            "INSERT OR REPLACE INTO peer_policies (pubkey, allow_send, allow_receive, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (policy.pubkey, int(policy.send), int(policy.recv), policy.updated),
        )

    def delete_policy(self, pubkey: str) -> bool:
        """Remove one policy; False when none was stored."""
        return self._db.execute("DELETE FROM peer_policies WHERE pubkey = ?", (pubkey,)).rowcount > 0


class SqliteBudgetLedger:
    """``node.policy.BudgetLedger``: what each peer was given, so a restart does not reset the budget."""

    def __init__(self, db: Database, keep: float) -> None:
        self._db = db
        self._keep = keep  # seconds of history worth keeping (the budget window)

    def load_spent(self, since: float) -> list[tuple[str, float, int]]:
        """Records newer than ``since`` (older ones are deleted)."""
        try:
            self._db.execute("DELETE FROM sign_budget WHERE spent_at <= ?", (since,))
        except sqlite3.Error as exc:
            log.warning("could not prune the signing budget ledger: %s", exc)
        rows = self._db.query_all(
            "SELECT pubkey, spent_at, count FROM sign_budget WHERE spent_at > ?", (since,)
        )
        return [(r["pubkey"], r["spent_at"], r["count"]) for r in rows]

    def record_spent(self, pubkey: str, at: float, count: int) -> None:
        """Append one record; a storage fault is logged, never raised (the in-memory budget still counts)."""
        try:
            self._db.execute("INSERT INTO sign_budget (pubkey, spent_at, count) VALUES (?, ?, ?)",
                             (pubkey, at, count))
            self._db.execute("DELETE FROM sign_budget WHERE spent_at <= ?", (at - self._keep,))
        except sqlite3.Error as exc:
            log.warning("could not record a signing budget entry: %s", exc)
