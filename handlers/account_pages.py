"""The account pages: Users and API keys (administrators), and Account (your own password).

Plain forms with XSRF tokens; every action works without JavaScript. Confirmation of a deletion or a
revocation is a required checkbox in the same form. Pages that can show a token are never cached.
"""

from __future__ import annotations

from typing import Any

from handlers.admin import AccountOps, OpError, iso_time, key_json
from handlers.base import BaseHandler
from handlers.roles import ADMIN, USER


class AccountPage(BaseHandler, AccountOps):
    """Base of the account pages: login redirect, no caching, ``OpError`` shown in the page."""

    template = ""

    def show(self, status: int = 200, **ctx: Any) -> None:
        """Render the page's template with ``ctx`` (and nothing cached)."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.render_page(self.template, **self.context(), **ctx)

    def context(self) -> dict[str, Any]:
        """What every render of this page needs."""
        return {}

    def confirmed(self) -> bool:
        """The form's confirmation checkbox is ticked."""
        return self.get_body_argument("confirm", "") == "yes"


class UsersPage(AccountPage):
    """GET/POST /users: list, add; POST /users/delete: delete (never the last administrator)."""

    access = ADMIN
    template = "users.html"

    def context(self) -> dict[str, Any]:
        """The accounts."""
        principal = self.principal
        me = principal.user_id if principal is not None else None
        users = [{"id": u.id, "username": u.username, "role": u.role, "created": iso_time(u.created_at),
                  "you": me == u.id} for u in self.users.list_users()]
        return {"users": users, "admins": sum(1 for u in users if u["role"] == "admin")}

    def get(self) -> None:
        """The list and the form."""
        if self.require_page_auth():
            self.show(error=None, notice=None)

    async def post(self) -> None:
        """Add an account."""
        if not self.require_page_auth():
            return
        username = self.get_body_argument("username", "")
        try:
            user = await self.add_user(username, self.get_body_argument("password", ""),
                                       self.get_body_argument("role", "user"))
        except OpError as exc:
            self.show(exc.status_code, error=exc.message, notice=None, username=username[:64])
            return
        self.show(error=None, notice=f"Account “{user.username}” created ({user.role}).")


class UserDeletePage(UsersPage):
    """POST /users/delete ``user_id`` + ``confirm``."""

    async def post(self) -> None:
        """Delete an account."""
        if not self.require_page_auth():
            return
        if not self.confirmed():
            self.show(400, error="Tick the box to confirm the deletion.", notice=None)
            return
        try:
            user_id = int(self.get_body_argument("user_id", "0")[:19] or "0")
            self.delete_user(user_id)
        except ValueError:
            self.show(400, error="user_id: not a number", notice=None)
            return
        except OpError as exc:
            self.show(exc.status_code, error=exc.message, notice=None)
            return
        self.show(error=None, notice="Account deleted; its sessions have ended.")


class ApiKeysPage(AccountPage):
    """GET/POST /apikeys: list and create (the token is shown once); POST /apikeys/revoke."""

    access = ADMIN
    template = "apikeys.html"

    def context(self) -> dict[str, Any]:
        """The keys (metadata only)."""
        keys = [key_json(k) for k in self.key_store.list_keys()]
        return {"keys": keys, "env_key": bool(self.config.api_key)}

    def get(self) -> None:
        """The list and the form."""
        if self.require_page_auth():
            self.show(error=None, notice=None, created=None)

    def post(self) -> None:
        """Create a key and show its token this once."""
        if not self.require_page_auth():
            return
        try:
            key, token = self.create_key(self.get_body_argument("label", ""),
                                         self.get_body_argument("scope", "full"))
        except OpError as exc:
            self.show(exc.status_code, error=exc.message, notice=None, created=None)
            return
        self.show(error=None, notice=None, created={"token": token, **key_json(key)})


class ApiKeyRevokePage(ApiKeysPage):
    """POST /apikeys/revoke ``key_id`` + ``confirm`` (+ ``reason``)."""

    def post(self) -> None:
        """Revoke a key."""
        if not self.require_page_auth():
            return
        if not self.confirmed():
            self.show(400, error="Tick the box to confirm the revocation.", notice=None, created=None)
            return
        try:
            key_id = int(self.get_body_argument("key_id", "0")[:19] or "0")
            self.revoke_key(key_id, self.get_body_argument("reason", "") or None)
        except ValueError:
            self.show(400, error="key_id: not a number", notice=None, created=None)
            return
        except OpError as exc:
            self.show(exc.status_code, error=exc.message, notice=None, created=None)
            return
        self.show(error=None, notice="API key revoked: it no longer works.", created=None)


class AccountSettingsPage(AccountPage):
    """GET/POST /account: who you are, and a new password (the old one required)."""

    access = USER
    template = "account.html"

    def context(self) -> dict[str, Any]:
        """The signed-in account."""
        principal = self.principal
        return {"has_password": principal is not None and principal.user_id is not None,
                "role": principal.role if principal is not None else "admin"}

    def get(self) -> None:
        """The form."""
        if self.require_page_auth():
            self.show(error=None, notice=None)

    async def post(self) -> None:
        """Change the password; the account's other sessions end."""
        if not self.require_page_auth():
            return
        new = self.get_body_argument("new_password", "")
        if new != self.get_body_argument("repeat_password", ""):
            self.show(400, error="The new passwords do not match.", notice=None)
            return
        try:
            ended = await self.change_own_password(self.get_body_argument("current_password", ""), new)
        except OpError as exc:
            self.show(exc.status_code, error=exc.message, notice=None)
            return
        others = f" {ended} other session{'s' if ended != 1 else ''} ended." if ended else ""
        self.show(error=None, notice="Password changed." + others)


ROUTES: list[tuple[Any, ...]] = [
    (r"/users", UsersPage),
    (r"/users/delete", UserDeletePage),
    (r"/apikeys", ApiKeysPage),
    (r"/apikeys/revoke", ApiKeyRevokePage),
    (r"/account", AccountSettingsPage),
]
