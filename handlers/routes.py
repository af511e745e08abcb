"""The URL table: each handlers module's ROUTES, in order (the relay's catch-all ``/`` must stay last)."""

from __future__ import annotations

from typing import Any

from handlers import (
    account_pages,
    admin,
    api,
    auth,
    dashboard,
    docs,
    events,
    key_pages,
    keys,
    nip46,
    pages,
    relay,
    relays,
    status,
)

ROUTES: list[tuple[Any, ...]] = [
    *status.ROUTES,
    *auth.ROUTES,
    *events.ROUTES,
    *pages.ROUTES,
    *account_pages.ROUTES,
    *key_pages.ROUTES,
    *api.ROUTES,
    *keys.ROUTES,
    *admin.ROUTES,
    *docs.ROUTES,
    *relays.ROUTES,
    *dashboard.ROUTES,
    *nip46.ROUTES,
    *relay.ROUTES,
]
