"""The dashboard's live cards: relays, peers and signing activity, rendered on the server.

``dashboard_cards`` gives the dashboard page the context of its cards; ``GET /dashboard/cards/<name>``
renders one card's content again (the page's scripts fetch it when the event stream says something
changed), so the SVG charts are always drawn here. ``GET /api/activity`` gives the same numbers as JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import tornado.web

from handlers.base import ApiHandler, AuthMixin, BaseHandler
from handlers.charts import activity_summary, activity_svg, ago, sparkline_svg
from handlers.openapi import ANY_OBJECT, INT, arr, obj, op
from handlers.relays import relay_settings
from handlers.roles import ADMIN, allows
from node import NodeManager, NodeService, validate
from store.activity import (
    ECDH,
    FAILED,
    OK,
    REFUSED,
    REQUESTER,
    RESPONDER,
    SIGN,
    ActivitySeries,
    ActivityStore,
)

# The event types the log's type filter offers before any arrives (docs/events.md).
EVENT_TYPES = ("system", "info", "warn", "error", "ready", "bifrost", "sign", "ecdh", "peer-status-internal",
               "peer-ping-internal", "relay-status-internal")

CARD_TEMPLATES = {"relays": "_relays.html", "peers": "_peers.html", "activity": "_activity.html"}


def can_change(handler: AuthMixin) -> bool:
    """Whether the caller gets the relay editor and the policy controls (administrators only; the writes
    are checked again by ``NodeApi.require_change_rights``)."""
    return allows(handler.current_user, ADMIN)


def _manager(handler: AuthMixin) -> NodeManager | None:
    node = handler.node
    return node if isinstance(node, NodeManager) else None


def _running(manager: NodeManager | None) -> NodeService | None:
    if manager is None or manager.service is None or not manager.service.active:
        return None
    return manager.service


def relay_card(handler: AuthMixin) -> dict[str, Any]:
    """The relays card: the list with each relay's state, round trip and last error; where it comes from."""
    manager = _manager(handler)
    if manager is None:
        urls = [validate.redact_relay_url(url) for url in handler.config.effective_relays]
        details = [{"url": url, "state": "idle", "connected": False, "lastError": None, "rtt": None}
                   for url in urls]
        return {"editable": False, "relays": urls, "relayDetails": details, "source": "environment",
                "sourceText": "", "override": False, "default": {"relays": urls, "source": "environment"},
                "warning": None, "nodeActive": False, "connected": 0}
    settings = relay_settings(manager)
    settings["editable"] = can_change(handler)
    settings["connected"] = sum(1 for r in settings["relayDetails"] if r.get("connected"))
    return settings


def peer_rows(service: NodeService) -> list[dict[str, Any]]:
    """One row per peer: status, policy, the budget spent in the current window and a latency sparkline."""
    rows = []
    budget = service.budget
    for pubkey in service.peers:
        status = service.peer_table.status_json(pubkey)
        policy = service.policies.summary(pubkey)
        used = budget.limit - budget.remaining(pubkey)
        rows.append({
            **status,
            "short": f"{pubkey[:8]}…{pubkey[-8:]}",
            "seen": ago(status["lastSeen"]),
            "label": policy["label"],
            "send": policy["effectiveSend"],
            "recv": policy["effectiveReceive"],
            "explicit": policy["hasExplicitPolicy"],
            "policySource": policy["source"],
            "budgetUsed": used,
            "budgetLimit": budget.limit,
            "budgetLow": used >= budget.limit * 0.8,
            "spark": sparkline_svg(service.peer_table.history(pubkey)),
        })
    return rows


def peer_card(handler: AuthMixin) -> dict[str, Any]:
    """The peers card: ``state`` none | idle | running, the rows and the budget's terms."""
    manager = _manager(handler)
    service = _running(manager)
    if service is None:
        return {"state": "none" if manager is None else "idle", "peers": [], "online": 0, "total": 0,
                "windowMinutes": 0, "budgetLimit": 0, "editable": False, "demo": False}
    rows = peer_rows(service)
    return {
        "state": "running",
        "peers": rows,
        "online": sum(1 for r in rows if r["online"]),
        "total": len(rows),
        "windowMinutes": round(service.budget.window / 60),
        "budgetLimit": service.budget.limit,
        "editable": can_change(handler),
        "demo": bool(manager and manager.demo),
    }


