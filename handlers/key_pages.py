"""Key pages for administrators: Recover (the group's nsec from threshold shares) and New keyset (k-of-n).

Both are plain forms and work without JavaScript (copy buttons aside; downloads are links). What they show
(the nsec, the shares) is in that one answer only: never stored, logged or put in an event, and the answer is
not cached. Each form carries a single-use token (``handlers.form_tokens``), so reloading the answer cannot
run the form again: it shows the form with a note instead. Recovery shares one limit with
``POST /api/recover`` (``handlers.keys.recovery_wait``).
"""

from __future__ import annotations

from typing import Any

from handlers.base import BaseHandler
from handlers.form_tokens import ALREADY_USED, FIELD, FormTokens
from handlers.keys import recovery_wait
from handlers.roles import ADMIN
from handlers.throttle import RECOVERY
from node import keytools

MAX_SHARES = 100
MAX_FIELD = 16 * 1024


class KeyPage(BaseHandler):
    """Base: administrators, nothing cached."""

    access = ADMIN

    def show(self, template: str, status: int = 200, **ctx: Any) -> None:
        """Render with ``Cache-Control: no-store`` (the back button must not bring a secret back) and a fresh
        single-use form token."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        tokens: FormTokens = self.application.settings["form_tokens"]
        self.render_page(template, form_token=tokens.issue(), **ctx)

    def fresh_submission(self) -> bool:
        """Spend the form's single-use token; False when it was spent already (a reload) or is unknown."""
        tokens: FormTokens = self.application.settings["form_tokens"]
        return tokens.redeem(self.get_body_argument(FIELD, "")[:64])

    def field(self, name: str) -> str:
        """A form field, bounded."""
        return self.get_body_argument(name, "")[:MAX_FIELD]


class RecoverPage(KeyPage):
    """GET/POST /recover: paste the group and threshold-many shares; the nsec is shown once."""

    rate_limits = {"POST": RECOVERY}  # per client, beside the server-wide recovery limit

    def get(self) -> None:
        """The form."""
        if self.require_page_auth():
            self.show("recover.html", error=None, nsec=None, group="")

    def post(self) -> None:
        """Recover, rate-limited; one event says a recovery happened (never what it recovered)."""
        if not self.require_page_auth():
            return
        if not self.fresh_submission():
            self.show("recover.html", 409, error=ALREADY_USED, nsec=None, group="")
            return
        group = self.field("group").strip()
        shares = [line.strip() for line in self.field("shares").splitlines() if line.strip()][:MAX_SHARES]
        if not group or not shares:
            error = "group and shares: both are required"
            self.show("recover.html", 400, error=error, nsec=None, group=group)
            return
        wait = recovery_wait(self)
        if wait:
            self.set_header("Retry-After", str(wait))
            self.show("recover.html", 429, error=f"Too many recoveries: try again in {wait} seconds.",
                      nsec=None, group=group)
            return
        try:
            nsec = keytools.recover(group, shares)
        except ValueError as exc:
            self.show("recover.html", 400, error=str(exc), nsec=None, group=group)
            return
        self.events.publish("warn", "A recovery happened", {"sharesUsed": len(shares), "via": "page"})
        self.show("recover.html", error=None, nsec=nsec, group="")


class KeysetPage(KeyPage):
    """GET/POST /keyset: a new k-of-n keyset, optionally splitting an existing nsec; each share shown once."""

    def get(self) -> None:
        """The form."""
        if self.require_page_auth():
            self.show("keyset.html", error=None, keyset=None, threshold=2, total=3)

    def post(self) -> None:
        """Generate and show the keyset."""
        if not self.require_page_auth():
            return
        if not self.fresh_submission():
            self.show("keyset.html", 409, error=ALREADY_USED, keyset=None, threshold=2, total=3)
            return
        raw_threshold, raw_total = self.field("threshold")[:4], self.field("total")[:4]
        secret = self.field("nsec").strip() or None
        try:
            threshold, total = int(raw_threshold), int(raw_total)
        except ValueError:
            error = "threshold and total: whole numbers are required"
            self.show("keyset.html", 400, error=error, keyset=None, threshold=2, total=3)
            return
        try:
            keyset = keytools.keygen(threshold=threshold, total=total, secret=secret)
        except ValueError as exc:
            self.show("keyset.html", 400, error=str(exc), keyset=None, threshold=threshold, total=total)
            return
        manager = self.node
        self.events.publish("info", "A new keyset was generated",
                            {"threshold": threshold, "total": total, "fromExistingKey": secret is not None,
                             "groupPubkey": keyset["group_pubkey"]})
        self.show("keyset.html", error=None, keyset=keyset, threshold=threshold, total=total,
                  shares=list(enumerate(keyset["shares"], start=1)),
                  replaces=bool(manager is not None and manager.has_credentials()))


ROUTES: list[tuple[Any, ...]] = [(r"/recover", RecoverPage), (r"/keyset", KeysetPage)]
