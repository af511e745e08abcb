"""Signing activity: which node events count as a signature or ECDH round, on which side, how it ended.

The node reports every round through its events (docs/api.md, "Node events"). This module reads those
events back into counts, so the dashboard's 24-hour chart is fed by exactly what the event log shows and the
node needs no second reporting path. ``requester`` rounds are ones this signer started (it asked its
peers); ``responder`` rounds are ones a peer started (this signer answered, or refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

SIGN, ECDH = "sign", "ecdh"
REQUESTER, RESPONDER = "requester", "responder"
OK, REFUSED, FAILED = "ok", "refused", "failed"

_LABELS = {SIGN: "Signature", ECDH: "ECDH"}


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One counted outcome: ``count`` signatures (a batch counts each sighash) or ECDH shares."""

    kind: str  # sign | ecdh
    role: str  # requester | responder
    outcome: str  # ok | refused (this signer said no to a peer) | failed (this signer's own request failed)
    count: int = 1


class ActivityLog(Protocol):
    """Where records go (``store.activity.ActivityStore`` implements it); must not raise."""

    def record(self, record: ActivityRecord) -> None: ...


def classify(type_: str, message: str, data: Any) -> ActivityRecord | None:
    """The activity an event reports, or None when it reports none (most events)."""
    if type_ not in _LABELS:
        return None
    label = _LABELS[type_]
    body = data if isinstance(data, dict) else {}
    if message == f"{label} shares aggregated":
        return ActivityRecord(type_, REQUESTER, OK, _count(body.get("signatures")))
    if message == f"{label} response sent":
        return ActivityRecord(type_, RESPONDER, OK, _count(body.get("sighashes")))
    if message.startswith(f"{label} share aggregation failed"):
        return ActivityRecord(type_, REQUESTER, FAILED)
    if message.startswith(f"{label} request rejected"):
        # A peer's request refused here names the peer ("from"); this signer's own attempt timing out
        # does not.
        if "from" in body:
            return ActivityRecord(type_, RESPONDER, REFUSED)
        return ActivityRecord(type_, REQUESTER, FAILED)
    return None


def _count(items: object) -> int:
    return len(items) if isinstance(items, list) and items else 1
