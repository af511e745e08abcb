"""Server-rendered pages owned by the server core: the dashboard."""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import BaseHandler
from handlers.status import build_status


class DashboardPage(BaseHandler):
    """GET /dashboard: status summary; peers and live events are filled in by the page's script."""

    def get(self) -> None:
        """Render dashboard.html for a logged-in user."""
        if not self.require_page_auth():
            return
        self.render_page("dashboard.html", status=build_status(self), peers_url="/api/peers")


ROUTES: list[tuple[Any, ...]] = [(r"/dashboard", DashboardPage)]


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
