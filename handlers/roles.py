"""Who may call what: the access level of every route and method, and whether a caller has it.

Levels, from least to most:

- ``public``: anyone, signed in or not (status, login, the API documentation).
- ``read``: any signed-in caller, including read-only API keys (status, events, peers).
- ``user``: accounts with the ``user`` role and full API keys: the dashboard, signing, encryption, pings,
  approving or denying a request that waits.
- ``admin``: administrators: credentials, relays, policies, API keys, accounts, recovery, NIP-46 pairing and
  permissions.

A handler declares its level with the class attribute ``access``: one level for every method, or a mapping
from HTTP method to level. A method it does not name is ``user`` when it is safe (GET, HEAD, OPTIONS) and
``admin`` otherwise, so a new route that changes something is for administrators until it says otherwise.
``tests/server/test_roles.py`` checks every route of ``handlers/routes.py`` against these rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

PUBLIC = "public"
READ = "read"
USER = "user"
ADMIN = "admin"
LEVELS = (PUBLIC, READ, USER, ADMIN)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Roles of accounts and principals, and scopes of API keys.
ROLE_ADMIN = "admin"
ROLE_USER = "user"
SCOPE_FULL = "full"
SCOPE_READ = "read"

ADMIN_REQUIRED = "Administrator role required"
READ_ONLY_KEY = "This API key is read-only: it may read status, events and peers"


class Caller(Protocol):
    """What the check needs of a principal."""

    @property
    def role(self) -> str:
        """ "admin" or "user"."""

    @property
    def scope(self) -> str:
        """ "full" or "read"."""


def required_level(handler: type[Any], method: str) -> str:
    """The level ``handler`` requires for ``method`` (see the module docstring)."""
    access = getattr(handler, "access", None)
    if isinstance(access, str):
        return access
    if isinstance(access, Mapping) and method in access:
        return str(access[method])
    if getattr(handler, "public", False):
        return PUBLIC
    return USER if method in SAFE_METHODS else ADMIN


def allows(caller: Caller | None, level: str) -> bool:
    """True when ``caller`` (None: not signed in) has ``level``."""
    if level == PUBLIC:
        return True
    if caller is None:
        return False
    if level == READ:
        return True
    if level == USER:
        return caller.scope == SCOPE_FULL
    return caller.role == ROLE_ADMIN and caller.scope == SCOPE_FULL


def refusal(caller: Caller, level: str) -> str:
    """Why ``caller`` is refused ``level`` (a message safe to show)."""
    if caller.scope != SCOPE_FULL:
        return READ_ONLY_KEY
    return ADMIN_REQUIRED if level == ADMIN else "Not allowed"
