"""The URL table: each handlers module's ROUTES, in order (the relay's catch-all ``/`` must stay last)."""

from __future__ import annotations

from typing import Any

from handlers import api, auth, dashboard, events, nip46, pages, relay, relays, status

ROUTES: list[tuple[Any, ...]] = [
    *status.ROUTES,
    *auth.ROUTES,
    *events.ROUTES,
    *pages.ROUTES,
    *api.ROUTES,
    *relays.ROUTES,
    *dashboard.ROUTES,
    *nip46.ROUTES,
    *relay.ROUTES,
]
