"""Accounts and API keys: ``/api/admin/*`` in Igloo Server's paths and shapes, and ``/api/user/password``.

``AccountOps`` holds each operation once (checks, store call, event, ending sessions and sockets); the JSON
handlers here and the pages in ``handlers/account_pages.py`` call it and only shape the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import tornado.web

from handlers.base import ApiHandler, AuthMixin, Principal
from handlers.event_frames import CLOSE_AUTH_ENDED
from handlers.openapi import BOOL, INT, STR, TIME, arr, enum, nullable, obj, op
from handlers.roles import ADMIN, READ, USER
from relay import address_key
from store.apikeys import FULL, SCOPES, ApiKey, ApiKeyStore, check_label, check_scope
from store.users import ROLES, User, UserError


class OpError(tornado.web.HTTPError):
    """An operation refused: ``status`` and a message safe to show (APIs answer ``{error: message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, reason=message)
        self.message = message


def iso_time(epoch: float | None) -> str | None:
    """``2026-01-02T03:04:05.678Z`` (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_json(user: User, has_credentials: bool) -> dict[str, Any]:
    """An account as the admin API lists it (Igloo Server's fields plus ``role``)."""
    return {"id": user.id, "username": user.username, "role": user.role,
            "createdAt": iso_time(user.created_at), "hasCredentials": has_credentials}


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key's metadata as the admin API lists it (never the token)."""
    return {
        "id": key.id, "prefix": key.prefix, "label": key.label, "scope": key.scope,
        "createdAt": iso_time(key.created_at), "updatedAt": iso_time(key.updated_at),
        "lastUsedAt": iso_time(key.last_used_at), "lastUsedIp": key.last_used_ip,
        "revokedAt": iso_time(key.revoked_at), "revokedReason": key.revoked_reason,
        "createdByUserId": key.created_by_user_id, "createdByAdmin": key.created_by_admin,
    }


def positive_id(value: object, field: str) -> int:
    """An id given as a positive integer or a string of digits (Igloo Server accepts both)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip()[:19])
    if not isinstance(value, int) or not 0 < value < 2**63:
        raise OpError(400, f"Valid integer {field} required")
    return value


class AccountOps(AuthMixin):
    """The account and key operations, shared by the admin API and the pages."""

    @property
    def key_store(self) -> ApiKeyStore:
        """The API key store (503 when the application was built without one)."""
        store = self.api_keys
        if store is None:
            raise tornado.web.HTTPError(503, reason="API keys are not available")
        return store

    def signer_has_credentials(self) -> bool:
        """Whether the signer has credentials (Igloo runs one signer for every account)."""
        manager = self.node
        return bool(manager is not None and manager.has_credentials())

    async def add_user(self, username: object, password: object, role: object) -> User:
        """Create an account (the first one is an administrator whatever ``role`` says)."""
        if not isinstance(username, str) or not username:
            raise OpError(400, "username: required")
        if not isinstance(password, str) or not password:
            raise OpError(400, "password: required")
        if role not in ROLES:
            raise OpError(400, 'role: must be "admin" or "user"')
        try:
            user = await self.users.create(username, password, role=str(role))
        except UserError as exc:
            raise OpError(409 if "taken" in str(exc) else 400, str(exc)) from None
        self.events.publish("info", "User account created", {"username": user.username, "role": user.role,
                                                              "by": self.actor()})
        return user

    def delete_user(self, user_id: int) -> None:
        """Delete an account (never the last administrator); its sessions and event sockets end."""
        user = self.users.get(user_id)
        hashes = self.sessions.user_session_hashes(user_id)
        outcome = self.users.delete(user_id)
        if outcome == "not_found" or user is None:
            raise OpError(404, "User not found")
        if outcome == "last_admin":
            raise OpError(400, "Cannot delete the last admin user")
        for id_hash in hashes:  # the rows went with the account; the sockets must go too
            self.events.end_session(id_hash)
        self.events.publish("info", "User account deleted", {"username": user.username, "by": self.actor()})

    def create_key(self, label: object, scope: object) -> tuple[ApiKey, str]:
        """A new API key and its token."""
        try:
            checked_label = check_label(label)
            checked_scope = check_scope(FULL if scope is None else scope)
        except ValueError as exc:
            raise OpError(400, str(exc)) from None
        principal = self.principal
        user_id = principal.user_id if principal is not None else None
        key, token = self.key_store.create(checked_label, checked_scope, created_by_user_id=user_id,
                                           created_by_admin=True)
        self.events.publish("info", "API key created", {"id": key.id, "prefix": key.prefix,
                                                         "label": key.label, "scope": key.scope,
                                                         "by": self.actor()})
        return key, token

    def revoke_key(self, key_id: int, reason: object) -> None:
        """Revoke an API key; event sockets it opened close at once (4401)."""
        if reason is not None and not isinstance(reason, str):
            raise OpError(400, "Reason must be a string if provided")
        outcome = self.key_store.revoke(key_id, reason)
        if outcome == "not_found":
            raise OpError(404, "API key not found")
        if outcome == "already_revoked":
            raise OpError(409, "API key already revoked")
        for sock in self.events.sockets():
            if getattr(sock, "api_key_id", None) == key_id:
                sock.close_with(CLOSE_AUTH_ENDED, "API key revoked")
        self.events.publish("info", "API key revoked", {"id": key_id, "by": self.actor()})

    async def change_own_password(self, current: object, new: object) -> int:
        """Change the signed-in account's password; its other sessions (and their sockets) end. Returns how
        many sessions ended."""
        principal = self.principal
        if principal is None or principal.user_id is None:
            raise OpError(403, "Only a signed-in account has a password (an API key has none)")
        if not isinstance(current, str) or not current:
            raise OpError(400, "currentPassword: required")
        if not isinstance(new, str) or not new:
            raise OpError(400, "newPassword: required")
        # A wrong current password is a guess like a failed login: the login limiter counts it for this
        # address and account, when it starts (handlers/auth.py).
        limiter = self.application.settings.get("login_limiter")
        ip = address_key(self.client_ip())
        if limiter is not None and limiter.begin(ip, principal.username):
            raise OpError(429, "Too many attempts. Please try again later.")
        try:
            changed = await self.users.change_password(principal.user_id, current, new)
        except UserError as exc:
            if limiter is not None:
                limiter.withdraw(ip, principal.username)  # refused before the current password was checked
            raise OpError(400, f"newPassword: {exc}") from None
        if changed and limiter is not None:
            limiter.succeeded(ip, principal.username)
        if not changed:
            self.events.publish("warn", "Password change refused: wrong current password",
                                {"username": principal.username, "address": self.client_ip()})
            raise OpError(400, "currentPassword: not correct")
        ended = self.sessions.end_user_sessions(principal.user_id, keep=principal.session_hash)
        for id_hash in ended:
            self.events.end_session(id_hash)
        self.events.publish("info", "Password changed", {"username": principal.username,
                                                          "sessionsEnded": len(ended)})
        return len(ended)

    def actor(self) -> str:
        """Who is acting, for events (a username or the kind of credential, never a secret)."""
        principal: Principal | None = self.principal
        return principal.username if principal is not None else "unknown"


class AdminApi(ApiHandler, AccountOps):
    """Base of the admin endpoints: administrators only, JSON bodies, ``OpError`` as JSON."""

    access: Any = ADMIN
    max_body = 16 * 1024  # credentials, names and passwords: far less than the API's 64 KiB


USER_SCHEMA = obj({"id": INT, "username": STR, "role": enum(*ROLES), "createdAt": nullable(TIME),
                   "hasCredentials": BOOL}, ["id", "username", "role", "createdAt"])
KEY_SCHEMA = obj({
    "id": INT, "prefix": STR, "label": nullable(STR), "scope": enum(*SCOPES), "createdAt": TIME,
    "updatedAt": TIME, "lastUsedAt": nullable(TIME), "lastUsedIp": nullable(STR), "revokedAt": nullable(TIME),
    "revokedReason": nullable(STR), "createdByUserId": nullable(INT), "createdByAdmin": BOOL,
}, ["id", "prefix", "label", "scope", "createdAt", "updatedAt", "createdByAdmin"])
SUCCESS = obj({"success": {"const": True}, "message": STR}, ["success"])


class WhoAmIApi(AdminApi):
    """GET /api/admin/whoami."""

    access = READ
    openapi = {"get": op(
        "Who is calling, and are they an administrator",
        description="Igloo Server answers 401 to non-administrators; Igloo answers every signed-in caller "
                    "with `admin: false` for them, so a client can tell which controls to show.",
        ok=obj({"admin": BOOL, "userId": nullable(INT), "username": STR, "role": enum(*ROLES),
                "scope": enum(*SCOPES), "kind": STR}, ["admin", "userId", "role"]),
    )}

    def get(self) -> None:
        """``{admin, userId, username, role, scope, kind}``."""
        principal = self.principal
        assert principal is not None  # access READ: signed in
        self.write_json({"admin": principal.is_admin, "userId": principal.user_id,
                         "username": principal.username, "role": principal.role, "scope": principal.scope,
                         "kind": principal.kind})


class UsersApi(AdminApi):
    """GET /api/admin/users; POST /api/admin/users ``{username, password, role}``."""

    openapi = {
        "get": op("List accounts", ok=obj({"users": arr(USER_SCHEMA)}, ["users"]),
                  description="`hasCredentials` tells whether the signer has credentials (one signer serves "
                              "every account)."),
        "post": op("Create an account", status=201, errors=(400, 409, 413, 415),
                   request=obj({"username": STR, "password": {"type": "string", "minLength": 8},
                                "role": enum(*ROLES)}, ["username", "password", "role"]),
                   example={"username": "carol", "password": "a long passphrase", "role": "user"},
                   ok=obj({"success": {"const": True}, "user": USER_SCHEMA}, ["success", "user"]),
                   description="The first account is always an administrator. 409 when the name is taken."),
    }

    def get(self) -> None:
        """Every account with its role."""
        has = self.signer_has_credentials()
        self.write_json({"users": [user_json(u, has) for u in self.users.list_users()]})

    async def post(self) -> None:
        """Create an account."""
        body = self.body()
        user = await self.add_user(body.get("username"), body.get("password"), body.get("role"))
        self.write_json({"success": True, "user": user_json(user, self.signer_has_credentials())}, status=201)


class UserDeleteApi(AdminApi):
    """POST /api/admin/users/delete ``{userId}``."""

    openapi = {"post": op(
        "Delete an account", errors=(400, 404, 413, 415), ok=SUCCESS,
        request=obj({"userId": {"anyOf": [INT, STR]}}, ["userId"]), example={"userId": 2},
        description="Never the last administrator (400). The account's sessions and event sockets end.",
    )}

    def post(self) -> None:
        """Delete one account."""
        self.delete_user(positive_id(self.body().get("userId"), "userId"))
        self.write_json({"success": True, "message": "User deleted successfully"})


class ApiKeysApi(AdminApi):
    """GET /api/admin/api-keys; POST /api/admin/api-keys ``{label?, scope?}`` → 201 with the token, once."""

    openapi = {
        "get": op("List API keys (never their tokens)", ok=obj({"apiKeys": arr(KEY_SCHEMA)}, ["apiKeys"])),
        "post": op(
            "Create an API key", status=201, errors=(400, 413, 415),
            request=obj({"label": {"type": "string", "maxLength": 128}, "scope": enum(*SCOPES)}),
            example={"label": "backup script", "scope": "read"},
            ok=obj({"apiKey": obj({"id": INT, "token": STR, "prefix": STR, "label": nullable(STR),
                                   "scope": enum(*SCOPES), "createdByUserId": nullable(INT),
                                   "createdByAdmin": BOOL, "createdAt": TIME},
                                  ["id", "token", "prefix", "label", "scope", "createdByAdmin"])},
                   ["apiKey"]),
            description="The token is in this answer only: Igloo keeps its SHA-256. `scope` is `full` "
                        "(default: what a user account may do) or `read` (status, events, peers).",
        ),
    }

    def get(self) -> None:
        """Every key, active first."""
        self.write_json({"apiKeys": [key_json(k) for k in self.key_store.list_keys()]})

    def post(self) -> None:
        """Create a key; the token is returned this once."""
        body = self.body() if self.request.body else {}
        key, token = self.create_key(body.get("label"), body.get("scope"))
        self.write_json({"apiKey": {"id": key.id, "token": token, "prefix": key.prefix, "label": key.label,
                                    "scope": key.scope, "createdByUserId": key.created_by_user_id,
                                    "createdByAdmin": key.created_by_admin,
                                    "createdAt": iso_time(key.created_at)}}, status=201)


class ApiKeyRevokeApi(AdminApi):
    """POST /api/admin/api-keys/revoke ``{apiKeyId, reason?}``."""

    openapi = {"post": op(
        "Revoke an API key", ok=obj({"success": {"const": True}}, ["success"]),
        errors=(400, 404, 409, 413, 415),
        request=obj({"apiKeyId": {"anyOf": [INT, STR]}, "reason": {"type": "string", "maxLength": 256}},
                    ["apiKeyId"]),
        example={"apiKeyId": 1, "reason": "script retired"},
        description="Takes effect on the next request; event sockets opened with the key close (4401). "
                    "A second revoke is a 409.",
    )}

    def post(self) -> None:
        """Revoke one key."""
        body = self.body()
        self.revoke_key(positive_id(body.get("apiKeyId"), "apiKeyId"), body.get("reason"))
        self.write_json({"success": True})


class PasswordApi(AdminApi):
    """POST /api/user/password ``{currentPassword, newPassword}``: the signed-in account's password."""

    access = USER
    openapi = {"post": op(
        "Change your own password", errors=(400, 403, 413, 415),
        request=obj({"currentPassword": STR, "newPassword": {"type": "string", "minLength": 8}},
                    ["currentPassword", "newPassword"]),
        example={"currentPassword": "the old passphrase", "newPassword": "a new long passphrase"},
        ok=obj({"success": {"const": True}, "sessionsEnded": INT}, ["success", "sessionsEnded"]),
        description="Needs a signed-in account (session cookie or X-Session-ID). Every other session of the "
                    "account ends, with its event sockets; this one stays.",
    )}

    async def post(self) -> None:
        """Change the password."""
        body = self.body()
        ended = await self.change_own_password(body.get("currentPassword"), body.get("newPassword"))
        self.write_json({"success": True, "sessionsEnded": ended})


ROUTES: list[tuple[Any, ...]] = [
    (r"/api/admin/whoami", WhoAmIApi),
    (r"/api/admin/users", UsersApi),
    (r"/api/admin/users/delete", UserDeleteApi),
    (r"/api/admin/api-keys", ApiKeysApi),
    (r"/api/admin/api-keys/revoke", ApiKeyRevokeApi),
    (r"/api/user/password", PasswordApi),
]
