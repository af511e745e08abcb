"""Peer policies, the per-peer partial-signature budget and the approval queue.

These are the operational mitigations for the share leak of bifrost v1 (spec §9.1): every
partial signature a member hands out is a linear equation in its secrets, so a node limits
who may ask (``recv`` policy), how many it hands out per peer and window (budget), and can
hold each request for a human decision (approval mode).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from node.peers import iso


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """``send``: the peer may be asked by us; ``recv``: we answer the peer's sign/ECDH requests."""

    send: bool = True
    recv: bool = True

    def wire_json(self) -> dict[str, bool]:
        """The policy as bifrost sends it in ping and echo replies."""
        return {"send": self.send, "recv": self.recv}


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """An explicit policy as persisted."""

    pubkey: str
    send: bool
    recv: bool
    updated: float


class PolicyStore(Protocol):
    """Persistence for explicit policies (``store.policies`` implements it)."""

    def load_policies(self) -> list[StoredPolicy]: ...
    def save_policy(self, policy: StoredPolicy) -> None: ...
    def delete_policy(self, pubkey: str) -> bool: ...


class ConfiguredPolicy(Protocol):
    """A policy from the server's configuration (PEER_POLICIES); None leaves a direction as it is."""

    @property
    def pubkey(self) -> str: ...
    @property
    def send(self) -> bool | None: ...
    @property
    def recv(self) -> bool | None: ...
    @property
    def label(self) -> str | None: ...
    @property
    def note(self) -> str | None: ...


