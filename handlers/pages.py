"""Server-rendered pages owned by the server core: the dashboard and the configure form."""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import BaseHandler
from handlers.dashboard import dashboard_cards
from handlers.keys import keyset_name, keyset_names
from handlers.roles import ADMIN, PUBLIC
from handlers.status import build_status
from handlers.throttle import ENV_WRITE
from node import NodeManager, keytools, validate
from store.keyset import check_name


class DashboardPage(BaseHandler):
    """GET /dashboard: status summary; peers and live events are filled in by the page's script."""

    def get(self) -> None:
        """Render dashboard.html for a logged-in user."""
        if not self.require_page_auth():
            return
        self.render_page("dashboard.html", status=build_status(self), peers_url="/api/peers",
                         keyset_name=keyset_name(self), **dashboard_cards(self))


class ConfigurePage(BaseHandler):
    """GET/POST /configure: credentials, relays and the keyset's name in a form (XSRF-protected). Relays are
    shown without their credentials; a redacted URL sent back keeps those of the relay it names."""

    access = ADMIN
    rate_limits = {"POST": ENV_WRITE}

    def get(self) -> None:
        """Show the form (never pre-filled with credentials)."""
        if not self.require_page_auth():
            return
        self._show()

    def _show(self, error: str | None = None, saved: bool = False, status: int = 200, **extra: Any) -> None:
        manager: NodeManager | None = self.node
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        extra.setdefault("check", None)
        extra.setdefault("group", "")
        extra.setdefault("notice", None)
        self.render_page(
            "configure.html",
            error=error,
            saved=saved,
            has_credentials=bool(manager and manager.has_credentials()),
            relays="\n".join(validate.redact_relay_url(url) for url in (manager.relays() if manager else [])),
            status=validate.redact_urls_in(manager.status()) if manager else {},
            keyset_name=keyset_name(self),
            **extra,
        )

    async def post(self) -> None:
        """Validate and apply; re-show the form with the error naming the field."""
        if not self.require_page_auth():
            return
        manager = self.manager
        group = self.get_body_argument("group_cred", "")
        share = self.get_body_argument("share_cred", "")
        relays_text = self.get_body_argument("relays", "")
        try:
            # One URL per line (or comma-separated); a line with spaces in it is refused, not split.
            relays = validate.relay_urls(relays_text.replace(",", "\n").splitlines())
            relays = validate.unredact_relay_urls(relays, manager.relays())
            name_field = self.get_body_argument("keyset_name", None)
            check_name(name_field)
            await manager.apply_credentials(group, share, relays or None)
            if name_field is not None and (names := keyset_names(self)) is not None:
                names.set(name_field)
        except ValueError as exc:
            self._show(error=str(exc), status=400, group=group[:4096])
            return
        self._show(saved=True)


class ConfigureCheckPage(ConfigurePage):
    """POST /configure/check: what the pasted credentials hold, without saving (the form's "Check" button,
    for browsers without JavaScript; static/js/configure.js shows the same as you paste)."""

    async def post(self) -> None:
        """Show the decoded group and share; the share is not sent back into the page."""
        if not self.require_page_auth():
            return
        group = self.get_body_argument("group_cred", "")[:4096]
        share = self.get_body_argument("share_cred", "")[:4096]
        self._show(check=keytools.inspect_keyset(group or None, share or None), group=group)


class ConfigureNamePage(ConfigurePage):
    """POST /configure/name: rename the keyset without pasting the credentials again."""

    async def post(self) -> None:
        """Store the name (empty clears it)."""
        if not self.require_page_auth():
            return
        names = keyset_names(self)
        if names is None:
            raise tornado.web.HTTPError(503, reason="Not available")
        try:
            name = names.set(self.get_body_argument("keyset_name", ""))
        except ValueError as exc:
            self._show(error=str(exc), status=400)
            return
        self.events.publish("info", "Keyset renamed" if name else "Keyset name cleared", {"name": name})
        self._show(notice="Keyset name saved." if name else "Keyset name cleared.")


class ConfigureClearPage(ConfigurePage):
    """POST /configure/clear (with the confirmation box ticked): stop the signer, forget its credentials."""

    async def post(self) -> None:
        """Clear the stored credentials and the keyset name."""
        if not self.require_page_auth():
            return
        manager = self.manager
        if self.get_body_argument("confirm", "") != "yes":
            self._show(error="Tick the box to confirm: the signer stops and its share is deleted here.",
                       status=400)
            return
        try:
            cleared = await manager.clear_credentials()
        except ValueError as exc:
            self._show(error=str(exc), status=409)
            return
        names = keyset_names(self)
        if names is not None:
            names.clear()
        self._show(notice="Stored credentials cleared: the signer has stopped." if cleared
                   else "There were no stored credentials.")



ROUTES: list[tuple[Any, ...]] = [
    (r"/dashboard", DashboardPage),
    (r"/configure", ConfigurePage),
    (r"/configure/check", ConfigureCheckPage),
    (r"/configure/name", ConfigureNamePage),
    (r"/configure/clear", ConfigureClearPage),
]


class NotFoundPage(BaseHandler):
    """Any unknown path: a JSON 404 under /api/, the error page elsewhere."""

    access = PUBLIC  # the answer is the same for everyone

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
