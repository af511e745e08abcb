"""GET /api/status: a minimal health document for anyone, the full status for an authenticated caller.

Relay URLs in the document have any credentials taken out (``node.validate.redact_urls_in``): a relay's
``ws://user:pass@host/?auth=…`` never leaves in a response.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

from handlers.base import VERSION, ApiHandler, AuthMixin
from node import validate


def utc_timestamp() -> str:
    """Now, as ISO-8601 UTC with milliseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_status() -> dict[str, Any]:
    """What an unauthenticated caller learns: the server answers. Nothing about the group, the share, its
    relays, peers, budget or approvals (an outsider could use any of it)."""
    return {"serverRunning": True, "status": "ok", "timestamp": utc_timestamp()}


def build_status(handler: AuthMixin) -> dict[str, Any]:
    """The full /api/status document; the node (when present) contributes through ``node.status()``."""
    config = handler.config
    started: float = handler.application.settings["started_at"]
    status: dict[str, Any] = {
        "serverRunning": True,
        "status": "ok",
        "nodeActive": False,
        "hasCredentials": bool(config.group_cred and config.share_cred),
        "relays": list(config.effective_relays),
    }
    node = handler.node
    if node is not None:
        # The node reports nodeActive, hasCredentials, relays (and may add more public fields).
        status.update(node.status())
    status["relayCount"] = len(status["relays"])
    status["timestamp"] = utc_timestamp()
    status["version"] = VERSION
    status["uptime"] = int(time.monotonic() - started)
    status["connections"] = handler.events.connection_count
    status["lastSeq"] = handler.events.last_seq
    return cast(dict[str, Any], validate.redact_urls_in(status))


class StatusApi(ApiHandler):
    """GET /api/status."""

    public = True

    def get(self) -> None:
        """The full document when authenticated (or AUTH_ENABLED=false), the health document otherwise."""
        self.write_json(build_status(self) if self.principal is not None else public_status())


ROUTES: list[tuple[Any, ...]] = [(r"/api/status", StatusApi)]