def activity_card(handler: AuthMixin, hours: int = 24) -> dict[str, Any]:
    """The activity card: the chart, its sentence, the totals."""
    series = ActivityStore(handler.db).series(hours)
    return {
        "chart": activity_svg(series),
        "summary": activity_summary(series),
        "hours": hours,
        "totals": _totals(series),
    }


def _totals(series: ActivitySeries) -> dict[str, int]:
    return {
        "signRequested": series.total(SIGN, REQUESTER, OK),
        "ecdhRequested": series.total(ECDH, REQUESTER, OK),
        "signAnswered": series.total(SIGN, RESPONDER, OK),
        "ecdhAnswered": series.total(ECDH, RESPONDER, OK),
        "failed": series.total(None, REQUESTER, FAILED),
        "refused": series.total(None, RESPONDER, REFUSED),
    }


def dashboard_cards(handler: AuthMixin) -> dict[str, Any]:
    """Everything the dashboard's own cards need (``relay_card``, ``peer_card``, ``activity_card``, types)."""
    return {
        "relay_card": relay_card(handler),
        "peer_card": peer_card(handler),
        "activity_card": activity_card(handler),
        "log_types": EVENT_TYPES,
    }


class DashboardCardPart(BaseHandler):
    """GET /dashboard/cards/(relays|peers|activity): one card's content as HTML (401 when signed out)."""

    path_params = ("card",)

    def get(self, name: str) -> None:
        """Render the card's template with fresh data."""
        if self.current_user is None:
            self.set_status(401)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("Authentication required")
            return
        template = self.templates.get_template(CARD_TEMPLATES[name])
        html = template.render(render_slots=True, **dashboard_cards(self))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


class ActivityApi(ApiHandler):
    """GET /api/activity?hours=24 → ``{bucketSeconds, buckets: [{start, sign, ecdh}], totals}``."""

    openapi = {"get": op(
        "Signing and ECDH activity per time bucket, as requester and as responder",
        description="Oldest bucket first. Per kind (sign, ecdh): requester {ok, failed} and responder "
                    "{ok, refused}. Kept for a week.",
        query={"hours": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24}},
        ok=obj({"bucketSeconds": INT, "buckets": arr(ANY_OBJECT), "totals": ANY_OBJECT},
               ["bucketSeconds", "buckets", "totals"]),
        errors=(400,),
    )}

    def get(self) -> None:
        """Counts per bucket, oldest first; ``hours`` from 1 to 168 (the retention)."""
        raw = self.get_query_argument("hours", "24")
        if not raw.isdigit() or not 1 <= int(raw) <= 168:
            raise tornado.web.HTTPError(400, reason="hours: a whole number from 1 to 168")
        series = ActivityStore(self.db).series(int(raw))
        buckets = []
        for bucket in series.buckets:
            entry: dict[str, Any] = {"start": datetime.fromtimestamp(bucket.start, UTC).isoformat().replace(
                "+00:00", "Z")}
            for kind in (SIGN, ECDH):
                entry[kind] = {
                    "requester": {"ok": bucket.count(kind, REQUESTER, OK),
                                  "failed": bucket.count(kind, REQUESTER, FAILED)},
                    "responder": {"ok": bucket.count(kind, RESPONDER, OK),
                                  "refused": bucket.count(kind, RESPONDER, REFUSED)},
                }
            buckets.append(entry)
        body = {"bucketSeconds": series.bucket_seconds, "buckets": buckets, "totals": _totals(series)}
        self.write_json(body)


ROUTES: list[tuple[Any, ...]] = [
    (r"/dashboard/cards/(relays|peers|activity)", DashboardCardPart),
    (r"/api/activity", ActivityApi),
]
