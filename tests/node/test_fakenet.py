"""The fake relay network filters with the real NIP-01 matching, so node tests see what relays deliver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from node.nostr.event import Event
from tests.node.fakenet import FakeNetwork
from tests.relay.helpers import make_event, pubkey


async def delivered(filters: list[dict[str, Any]], events: list[Event]) -> list[Event]:
    net = FakeNetwork()
    received: list[Event] = []
    pool = net.factory(["fake://relay"], on_event=lambda event, url: received.append(event))
    pool.subscribe("sub", filters)
    pool.start()
    for event in events:
        net.deliver(event)
    await asyncio.sleep(0)  # deliveries are queued for the next loop turn
    return received


def test_delivers_what_the_real_filters_match() -> None:
    now = 1_700_000_000
    old = make_event(0, kind=20004, tags=[["p", pubkey(1)]], created_at=now - 100)
    new = make_event(0, kind=20004, tags=[["p", pubkey(1)]], created_at=now)
    bare_tag = make_event(0, kind=20004, tags=[["p"]], created_at=now)  # a tag without a value
    other = make_event(0, kind=20004, tags=[["p", pubkey(2)]], created_at=now)
    events = [old, new, bare_tag, other]

    got = asyncio.run(delivered([{"kinds": [20004], "#p": [pubkey(1)], "until": now - 1}], events))
    assert got == [old]  # "until" is honoured
    got = asyncio.run(delivered([{"ids": [new.id]}, {"#p": [pubkey(2)]}], events))
    assert got == [new, other]  # ids, and filters OR-ed


def test_refuses_filters_the_real_pool_refuses() -> None:
    pool = FakeNetwork().factory(["fake://relay"], on_event=lambda event, url: None)
    with pytest.raises(ValueError, match="search"):
        pool.subscribe("sub", [{"search": "x"}])
