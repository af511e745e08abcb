"""Server-rendered pages owned by the server core: the dashboard and the configure form."""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import BaseHandler
from handlers.dashboard import dashboard_cards
from handlers.status import build_status
from node import NodeManager, validate


class DashboardPage(BaseHandler):
    """GET /dashboard: status summary; peers and live events are filled in by the page's script."""

    def get(self) -> None:
        """Render dashboard.html for a logged-in user."""
        if not self.require_page_auth():
            return
        self.render_page("dashboard.html", status=build_status(self), peers_url="/api/peers",
                         **dashboard_cards(self))


class ConfigurePage(BaseHandler):
    """GET/POST /configure: credentials and relays in a form (XSRF-protected)."""

    def get(self) -> None:
        """Show the form (never pre-filled with credentials)."""
        if not self.require_page_auth():
            return
        self._show()

    def _show(self, error: str | None = None, saved: bool = False, status: int = 200) -> None:
        manager: NodeManager | None = self.node
        self.set_status(status)
        self.render_page(
            "configure.html",
            error=error,
            saved=saved,
            has_credentials=bool(manager and manager.has_credentials()),
            relays="\n".join(manager.relays() if manager else []),
            status=manager.status() if manager else {},
        )

    async def post(self) -> None:
        """Validate and apply; re-show the form with the error naming the field."""
        if not self.require_page_auth():
            return
        manager: NodeManager | None = self.node
        if manager is None:
            raise tornado.web.HTTPError(503, reason="Node not available")
        group = self.get_body_argument("group_cred", "")
        share = self.get_body_argument("share_cred", "")
        relays_text = self.get_body_argument("relays", "")
        try:
            # One URL per line (or comma-separated); a line with spaces in it is refused, not split.
            relays = validate.relay_urls(relays_text.replace(",", "\n").splitlines())
            await manager.apply_credentials(group, share, relays or None)
        except ValueError as exc:
            self._show(error=str(exc), status=400)
            return
        self._show(saved=True)



ROUTES: list[tuple[Any, ...]] = [(r"/dashboard", DashboardPage), (r"/configure", ConfigurePage)]


class NotFoundPage(BaseHandler):
    """Any unknown path: a JSON 404 under /api/, the error page elsewhere."""

    async def prepare(self) -> None:
        """Answer 404 whatever the method."""
        await super().prepare()
        if self.request.path.startswith("/api/"):
            self.set_status(404)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish('{"error":"Not found"}')
            return
        raise tornado.web.HTTPError(404, reason="Not found")

    def check_xsrf_cookie(self) -> None:
        """A 404 needs no XSRF token (the answer is the same either way)."""
