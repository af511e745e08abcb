"""Server-rendered pages owned by the server core: the dashboard."""

from __future__ import annotations

from typing import Any

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
