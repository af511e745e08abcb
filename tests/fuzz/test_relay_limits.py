"""Fuzz the embedded relay's new bounds.

``test_relay_store_limits`` (in process): random sequences of events of every shape (tags and strings per tag
around their limits, big content, replaceable, addressable, ephemeral, future, from four authors and four
client addresses) and of searches run in random small slices while the store changes. After every step the
store's accounted bytes are the sum of its records' costs and within the budget, every address and author
within its quota, the count within its cap, every index sorted and holding exactly the stored records,
refusals carry a NIP-01 prefix and events over a limit are always refused; every search returns what a
brute-force scan of the stored events returns.

``test_relay_admission`` (live app on a loopback port): random opens and closes from 127.0.0.1 (local),
127.0.0.2-4 (outsiders) and proxied loopback, with frames on the open ones. Every upgrade is admitted or
refused (429 per address, 503 full) exactly as a model of the caps says, every frame is answered with a
NIP-01 message, and the relay's counts follow the closes.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.httpclient
import tornado.ioloop
import tornado.web
import tornado.websocket
from hypothesis import given
from hypothesis import strategies as st

from handlers import relay as relay_handlers
from node.nostr.event import Event, sign_event
from node.nostr.filters import Filter
from relay import ClientAddress, RelayLimits, RelayState
from relay.store import SEND_ORDER, EventStore, is_ephemeral
from tests.fuzz.conftest import ErrorTrap, fuzz_settings, run, scales

PREFIXES = ("duplicate:", "pow:", "blocked:", "rate-limited:", "invalid:", "restricted:", "error:", "mute:")
KEYS = [bytes([i + 1]) * 32 for i in range(4)]
PUBKEYS = [sign_event(key, 1, [], "", 0, bytes(32)).pubkey for key in KEYS]
SOURCES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
NOW = 1_700_000_000

STORE_LIMITS = RelayLimits(
    max_events=12, max_bytes=40_000, address_quota=15_000, author_quota=20_000, max_event_bytes=3000,
    max_event_tags=8, max_tag_strings=6, max_content_length=1500, max_limit=5, max_query_work=300,
)

short = st.text(alphabet="abcxyz01", min_size=0, max_size=4)
tags = st.lists(
    st.builds(lambda name, rest: [name, *rest], st.sampled_from(["p", "t", "e", "d", "x", "P", "ab", ""]),
              st.lists(short, max_size=STORE_LIMITS.max_tag_strings + 1)),
    max_size=STORE_LIMITS.max_event_tags + 2,
)
events = st.builds(
    lambda key, kind, tags, size, age: sign_event(KEYS[key], kind, tags, "c" * size, NOW - age, bytes(32)),
    st.integers(0, len(KEYS) - 1),
    st.sampled_from([1, 1, 7, 0, 3, 10002, 30000, 20004]),
    tags,
    st.sampled_from([0, 10, 400, 1400, 1501, 2900]),
    st.sampled_from([0, 1, 5, 60, -899, -901]),
)
filters = st.builds(
    lambda kinds, keys, tag, since, until, limit: Filter.from_json({k: v for k, v in {
        "kinds": kinds, "authors": None if keys is None else [PUBKEYS[k] for k in keys],
        "#" + tag[0] if tag else "#p": None if tag is None else list(tag[1]), "since": since, "until": until,
        "limit": limit}.items() if v is not None}),
    st.none() | st.lists(st.sampled_from([1, 7, 0, 30000]), max_size=2),
    st.none() | st.lists(st.integers(0, len(KEYS) - 1), max_size=2),
    st.none() | st.tuples(st.sampled_from(["p", "t", "d", "P"]), st.lists(short, min_size=1, max_size=3)),
    st.none() | st.sampled_from([NOW - 60, NOW - 1, NOW]),
    st.none() | st.sampled_from([NOW - 5, NOW, NOW + 100]),
    st.none() | st.integers(0, 7),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), events, st.sampled_from(SOURCES)),
        st.tuples(st.just("req"), st.lists(filters, min_size=1, max_size=3), st.integers(1, 9)),
    ),
    min_size=1, max_size=25,
)


def over_a_limit(event: Event) -> bool:
    limits = STORE_LIMITS
    size = len(json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False).encode())
    return (len(event.tags) > limits.max_event_tags
            or any(len(tag) > limits.max_tag_strings for tag in event.tags)
            or len(event.content) > limits.max_content_length or size > limits.max_event_bytes
            or event.created_at > NOW + limits.max_future_seconds)


def check_store(store: EventStore) -> None:
    """Every bound and every index agrees with the stored records."""
    limits, records = store.limits, list(store.by_id.values())
    assert store.bytes == sum(r.cost for r in records) <= limits.max_bytes
    assert len(records) <= limits.max_events
    for source in SOURCES:
        held = sum(r.cost for r in records if r.source == source)
        assert held == store.bytes_of_source(source) <= limits.address_quota
    for pubkey in {r.pubkey for r in records}:
        held = sum(r.cost for r in records if r.pubkey == pubkey)
        assert held == store.bytes_of_author(pubkey) <= limits.author_quota
    buckets = [*store.by_author.values(), *store.by_kind.values(),
               *(bucket for values in store.by_tag.values() for bucket in values.values())]
    assert all(buckets), "an empty bucket is kept"
    for bucket in [store.everything, *buckets]:
        assert [r.key for r in bucket] == sorted(r.key for r in bucket)
        assert all(not r.removed and store.by_id.get(r.id) is r for r in bucket)
    assert len(store.everything) == len(records)
    assert sum(len(b) for b in store.by_author.values()) == len(records)
    assert sum(len(b) for b in store.by_kind.values()) == len(records)
    assert sum(len(b) for v in store.by_tag.values() for b in v.values()) == sum(len(r.tags) for r in records)
    for record in records:
        assert record in store.by_author[record.pubkey] and record in store.by_kind[record.kind]
        assert all(record in store.by_tag[letter][value] for letter, value in record.tags)


def brute_force(store: EventStore, flts: list[Filter]) -> list[str]:
    stored = sorted(store.by_id.values(), key=SEND_ORDER)
    found: dict[str, Any] = {}
    for flt in flts:
        limit = STORE_LIMITS.max_limit if flt.limit is None else min(flt.limit, STORE_LIMITS.max_limit)
        matching = [r for r in stored if flt.matches(Event.from_json(json.loads(r.data)))]
        for record in matching[:limit]:
            found[record.id] = record
    return [r.id for r in sorted(found.values(), key=SEND_ORDER)]


def store_case(case: list[tuple[Any, ...]]) -> None:
    relay = RelayState(STORE_LIMITS, clock=lambda: float(NOW))
    for step in case:
        if step[0] == "event":
            event, source = step[1], step[2]
            accepted, reason = relay.publish(event, source)
            assert accepted or reason.startswith(PREFIXES), reason
            if over_a_limit(event):
                assert (accepted, reason[:8]) == (False, "invalid:"), (reason, event.to_json())
            if accepted and not reason and not is_ephemeral(event.kind):
                assert event.id in relay.store.by_id or relay.store.count() == STORE_LIMITS.max_events
        else:
            flts, budget = step[1], step[2]
            query = relay.query(flts)
            for _ in range(10_000):
                if query.done:
                    break
                query.step(budget)
            assert query.done
            assert [r.id for r in query.results()] == brute_force(relay.store, flts)
        check_store(relay.store)


@pytest.mark.parametrize("examples", scales(150))
def test_relay_store_limits(examples: int) -> None:
    """Random events and sliced searches against the store's bounds (see the module doc)."""

    @fuzz_settings(examples)
    @given(case=steps)
    def case(case: list[tuple[Any, ...]]) -> None:
        store_case(case)

    case()


