"""GET /api/status: the health document (never a credential), in Igloo Server's shape plus Igloo's fields.

Igloo Server's fields keep their names and types: ``relays`` is a list of URL strings, ``health`` and
``restartInfo`` are there. The per-relay details (state, last error, reconnects) are in ``relayDetails``.

Without authentication the answer is a minimal health document (``public_status``): nothing about the group,
the share, relays, peers, the budget or approvals. Relay URLs have any credentials taken out
(``node.validate.redact_urls_in``): a relay's ``ws://user:pass@host/?auth=…`` never leaves in a response.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

from handlers.base import VERSION, ApiHandler, AuthMixin
from handlers.openapi import ANY_OBJECT, BOOL, INT, STR, arr, obj, op
from node import validate


def iso_now() -> str:
    """The current UTC time as ISO-8601 with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def node_health(details: list[dict[str, Any]], peers: list[dict[str, Any]], active: bool) -> dict[str, Any]:
    """Igloo Server's ``health`` block from what Igloo knows.

    ``isConnected``: the node runs and a relay is connected. ``lastActivity``: the last message from a peer.
    ``lastConnectivityCheck``: the last ping to a peer. ``consecutiveConnectivityFailures``: 0 while
    connected, else the number of relays down (each reconnects on its own; there is no node-wide check to
    count). The ``timeSince…`` fields are milliseconds, as there.
    """
    connected = active and any(relay.get("connected") for relay in details)
    now = time.time()

    def latest(field: str) -> float | None:
        stamps = [stamp for peer in peers if (stamp := _parse_iso(peer.get(field))) is not None]
        return max(stamps) if stamps else None

    activity, check = latest("lastSeen"), latest("lastPingAttempt")

    def iso(stamp: float | None) -> str | None:
        if stamp is None:
            return None
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "isConnected": connected,
        "lastActivity": iso(activity),
        "lastConnectivityCheck": iso(check),
        "consecutiveConnectivityFailures": 0 if connected else sum(not r.get("connected") for r in details),
        "timeSinceLastActivity": None if activity is None else max(0, int((now - activity) * 1000)),
        "timeSinceLastConnectivityCheck": None if check is None else max(0, int((now - check) * 1000)),
    }


def build_status(handler: AuthMixin) -> dict[str, Any]:
    """The /api/status document; the node (when present) contributes through ``node.status()``."""
    config = handler.config
    started: float = handler.application.settings["started_at"]
    status: dict[str, Any] = {
        "serverRunning": True,
        "nodeActive": False,
        "hasCredentials": bool(config.group_cred and config.share_cred),
        "relays": [{"url": url, "state": "idle", "connected": False} for url in config.effective_relays],
    }
    node = handler.node
    if node is not None:
        # The node reports nodeActive, hasCredentials, relays [{url, state, ...}] (and more public fields).
        status.update(node.status())
    details: list[dict[str, Any]] = [r if isinstance(r, dict) else {"url": r} for r in status["relays"]]
    service = getattr(node, "service", None)
    peers = service.peers_json() if service is not None and status["nodeActive"] else []
    status["relays"] = [str(relay.get("url")) for relay in details]
    status["relayDetails"] = details
    status["relayCount"] = len(details)
    status["timestamp"] = iso_now()
    blocked = not status["nodeActive"] and not status["hasCredentials"]
    status["restartInfo"] = {"blockedByCredentials": blocked}
    status["health"] = node_health(details, peers, bool(status["nodeActive"]))
    status["version"] = VERSION
    status["uptime"] = int(time.monotonic() - started)
    status["connections"] = handler.events.connection_count
    status["lastSeq"] = handler.events.last_seq
    return cast(dict[str, Any], validate.redact_urls_in(status))


def public_status() -> dict[str, Any]:
    """What an unauthenticated caller learns: the server answers."""
    return {"serverRunning": True, "status": "ok", "timestamp": iso_now()}


class StatusApi(ApiHandler):
    """GET /api/status."""

    openapi = {"get": op("Health; with authentication the signer's state too (never a credential)",
                         description="Without authentication only `{serverRunning, status, timestamp}`. "
                                     "Relay URLs never carry their credentials (`ws://***@host/?***`).",
                         ok={"anyOf": [
                             obj({"serverRunning": BOOL, "nodeActive": BOOL, "hasCredentials": BOOL,
                                  "relays": arr({"anyOf": [STR, ANY_OBJECT]}), "relayCount": INT,
                                  "timestamp": STR, "version": STR, "uptime": INT, "connections": INT,
                                  "lastSeq": INT},
                                 ["serverRunning", "nodeActive", "hasCredentials", "relays", "version"],
                                 additionalProperties=True),
                             obj({"serverRunning": BOOL, "status": {"const": "ok"}, "timestamp": STR},
                                 ["serverRunning", "status", "timestamp"], additionalProperties=False),
                         ]})}

    public = True

    def get(self) -> None:
        """The full document when authenticated (or AUTH_ENABLED=false), the health document otherwise."""
        self.write_json(build_status(self) if self.principal is not None else public_status())


ROUTES: list[tuple[Any, ...]] = [(r"/api/status", StatusApi)]
