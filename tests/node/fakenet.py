"""A queue-based stand-in for the relay network: every published event is delivered (on the next
loop turn) to every connected fake pool whose filters match it (the real NIP-01 matching of
``node.nostr.filters``), including the publisher's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from node.nostr.event import Event, verify_event
from node.nostr.filters import Filter, matches_any


class FakeNetwork:
    """Holds every pool; ``published`` records every event for inspection."""

    def __init__(self) -> None:
        self.pools: list[FakePool] = []
        self.published: list[Event] = []

    def factory(self, urls: list[str], *, on_event: Callable[[Event, str], None],
                on_state: Callable[[str, str], None] | None = None,
                on_eose: Callable[[str, str], None] | None = None, **_: Any) -> FakePool:
        pool = FakePool(self, urls, on_event, on_state, on_eose)
        self.pools.append(pool)
        return pool

    def deliver(self, event: Event, *, ignore_filters: bool = False) -> None:
        """Send ``event`` to matching pools (to all pools: a relay that ignores filters)."""
        verify_event(event)
        self.published.append(event)
        loop = asyncio.get_running_loop()
        for pool in self.pools:
            if pool.connected and (ignore_filters or any(
                    matches_any(filters, event) for filters in pool.subs.values())):
                loop.call_soon(pool.on_event, event, "fake://relay")


class FakePool:
    def __init__(self, net: FakeNetwork, urls: list[str], on_event: Callable[[Event, str], None],
                 on_state: Callable[[str, str], None] | None,
                 on_eose: Callable[[str, str], None] | None) -> None:
        self.net, self.urls, self.on_event = net, urls, on_event
        self.on_state, self.on_eose = on_state, on_eose
        self.subs: dict[str, list[Filter]] = {}
        self.connected = False

    def start(self) -> None:
        self.connected = True
        loop = asyncio.get_running_loop()
        for url in self.urls:
            if self.on_state:
                loop.call_soon(self.on_state, url, "connected")
            for sub_id in self.subs:
                if self.on_eose:
                    loop.call_soon(self.on_eose, sub_id, url)

    async def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def subscribe(self, sub_id: str, filters: list[dict[str, Any]]) -> None:
        self.subs[sub_id] = [Filter.from_json(flt) for flt in filters]  # as strict as RelayPool

    def unsubscribe(self, sub_id: str) -> None:
        self.subs.pop(sub_id, None)

    def resubscribe(self) -> int:
        self.resubscribed = getattr(self, "resubscribed", 0) + 1
        return len(self.urls) if self.connected and self.subs else 0

    async def publish(self, event: Event, timeout: float = 5.0) -> list[str]:
        if not self.connected:
            return []
        self.net.deliver(event)
        return ["fake://relay"]

    async def set_urls(self, urls: list[str], *, settle_timeout: float = 5.0,
                       drain_timeout: float = 5.0) -> tuple[list[str], list[str]]:
        """The relay set changes; the fake network keeps delivering (it has no relays of its own)."""
        added = [u for u in urls if u not in self.urls]
        removed = [u for u in self.urls if u not in urls]
        self.urls = list(urls)
        if self.connected and self.on_state:
            loop = asyncio.get_running_loop()
            for url in added:
                loop.call_soon(self.on_state, url, "connected")
        return added, removed

    def status(self) -> list[dict[str, Any]]:
        return [{"url": u, "state": "connected" if self.connected else "closed", "connected": self.connected,
                 "lastError": None, "rtt": 1.0 if self.connected else None} for u in self.urls]

    async def close(self) -> None:
        self.connected = False
        if self in self.net.pools:
            self.net.pools.remove(self)