# ----- admission over real sockets ------------------------------------------------------------------------

ADMISSION = RelayLimits(max_connections=6, max_connections_per_address=2, local_reserved=2,
                        event_rate=1e9, event_burst=1e9)
ORIGINS = [("127.0.0.1", False), ("127.0.0.2", False), ("127.0.0.3", False), ("127.0.0.4", False),
           ("127.0.0.1", True)]  # True: through a proxy (X-Forwarded-For)


@dataclass
class Model:
    """What admission should do: open connections by (address, local)."""

    open: list[tuple[ClientAddress, Any]]

    def expected(self, client: ClientAddress) -> int:
        locals_ = sum(1 for c, _ in self.open if c.local)
        outsiders = len(self.open) - locals_
        if len(self.open) >= ADMISSION.max_connections:
            return 503
        if client.local:
            return 101
        if outsiders >= ADMISSION.max_connections - ADMISSION.local_reserved:
            return 503
        if sum(1 for c, _ in self.open if c == client) >= ADMISSION.max_connections_per_address:
            return 429
        return 101


admission_steps = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, len(ORIGINS) - 1)),
        st.tuples(st.just("close"), st.integers(0, 9)),
        st.tuples(st.just("frame"), st.integers(0, 9), st.sampled_from([
            ["REQ", "s", {"kinds": [1]}], ["CLOSE", "s"], ["REQ", "x", {"bad": 1}], ["EVENT", {"id": "x"}],
            "not json", ["REQ", "s", {"ids": ["0" * 64]}, {"authors": ["f" * 64]}],
        ]))),
    min_size=1, max_size=20,
)


