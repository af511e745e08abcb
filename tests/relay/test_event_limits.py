"""Bounded cost per event and per client: tags, strings per tag, bytes, storage quotas, the byte budget."""

from __future__ import annotations

from typing import Any

import pytest

from node.nostr.filters import Filter
from relay import RelayLimits, RelayState
from relay.store import stored_cost
from tests.relay.helpers import RelayClient, make_event, pubkey

pytestmark = pytest.mark.timeout(30)

LIMITS = RelayLimits(
    max_events=1000,
    max_bytes=60_000,
    address_quota=20_000,
    author_quota=30_000,
    max_event_bytes=8_000,
    max_event_tags=50,
    max_tag_strings=8,
    max_content_length=6_000,
    max_message_length=64 * 1024,
    event_rate=1e6,
    event_burst=1e6,
)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """Small quotas and a small byte budget, so a few events reach them."""
    return {"relay": RelayState(LIMITS)}


async def test_per_event_limits_answer_ok_false_invalid(relay_url: str) -> None:
    client = await RelayClient.connect(relay_url)
    too_many_tags = make_event(0, tags=[["t", str(i)] for i in range(51)])
    too_many_strings = make_event(0, tags=[["t", *[str(i) for i in range(8)]]])
    too_big = make_event(0, tags=[["r", "x" * 1000] for _ in range(8)])  # 8 KB of tags, content tiny
    for event, words in ((too_many_tags, "more than 50 tags"), (too_many_strings, "more than 8 strings"),
                         (too_big, "larger than 8000 bytes")):
        reply = await client.publish(event)
        assert reply[2] is False and reply[3].startswith("invalid:") and words in reply[3], reply
    at_limits = make_event(0, tags=[["t", *[str(i) for i in range(7)]]] * 50)
    assert await client.publish(at_limits) == ["OK", at_limits.id, True, ""]


async def test_address_quota_refuses_one_address_and_not_another(relay_url: str) -> None:
    crowd = await RelayClient.connect_from(relay_url, "127.0.0.2")
    accepted = 0
    for i in range(40):  # each ~4.6 KB accounted: about four fit in the 20 KB quota
        event = make_event(i % 5, content=f"{i}" + "c" * 3000)
        reply = await crowd.publish(event)
        if reply[2] is False:
            assert reply[3].startswith("rate-limited:") and "address" in reply[3], reply
            break
        accepted += 1
    else:
        raise AssertionError("the address quota never applied")
    assert 1 <= accepted <= LIMITS.address_quota // 3000
    other = await RelayClient.connect_from(relay_url, "127.0.0.3")
    fresh = make_event(4, content="from another address")
    assert await other.publish(fresh) == ["OK", fresh.id, True, ""]


async def test_author_quota_holds_across_addresses(relay_url: str) -> None:
    refused = None
    for i in range(12):  # one author, a new address each time
        client = await RelayClient.connect_from(relay_url, f"127.0.1.{i + 1}")
        reply = await client.publish(make_event(2, content=f"{i}" + "a" * 3000))
        client.close()
        if reply[2] is False:
            refused = reply
            break
    assert refused is not None and refused[3].startswith("rate-limited:") and "author" in refused[3]


def test_byte_budget_evicts_oldest_and_counts_bytes() -> None:
    relay = RelayState(LIMITS)
    events = [make_event(i % 5, content=f"{i}" + "b" * 2500, created_at=1_700_000_000 + i) for i in range(60)]
    for number, event in enumerate(events):
        accepted, reason = relay.publish(event, f"10.0.0.{number}")  # spread over addresses: no quota hit
        assert (accepted, reason) == (True, ""), reason
        assert relay.store.bytes <= LIMITS.max_bytes
    kept = relay.query_all([Filter()])
    assert 0 < len(kept) < len(events)
    assert relay.store.bytes == sum(r.cost for r in relay.store.by_id.values())
    newest = [event.id.encode() for event in events[-len(kept):]]
    assert all(any(i in data for data in kept) for i in newest)  # the oldest received went first


def test_quota_and_budget_are_released_when_events_go() -> None:
    clock = [1_000_000.0]
    relay = RelayState(RelayLimits(max_age=60, address_quota=20_000), clock=lambda: clock[0])
    event = make_event(1, content="q" * 3000, created_at=int(clock[0]))
    assert relay.publish(event, "10.1.1.1") == (True, "")
    assert relay.store.bytes_of_source("10.1.1.1") == relay.store.bytes_of_author(pubkey(1)) > 3000
    clock[0] += 61
    assert relay.stored_count() == 0
    assert relay.store.bytes == relay.store.bytes_of_source("10.1.1.1") == 0
    assert relay.store.bytes_of_author(pubkey(1)) == 0


def test_replacing_an_event_frees_its_share_of_the_quota() -> None:
    relay = RelayState(RelayLimits(address_quota=12_000, author_quota=12_000))
    for i in range(20):  # kind 0 is replaceable: each new version frees the last one's bytes
        event = make_event(3, kind=0, content=f"{i}" + "m" * 4000, created_at=1_700_000_000 + i)
        assert relay.publish(event, "10.2.2.2") == (True, "")
    assert relay.stored_count() == 1
    assert relay.store.bytes_of_source("10.2.2.2") == relay.store.bytes


def test_stored_cost_counts_bytes_and_indexed_tags() -> None:
    plain = stored_cost(b"x" * 100, ())
    tagged = stored_cost(b"x" * 100, (("p", "a" * 64), ("t", "b")))
    assert plain > 100 and tagged > plain + 65
