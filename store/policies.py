"""Peer policies (allow send / allow receive per peer) persisted in SQLite."""

from __future__ import annotations

from node.policy import StoredPolicy
from store.db import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_policies (
    pubkey TEXT PRIMARY KEY,
    allow_send INTEGER NOT NULL,
    allow_receive INTEGER NOT NULL,
    updated_at REAL NOT NULL
)
"""


class SqlitePolicyStore:
    """``node.policy.PolicyStore`` on the Igloo database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.execute(_SCHEMA)

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