@pytest.fixture
def app() -> tornado.web.Application:
    """The relay routes with six slots, two of them reserved, two per outside address."""
    return tornado.web.Application(relay_handlers.ROUTES, relay=RelayState(ADMISSION))


async def admission_case(port: int, relay: RelayState, case: list[tuple[Any, ...]]) -> None:
    url = f"ws://127.0.0.1:{port}/"
    model = Model([])
    try:
        for step in case:
            if step[0] == "open":
                source, proxied = ORIGINS[step[1]]
                client = ClientAddress(source, source == "127.0.0.1" and not proxied)
                want = model.expected(client)
                headers = {"X-Forwarded-For": "192.0.2.1"} if proxied else {}
                request = tornado.httpclient.HTTPRequest(url, headers=headers, network_interface=source,
                                                         connect_timeout=5, request_timeout=5)
                try:
                    ws = await tornado.websocket.websocket_connect(request)
                except tornado.httpclient.HTTPClientError as exc:
                    assert exc.code == want, (exc.code, want, step)
                    continue
                assert want == 101, (want, step)
                model.open.append((client, ws))
            elif step[0] == "close" and model.open:
                _, ws = model.open.pop(step[1] % len(model.open))
                ws.close()
                deadline = time.monotonic() + 5
                while relay.admission.open_count() != len(model.open):
                    assert time.monotonic() < deadline, "the relay did not count the close"
                    await asyncio.sleep(0.005)
            elif step[0] == "frame" and model.open:
                _, ws = model.open[step[1] % len(model.open)]
                frame = step[2]
                await ws.write_message(frame if isinstance(frame, str) else json.dumps(frame))
                await ws.write_message(json.dumps(["REQ", "sync", {"ids": ["0" * 64]}]))
                for _ in range(10):
                    reply = json.loads(await asyncio.wait_for(ws.read_message(), 5))
                    if reply == ["EOSE", "sync"]:
                        break
                    assert reply[0] in ("EOSE", "NOTICE", "CLOSED", "OK"), reply
                    assert reply[0] == "EOSE" or reply[-1].startswith(PREFIXES), reply
                else:
                    raise AssertionError("no EOSE for the sync subscription")
            assert relay.admission.open_count() == len(model.open)
    finally:
        for _, ws in model.open:
            ws.close()
        deadline = time.monotonic() + 5
        while relay.admission.open_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert relay.admission.open_count() == 0


@pytest.mark.parametrize("examples", scales(40))
def test_relay_admission(
    http_server: Any, http_server_port: tuple[Any, int], io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap,
    app: tornado.web.Application, examples: int,
) -> None:
    """Random opens, closes and frames from several addresses against the caps (see the module doc)."""
    relay: RelayState = app.settings["relay"]

    @fuzz_settings(examples)
    @given(case=admission_steps)
    def case(case: list[tuple[Any, ...]]) -> None:
        run(io_loop, lambda: admission_case(http_server_port[1], relay, case))
        errors.check()

    case()
