"""The bunker's own relay connections: one RelayPool per relay URL, so relays can be added and removed live.

Every pool carries one subscription, kind 24133 ``#p`` = the transport pubkey, ``since`` a little in the past
so a client whose clock is behind is still heard. Pools reconnect with backoff and resubscribe by themselves
(``node.transport``). Events are de-duplicated here across pools by id (a bounded LRU) before the bunker sees
them; the pools have already checked that they match the filter and that id and signature verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from node.nip46.protocol import KIND
from node.nostr.event import Event
from node.service import Pool, PoolFactory

SUB_ID = "igloo-nip46"


class Listener:
    """Connections to a changing set of relays, listening for one pubkey's NIP-46 traffic."""

    def __init__(
        self,
        pool_factory: PoolFactory,
        *,
        on_event: Callable[[Event, str], None],
        on_state: Callable[[str, str], None] | None = None,
        clock: Callable[[], float],
        since_skew: int = 300,
        dedupe_size: int = 10000,
    ) -> None:
        self._factory = pool_factory
        self._on_event = on_event
        self._on_state = on_state
        self._clock = clock
        self._skew = since_skew
        self._pools: dict[str, Pool] = {}
        self._subscribed: dict[str, asyncio.Event] = {}
        self._pubkey: str | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedupe_size = dedupe_size
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def urls(self) -> list[str]:
        """The relays listened on, in the order they were added."""
        return list(self._pools)

    @property
    def pubkey(self) -> str | None:
        """The pubkey listened for."""
        return self._pubkey

    def _filter(self) -> dict[str, Any]:
        return {"kinds": [KIND], "#p": [self._pubkey], "since": max(0, int(self._clock()) - self._skew)}

    def listen(self, pubkey: str, urls: list[str]) -> None:
        """Listen for ``pubkey`` on exactly ``urls``: new relays connect, removed ones close."""
        if pubkey != self._pubkey:
            self._pubkey = pubkey
            for url, pool in self._pools.items():
                self._subscribed[url].clear()
                pool.subscribe(SUB_ID, [self._filter()])
        wanted = list(dict.fromkeys(urls))
        for url in [u for u in self._pools if u not in wanted]:
            pool = self._pools.pop(url)
            self._subscribed.pop(url, None)
            closing = asyncio.ensure_future(pool.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        for url in wanted:
            if url not in self._pools:
                self._open(url)

    def _open(self, url: str) -> None:
        pool = self._factory(
            [url],
            on_event=self._event,
            on_state=self._state,
            on_eose=functools.partial(self._eose, url),
        )
        self._pools[url] = pool
        self._subscribed[url] = asyncio.Event()
        pool.subscribe(SUB_ID, [self._filter()])
        pool.start()

    def refresh(self) -> None:
        """Re-send the subscription with a current ``since`` (so a reconnect does not ask for old history)."""
        if self._pubkey is None:
            return
        for pool in self._pools.values():
            pool.subscribe(SUB_ID, [self._filter()])

    def _eose(self, url: str, sub_id: str, _relay: str) -> None:
        if sub_id == SUB_ID and url in self._subscribed:
            self._subscribed[url].set()

    def _state(self, url: str, state: str) -> None:
        if state != "connected" and url in self._subscribed:
            self._subscribed[url].clear()  # resubscribed on reconnect: wait for that EOSE again
        if self._on_state is not None:
            self._on_state(url, state)

    def _event(self, event: Event, url: str) -> None:
        if event.id in self._seen:
            self._seen.move_to_end(event.id)
            return
        self._seen[event.id] = None
        while len(self._seen) > self._dedupe_size:
            self._seen.popitem(last=False)
        self._on_event(event, url)

    async def wait_subscribed(self, urls: list[str], timeout: float) -> list[str]:
        """Wait (bounded) until each of ``urls`` has acknowledged the subscription; the ones that did."""
        events = {url: self._subscribed[url] for url in urls if url in self._subscribed}
        if events:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events.values())), timeout)
        return [url for url, event in events.items() if event.is_set()]

    async def publish(
        self, event: Event, urls: list[str], timeout: float, *, wait_all: bool = False
    ) -> list[str]:
        """Publish on those of ``urls`` we listen on; the relays that accepted it ([] when none did in time).

        Returns at the first acceptance (the others keep their copy and finish in the background), or, with
        ``wait_all``, once every relay has answered or timed out.
        """
        pools = [self._pools[url] for url in dict.fromkeys(urls) if url in self._pools]
        tasks = [asyncio.ensure_future(pool.publish(event, timeout=timeout)) for pool in pools]
        for task in tasks:
            task.add_done_callback(_consume)
        accepted: list[str] = []
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is None:
                    accepted.extend(task.result())
            if accepted and not wait_all:
                break
        return accepted

    def status(self) -> list[dict[str, Any]]:
        """Per relay: url, state, connected (the pools' own status)."""
        out: list[dict[str, Any]] = []
        for pool in self._pools.values():
            out.extend(pool.status())
        return out

    async def close(self) -> None:
        """Close every pool."""
        pools, self._pools = list(self._pools.values()), {}
        self._subscribed.clear()
        self._pubkey = None
        for pool in pools:
            with contextlib.suppress(Exception):
                await pool.close()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a background publish's outcome so a failure is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()