class PolicyBook:
    """Policies of the group's peers: explicit entries over the default ``{send, recv} = true``."""

    def __init__(
        self,
        peers: Iterable[str],
        store: PolicyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._peers = list(peers)
        self._store = store
        self._clock = clock
        self._explicit: dict[str, StoredPolicy] = {}
        self._configured: dict[str, ConfiguredPolicy] = {}  # entries whose current state came from config
        if store is not None:
            for entry in store.load_policies():
                if entry.pubkey in self._peers:
                    self._explicit[entry.pubkey] = entry

    def get(self, pubkey: str) -> PeerPolicy:
        """The effective policy for ``pubkey`` (unknown keys get nothing)."""
        if pubkey not in self._peers:
            return PeerPolicy(send=False, recv=False)
        entry = self._explicit.get(pubkey)
        return PeerPolicy(entry.send, entry.recv) if entry else PeerPolicy()

    def explicit(self, pubkey: str) -> StoredPolicy | None:
        """The stored entry for ``pubkey``, if any."""
        return self._explicit.get(pubkey)

    def apply_configured(self, policies: Iterable[ConfiguredPolicy]) -> list[str]:
        """Apply configured policies over the stored ones, in memory only; return the keys that are not peers.

        A direction the entry leaves as None keeps its stored (or default) value. A later ``set`` or
        ``remove`` from the dashboard replaces the configured entry until the next start.
        """
        unknown = []
        for policy in policies:
            if policy.pubkey not in self._peers:
                unknown.append(policy.pubkey)
                continue
            current = self.get(policy.pubkey)
            self._explicit[policy.pubkey] = StoredPolicy(
                policy.pubkey,
                current.send if policy.send is None else policy.send,
                current.recv if policy.recv is None else policy.recv,
                self._clock(),
            )
            self._configured[policy.pubkey] = policy
        return unknown

    def set(self, pubkey: str, *, send: bool | None = None, recv: bool | None = None) -> PeerPolicy:
        """Set one or both flags for a group peer; the other keeps its current value."""
        if pubkey not in self._peers:
            raise KeyError(pubkey)
        current = self.get(pubkey)
        entry = StoredPolicy(
            pubkey,
            current.send if send is None else send,
            current.recv if recv is None else recv,
            self._clock(),
        )
        if self._store is not None:
            self._store.save_policy(entry)  # first: a refused write must not leave a policy only in memory
        self._explicit[pubkey] = entry
        self._configured.pop(pubkey, None)
        return self.get(pubkey)

    def remove(self, pubkey: str) -> bool:
        """Drop an explicit entry (back to the default); False when there was none."""
        if pubkey not in self._explicit:
            return False
        if self._store is not None:
            self._store.delete_policy(pubkey)
        del self._explicit[pubkey]
        self._configured.pop(pubkey, None)
        return True

    def summary(self, pubkey: str) -> dict[str, Any]:
        """Igloo Server's policy shape for one peer."""
        entry = self._explicit.get(pubkey)
        effective = self.get(pubkey)
        configured = self._configured.get(pubkey)
        return {
            "pubkey": pubkey,
            "normalizedPubkey": pubkey,
            "allowSend": entry.send if entry else None,
            "allowReceive": entry.recv if entry else None,
            "status": "explicit" if entry else "default",
            "label": configured.label if configured else None,
            "note": configured.note if configured else None,
            "source": ("config" if configured else "user") if entry else None,
            "lastUpdated": iso(entry.updated) if entry else None,
            "effectiveSend": effective.send,
            "effectiveReceive": effective.recv,
            "hasExplicitPolicy": entry is not None,
        }


class BudgetLedger(Protocol):
    """Persistence for what each peer has spent (``store.policies`` implements it), so a restart does not
    hand every peer a fresh budget."""

    def load_spent(self, since: float) -> list[tuple[str, float, int]]: ...
    def record_spent(self, pubkey: str, at: float, count: int) -> None: ...


class SignBudget:
    """At most ``limit`` partial signatures (or ECDH shares) per peer per sliding ``window`` seconds.

    Times are wall-clock seconds so that a ledger's records stay meaningful across restarts.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.time,
                 ledger: BudgetLedger | None = None) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._ledger = ledger
        self._spent: dict[str, deque[tuple[float, int]]] = {}
        self._totals: dict[str, int] = {}  # the sum of each peer's entries, kept with them (no re-summing)
        if ledger is not None:
            for pubkey, at, count in sorted(ledger.load_spent(clock() - window), key=lambda r: r[1]):
                self._spent.setdefault(pubkey, deque()).append((at, count))
                self._totals[pubkey] = self._totals.get(pubkey, 0) + count

    def _used(self, pubkey: str) -> int:
        entries = self._spent.get(pubkey)
        if not entries:
            return 0
        horizon = self._clock() - self.window
        while entries and entries[0][0] <= horizon:
            self._totals[pubkey] -= entries.popleft()[1]
        return self._totals[pubkey]

    def remaining(self, pubkey: str) -> int:
        """How many more the peer may get in the current window."""
        return max(0, self.limit - self._used(pubkey))

    def allows(self, pubkey: str, count: int) -> bool:
        """True when ``count`` more fit in the peer's budget."""
        return self._used(pubkey) + count <= self.limit

    def consume(self, pubkey: str, count: int) -> bool:
        """Spend ``count`` from the peer's budget if it fits; False (and nothing spent) otherwise."""
        if not self.allows(pubkey, count):
            return False
        now = self._clock()
        self._spent.setdefault(pubkey, deque()).append((now, count))
        self._totals[pubkey] = self._totals.get(pubkey, 0) + count
        if self._ledger is not None:
            self._ledger.record_spent(pubkey, now, count)
        return True


@dataclass(slots=True)
class Approval:
    """A request from a peer waiting for an operator's decision."""

    id: str
    kind: str  # "sign" | "ecdh"
    peer: str
    summary: dict[str, Any]
    created: float
    expires: float
    future: asyncio.Future[bool]

    def to_json(self) -> dict[str, Any]:
        """Public description for the dashboard (no secrets: hashes and keys are public)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "peer": self.peer,
            "summary": self.summary,
            "created": iso(self.created),
            "expires": iso(self.expires),
        }


class ApprovalQueue:
    """Pending approvals; each resolves True (approved), False (denied) or times out (False)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pending: dict[str, Approval] = {}
        self._counter = itertools.count(1)

    def pending(self) -> list[Approval]:
        """Approvals still waiting, oldest first."""
        return list(self._pending.values())

    def get(self, approval_id: str) -> Approval | None:
        """One pending approval by id."""
        return self._pending.get(approval_id)

    def open(self, kind: str, peer: str, summary: dict[str, Any], timeout: float) -> Approval:
        """Register a new approval that expires after ``timeout`` seconds."""
        approval_id = f"{next(self._counter)}-{secrets.token_hex(4)}"
        now = self._clock()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        approval = Approval(approval_id, kind, peer, summary, now, now + timeout, future)
        self._pending[approval_id] = approval
        return approval

    async def wait(self, approval: Approval) -> str:
        """Wait for a decision: ``"approved"``, ``"denied"`` or ``"timeout"``."""
        remaining = max(0.0, approval.expires - self._clock())
        try:
            approved = await asyncio.wait_for(asyncio.shield(approval.future), remaining)
        except TimeoutError:
            return "timeout"
        finally:
            self._pending.pop(approval.id, None)
        return "approved" if approved else "denied"

    def decide(self, approval_id: str, approve: bool) -> Approval | None:
        """Resolve a pending approval; None when unknown or already decided."""
        approval = self._pending.pop(approval_id, None)
        if approval is None or approval.future.done():
            return None
        approval.future.set_result(approve)
        return approval

    def cancel_all(self) -> None:
        """Deny everything pending (used when the node stops)."""
        for approval in list(self._pending.values()):
            if not approval.future.done():
                approval.future.set_result(False)
        self._pending.clear()
