"""The signer's keys, beyond saving credentials: clearing them (``POST /api/env/delete``, Igloo Server's
path), checking pasted credentials before saving (``POST /api/keyset/validate``), the keyset's display name
(``/api/keyset/name``), and the one limit on key recovery (the Recover page and ``POST /api/recover``).
"""

from __future__ import annotations

from typing import Any

import tornado.web

from handlers.base import ApiHandler, AuthMixin
from handlers.openapi import BOOL, INT, STR, arr, nullable, obj, op
from handlers.roles import USER
from handlers.throttle import ENV_WRITE
from node import TokenBucket, keytools
from store.keyset import MAX_NAME, KeysetNameStore

# Recoveries allowed at once, then one more every RECOVERY_EVERY seconds, for the whole server: a recovery
# is rare, and a stolen administrator session must not make it a fast oracle.
RECOVERY_BURST = 5
RECOVERY_EVERY = 180.0
DELETABLE_KEYS = ("GROUP_CRED", "SHARE_CRED", "GROUP_NAME")


def recovery_limiter() -> TokenBucket:
    """The server's recovery bucket (``settings["recovery_limiter"]``; tests pass one on their own clock)."""
    return TokenBucket(1.0 / RECOVERY_EVERY, RECOVERY_BURST)


def recovery_wait(handler: AuthMixin) -> int:
    """Spend one recovery; 0 when allowed, else the seconds to wait (nothing spent)."""
    bucket: TokenBucket | None = handler.application.settings.get("recovery_limiter")
    if bucket is None or bucket.take():
        return 0
    return bucket.retry_after()


def keyset_names(handler: AuthMixin) -> KeysetNameStore | None:
    """The keyset-name store (None in an application built without one)."""
    store: KeysetNameStore | None = handler.application.settings.get("keyset_name")
    return store


def keyset_name(handler: AuthMixin) -> str | None:
    """The keyset's display name: the one set on Configure (or ``PUT /api/keyset/name``), else GROUP_NAME
    from the environment."""
    names = keyset_names(handler)
    stored = names.get() if names is not None else None
    return stored or handler.config.group_name


class KeysApi(ApiHandler):
    """Base: JSON bodies of at most 16 KiB."""

    max_body = 16 * 1024  # credentials, names and passwords: far less than the API's 64 KiB


class EnvDeleteApi(KeysApi):
    """POST /api/env/delete ``{keys: ["GROUP_CRED", "SHARE_CRED", "GROUP_NAME"]}``."""

    rate_limits = {"POST": ENV_WRITE}

    openapi = {"post": op(
        "Clear the stored credentials (and the keyset name)",
        description="GROUP_CRED or SHARE_CRED stops the signer and deletes the stored credentials (both go "
                    "together); GROUP_NAME clears the keyset name. Other keys are listed in `rejectedKeys`. "
                    "409 when the credentials come from the server's environment: remove them there.",
        request=obj({"keys": arr(STR, minItems=1)}, ["keys"]), example={"keys": ["GROUP_CRED", "SHARE_CRED"]},
        ok=obj({"success": {"const": True}, "message": STR, "deletedKeys": arr(STR), "rejectedKeys": arr(STR),
                "credentialsCleared": BOOL}, ["success", "message", "deletedKeys"]),
        errors=(400, 409, 413, 415, 503),
    )}

    async def post(self) -> None:
        """Clear what ``keys`` names."""
        keys = self.body().get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            self.write_json({"error": "keys: a non-empty list of variable names is required"}, status=400)
            return
        valid = [k for k in DELETABLE_KEYS if k in keys]
        rejected = sorted({k[:64] for k in keys if k not in DELETABLE_KEYS})
        cleared = False
        if "GROUP_CRED" in valid or "SHARE_CRED" in valid:
            try:
                cleared = await self.manager.clear_credentials()
            except ValueError as exc:
                self.write_json({"error": str(exc)}, status=409)
                return
            names = keyset_names(self)
            if names is not None:
                names.clear()  # the name belonged to those credentials
        elif "GROUP_NAME" in valid and (names := keyset_names(self)) is not None:
            names.clear()
        message = "Environment variables deleted"
        if rejected:
            message += f". Rejected unauthorized keys: {', '.join(rejected)}"
        body: dict[str, Any] = {"success": True, "message": message, "deletedKeys": valid,
                                "credentialsCleared": cleared}
        if rejected:
            body["rejectedKeys"] = rejected
        self.write_json(body)


GROUP_INFO = nullable(obj({"valid": BOOL, "threshold": INT, "totalShares": INT, "groupPubkey": STR,
                           "npub": STR, "error": STR}, ["valid"]))
SHARE_INFO = nullable(obj({"valid": BOOL, "idx": INT, "pubkey": STR, "error": STR}, ["valid"]))


class KeysetValidateApi(KeysApi):
    """POST /api/keyset/validate ``{group?, share?}``: what pasted credentials hold, before saving."""

    openapi = {"post": op(
        "Check credentials before saving them",
        description="Decodes what is given: the group's threshold, size and public key, the share's index "
                    "and public key, and whether the share belongs to the group. Nothing is stored; the "
                    "share's secret is never returned. Configure calls this as you paste.",
        request=obj({"group": STR, "share": STR}),
        example={"group": "bfgroup1...", "share": "bfshare1..."},
        ok=obj({"group": GROUP_INFO, "share": SHARE_INFO, "matches": nullable(BOOL)},
               ["group", "share", "matches"]),
        errors=(400, 413, 415),
    )}

    def post(self) -> None:
        """``{group, share, matches}``."""
        body = self.body()
        group, share = body.get("group"), body.get("share")
        if not all(value is None or isinstance(value, str) for value in (group, share)):
            self.write_json({"error": "group, share: must be strings"}, status=400)
            return
        self.write_json(keytools.inspect_keyset(group or None, share or None))


class KeysetNameApi(KeysApi):
    """GET/PUT /api/keyset/name: the keyset's display name (Igloo Server's GROUP_NAME)."""

    access = {"GET": USER}
    openapi = {
        "get": op("The keyset's display name (the stored one, else GROUP_NAME)",
                  ok=obj({"name": nullable(STR)}, ["name"])),
        "put": op("Name the keyset (null or empty clears the name)", errors=(400, 413, 415, 503),
                  request=obj({"name": nullable({"type": "string", "maxLength": MAX_NAME})}, ["name"]),
                  example={"name": "Personal key"}, ok=obj({"name": nullable(STR)}, ["name"])),
    }

    def get(self) -> None:
        """``{name}``."""
        self.write_json({"name": keyset_name(self)})

    def put(self) -> None:
        """Set or clear the name."""
        names = keyset_names(self)
        if names is None:
            raise tornado.web.HTTPError(503, reason="Not available")
        body = self.body()
        if "name" not in body:
            self.write_json({"error": "name: required (a string, or null to clear)"}, status=400)
            return
        try:
            name = names.set(body["name"])
        except ValueError as exc:
            self.write_json({"error": str(exc)}, status=400)
            return
        self.events.publish("info", "Keyset renamed" if name else "Keyset name cleared", {"name": name})
        self.write_json({"name": name})


ROUTES: list[tuple[Any, ...]] = [
    (r"/api/env/delete", EnvDeleteApi),
    (r"/api/keyset/validate", KeysetValidateApi),
    (r"/api/keyset/name", KeysetNameApi),
]
