"""The relay state without sockets: expiry, replaceable events, indexed fan-out, connections."""

from __future__ import annotations

import pytest

from node.nostr.filters import Filter
from relay import RelayLimits, RelayState
from tests.relay.helpers import make_event, pubkey


class Conn:
    """A connection that records frames."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_event(self, sub_id: str, frame: bytes) -> None:
        self.frames.append(frame)

    def shutdown(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_events_expire_by_age_since_receipt() -> None:
    clock = Clock()
    hub = RelayState(RelayLimits(max_age=60), clock=clock)
    first = make_event(0, content="first", created_at=int(clock.now))
    assert hub.publish(first) == (True, "")
    clock.now += 30
    second = make_event(0, content="second", created_at=int(clock.now))
    hub.publish(second)
    assert hub.stored_count() == 2
    clock.now += 31
    assert hub.stored_count() == 1
    kind_one = hub.query_all([Filter(kinds=frozenset({1}))])
    assert kind_one == hub.query_all([Filter(ids=frozenset({second.id}))])
    clock.now += 30
    assert hub.stored_count() == 0


def test_replaceable_event_keeps_only_the_newest() -> None:
    hub = RelayState()
    old = make_event(0, kind=0, content="old", created_at=1_700_000_000)
    new = make_event(0, kind=0, content="new", created_at=1_700_000_100)
    assert hub.publish(old) == (True, "")
    assert hub.publish(new) == (True, "")
    ok, reason = hub.publish(make_event(0, kind=0, content="older", created_at=1_699_000_000))
    assert ok and reason.startswith("duplicate:")
    got = hub.query_all([Filter(kinds=frozenset({0}))])
    assert len(got) == 1 and new.id.encode() in got[0]
    assert hub.stored_count() == 1


def test_addressable_events_are_keyed_by_d_tag() -> None:
    hub = RelayState()
    a1 = make_event(0, kind=30000, tags=[["d", "a"]], created_at=1_700_000_000)
    b1 = make_event(0, kind=30000, tags=[["d", "b"]], created_at=1_700_000_000)
    a2 = make_event(0, kind=30000, tags=[["d", "a"]], created_at=1_700_000_001)
    for event in (a1, b1, a2):
        hub.publish(event)
    ids = {e for e in (a1.id, b1.id, a2.id) if any(e.encode() in d for d in hub.query_all([Filter()]))}
    assert ids == {b1.id, a2.id}


def test_fan_out_only_matches_indexed_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = RelayState()
    conns = [Conn() for _ in range(50)]
    for index, conn in enumerate(conns):
        # The FROSTR node filter: every node listens for kind 20004 addressed to itself.
        p = f"{index:064x}"
        flt = Filter(kinds=frozenset({20004}), tags={"p": frozenset({p})})
        hub.subscriptions.subscribe(conn, "node", [flt])
    calls = 0
    original = Filter.matches

    def counting(self: Filter, event: object) -> bool:
        nonlocal calls
        calls += 1
        return original(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(Filter, "matches", counting)
    event = make_event(0, kind=20004, tags=[["p", f"{7:064x}"]])
    hub.publish(event)
    assert calls == 1
    assert [len(c.frames) for c in conns] == [1 if i == 7 else 0 for i in range(50)]
    assert conns[7].frames[0].startswith(b'["EVENT","node",{"id":"' + event.id.encode())


def test_unsubscribe_and_drop_clear_the_index() -> None:
    hub = RelayState()
    conn = Conn()
    hub.subscriptions.subscribe(conn, "a", [Filter(authors=frozenset({pubkey(0)}))])
    hub.subscriptions.subscribe(conn, "b", [Filter()])
    assert hub.subscriptions.unsubscribe(conn, "a") is True
    assert hub.subscriptions.unsubscribe(conn, "a") is False
    hub.drop_connection(conn)
    hub.publish(make_event(0))
    assert conn.frames == []
    assert hub.connections() == []


def test_close_all_closes_every_open_connection() -> None:
    hub = RelayState()
    quiet, busy = Conn(), Conn()
    hub.register(quiet)
    hub.register(busy)
    hub.subscriptions.subscribe(busy, "s", [Filter()])
    hub.close_all()
    assert quiet.closed == busy.closed == (1001, "relay shutting down")
    assert hub.open_count() == 0 and hub.connections() == []
