"""Sessions and requests as the bunker keeps them, the request state machine, and the storage Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from node.nip46.permissions import Permissions

# Session states. A revoked or logged-out session is deleted: the client must pair again with a new secret.
ACTIVE, PAUSED = "active", "paused"
BUNKER, NOSTRCONNECT = "bunker", "nostrconnect"

# Request states: pending → approved → completed | failed, and pending → denied | expired. Nothing else.
PENDING, APPROVED, COMPLETED, FAILED, DENIED, EXPIRED = (
    "pending", "approved", "completed", "failed", "denied", "expired")
REQUEST_STATES = (PENDING, APPROVED, COMPLETED, FAILED, DENIED, EXPIRED)
FINAL_STATES = frozenset({COMPLETED, FAILED, DENIED, EXPIRED})
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, DENIED, EXPIRED}),
    APPROVED: frozenset({COMPLETED, FAILED}),
}


class InvalidTransition(ValueError):
    """A request cannot move from its state to the one asked for (approving twice signs nothing twice)."""


@dataclass
class Session:
    """One paired client (its throw-away client key) and what it may do."""

    client_pubkey: str
    origin: str  # BUNKER | NOSTRCONNECT
    user_pubkey: str  # the group key it was paired with; a different key ends the session
    status: str = ACTIVE
    relays: list[str] = field(default_factory=list)  # [] = the bunker's relays
    permissions: Permissions = field(default_factory=Permissions)
    requested: list[str] = field(default_factory=list)  # what the client asked for; never granted by itself
    profile: dict[str, str] = field(default_factory=dict)  # unauthenticated display hints
    secret_hash: str = ""  # sha256 of the secret that paired it
    created_at: float = 0.0
    updated_at: float = 0.0
    last_active_at: float | None = None

    def to_json(self, bunker_relays: list[str]) -> dict[str, Any]:
        """Igloo Server's session shape plus ``origin``, ``requested`` and ``userPubkey``."""
        return {
            "pubkey": self.client_pubkey,
            "status": self.status,
            "origin": self.origin,
            "profile": dict(self.profile),
            "relays": list(self.relays or bunker_relays),
            "policy": self.permissions.to_json(),
            "requested": list(self.requested),
            "userPubkey": self.user_pubkey,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "last_active_at": int(self.last_active_at) if self.last_active_at else None,
        }


@dataclass
class RequestRecord:
    """One request from a paired client that does real work (sign_event, nip04/nip44)."""

    id: str
    client_pubkey: str
    request_id: str  # the client's own id, answered with
    method: str
    status: str
    preview: dict[str, Any]
    created_at: float
    expires_at: float
    relay: str = ""  # where it arrived (answers go there too)
    error: str | None = None
    decided_at: float | None = None
    completed_at: float | None = None
    params: list[str] = field(default_factory=list, repr=False)  # in memory only: may hold plaintext

    def advance(self, status: str, now: float, error: str | None = None) -> None:
        """Move to ``status`` or raise ``InvalidTransition``."""
        if status not in TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(f"request is {self.status}; it cannot become {status}")
        self.status = status
        if status in (APPROVED, DENIED, EXPIRED):
            self.decided_at = now
        if status in FINAL_STATES:
            self.completed_at = now
            self.params = []
        if error is not None:
            self.error = error

    def to_json(self) -> dict[str, Any]:
        """The request as the API and the event stream show it (never its params)."""
        return {
            "id": self.id,
            "session": self.client_pubkey,
            "requestId": self.request_id,
            "method": self.method,
            "status": self.status,
            "preview": dict(self.preview),
            "error": self.error,
            "createdAt": int(self.created_at),
            "expiresAt": int(self.expires_at),
            "decidedAt": int(self.decided_at) if self.decided_at else None,
            "completedAt": int(self.completed_at) if self.completed_at else None,
        }


class SecretCheck:
    """Outcomes of presenting a pairing secret."""

    OK, USED, EXPIRED, UNKNOWN = "ok", "used", "expired", "unknown"


class Nip46Storage(Protocol):
    """Where the bunker keeps its state (``store.nip46.Nip46Store`` on SQLite)."""

    def load_transport_key(self) -> bytes | None: ...
    def save_transport_key(self, seckey: bytes) -> None: ...
    def load_relays(self) -> list[str] | None: ...
    def save_relays(self, relays: list[str] | None) -> None: ...
    def add_secret(self, secret_hash: str, created_at: float, expires_at: float) -> None: ...
    def use_secret(self, secret_hash: str, now: float, client_pubkey: str) -> str: ...
    def purge_secrets(self, now: float) -> int: ...
    def load_sessions(self) -> list[Session]: ...
    def save_session(self, session: Session) -> None: ...
    def delete_session(self, client_pubkey: str) -> bool: ...
    def delete_sessions(self) -> int: ...
    def save_request(self, record: RequestRecord) -> None: ...
    def load_requests(self, statuses: list[str] | None, limit: int) -> list[RequestRecord]: ...
    def get_request(self, request_id: str) -> RequestRecord | None: ...
    def seen_request(self, client_pubkey: str, client_request_id: str) -> bool: ...
    def delete_request(self, request_id: str) -> bool: ...
    def prune_requests(self, before: float) -> int: ...
