"""A queue-based stand-in for the relay network: every published event is delivered (on the next
loop turn) to every connected fake pool whose filters match it, including the publisher's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from node.nostr.event import Event, verify_event


def matches(flt: dict[str, Any], event: Event) -> bool:
    if "kinds" in flt and event.kind not in flt["kinds"]:
        return False
    if "authors" in flt and event.pubkey not in flt["authors"]:
        return False
    if "since" in flt and event.created_at < flt["since"]:
        return False
    for key, values in flt.items():
        if key.startswith("#") and not any(t[:1] == [key[1:]] and t[1] in values for t in event.tags):
            return False
    return True


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
                    matches(f, event) for fs in pool.subs.values() for f in fs)):
                loop.call_soon(pool.on_event, event, "fake://relay")


class FakePool:
    def __init__(self, net: FakeNetwork, urls: list[str], on_event: Callable[[Event, str], None],
                 on_state: Callable[[str, str], None] | None,
                 on_eose: Callable[[str, str], None] | None) -> None:
        self.net, self.urls, self.on_event = net, urls, on_event
        self.on_state, self.on_eose = on_state, on_eose
        self.subs: dict[str, list[dict[str, Any]]] = {}
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
        self.subs[sub_id] = filters

    def unsubscribe(self, sub_id: str) -> None:
        self.subs.pop(sub_id, None)

    async def publish(self, event: Event, timeout: float = 5.0) -> list[str]:
        if not self.connected:
            return []
        self.net.deliver(event)
        return ["fake://relay"]

    def status(self) -> list[dict[str, Any]]:
        return [{"url": u, "state": "connected" if self.connected else "closed", "connected": self.connected}
                for u in self.urls]

    async def close(self) -> None:
        self.connected = False
        if self in self.net.pools:
            self.net.pools.remove(self)
