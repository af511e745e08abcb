"""GET /api/status: public health summary (never a credential)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from handlers.base import VERSION, ApiHandler, AuthMixin
from handlers.openapi import ANY_OBJECT, BOOL, INT, STR, arr, obj, op


def build_status(handler: AuthMixin) -> dict[str, Any]:
    """The /api/status document; the node (when present) contributes through ``node.status()``."""
    config = handler.config
    started: float = handler.application.settings["started_at"]
    status: dict[str, Any] = {
        "serverRunning": True,
        "nodeActive": False,
        "hasCredentials": bool(config.group_cred and config.share_cred),
        "relays": list(config.effective_relays),
    }
    node = handler.node
    if node is not None:
        # The node reports nodeActive, hasCredentials, relays (and may add more public fields).
        status.update(node.status())
    status["relayCount"] = len(status["relays"])
    status["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    status["version"] = VERSION
    status["uptime"] = int(time.monotonic() - started)
    status["connections"] = handler.events.connection_count
    status["lastSeq"] = handler.events.last_seq
    return status


class StatusApi(ApiHandler):
    """GET /api/status."""

    openapi = {"get": op("Health and the signer's public state (never a credential)",
                         ok=obj({"serverRunning": BOOL, "nodeActive": BOOL, "hasCredentials": BOOL,
                                 "relays": arr({"anyOf": [STR, ANY_OBJECT]}), "relayCount": INT,
                                 "timestamp": STR, "version": STR, "uptime": INT, "connections": INT,
                                 "lastSeq": INT},
                                ["serverRunning", "nodeActive", "hasCredentials", "relays", "version"],
                                additionalProperties=True))}

    public = True

    def get(self) -> None:
        """Return the status document."""
        self.write_json(build_status(self))


ROUTES: list[tuple[Any, ...]] = [(r"/api/status", StatusApi)]
