"""Events, peer status, policies, budget and approvals: the node's pure parts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from node.events import REDACTED, safe_data
from node.peers import PeerTable
from node.policy import ApprovalQueue, PolicyBook, SignBudget, StoredPolicy

PK1, PK2, PK3 = "a" * 64, "b" * 64, "c" * 64


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_safe_data_converts_and_redacts() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "bfshare1secret"

    data = {
        "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "raw": b"\x01\xff",
        "err": ValueError("boom"),
        "share_cred": "anything",
        "nested": {"seckey": "00" * 32, "list": ["nsec1abc", "fine"]},
        "obj": Opaque(),
    }
    out = safe_data(data)
    json.dumps(out)  # JSON-safe
    assert out["when"] == "2024-01-02T03:04:05Z"
    assert out["raw"] == "01ff"
    assert out["err"] == {"name": "ValueError", "message": "boom"}
    assert out["share_cred"] == REDACTED
    assert out["nested"]["seckey"] == REDACTED
    assert out["nested"]["list"] == [REDACTED, "fine"]
    assert out["obj"] == "<Opaque>"
    assert "bfshare1" not in json.dumps(safe_data(ValueError("bad bfshare1qqq")))


def test_safe_data_limits_depth() -> None:
    deep: dict = {}
    cursor = deep
    for _ in range(20):
        cursor["x"] = {}
        cursor = cursor["x"]
    assert "[depth limit]" in json.dumps(safe_data(deep))


def test_peer_table_online_offline_and_ranking() -> None:
    clock = Clock()
    table = PeerTable([PK1, PK2, PK3], offline_after=60, clock=clock)
    assert table.rank([PK1, PK2, PK3]) == [PK1, PK2, PK3]
    assert table.mark_seen(PK2, 30.0) is True
    table.mark_seen(PK3, 10.0)
    table.mark_failed(PK1)
    assert table.rank([PK1, PK2, PK3]) == [PK3, PK2, PK1]
    status = table.status_json(PK2)
    assert status["online"] is True and status["latency"] == 30.0 and status["lastSeen"].endswith("Z")
    clock.now += 61
    assert not table.is_online(PK2)
    table.mark_seen(PK2)
    assert table.mark_failed(PK2) is True and not table.is_online(PK2)


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, StoredPolicy] = {}

    def load_policies(self) -> list[StoredPolicy]:
        return list(self.rows.values())

    def save_policy(self, policy: StoredPolicy) -> None:
        self.rows[policy.pubkey] = policy

    def delete_policy(self, pubkey: str) -> bool:
        return self.rows.pop(pubkey, None) is not None


def test_policy_book_defaults_set_remove_and_persist() -> None:
    store = MemoryStore()
    book = PolicyBook([PK1, PK2], store)
    assert book.get(PK1).send and book.get(PK1).recv
    assert not book.get(PK3).recv  # not a peer
    book.set(PK1, recv=False)
    assert book.get(PK1).send and not book.get(PK1).recv
    summary = book.summary(PK1)
    assert summary["allowReceive"] is False and summary["hasExplicitPolicy"] is True
    reloaded = PolicyBook([PK1, PK2], store)
    assert not reloaded.get(PK1).recv
    assert reloaded.remove(PK1) and not reloaded.remove(PK1)
    assert PolicyBook([PK1, PK2], store).get(PK1).recv
    with pytest.raises(KeyError):
        book.set(PK3, send=False)


def test_budget_window() -> None:
    clock = Clock(0.0)
    budget = SignBudget(5, 100, clock)
    assert budget.consume(PK1, 3)
    assert not budget.consume(PK1, 3)  # would exceed
    assert budget.remaining(PK1) == 2
    assert budget.consume(PK2, 5)  # per peer
    clock.now = 101
    assert budget.remaining(PK1) == 5 and budget.consume(PK1, 5)


def test_approval_queue_approve_deny_timeout() -> None:
    async def run() -> list[str]:
        queue = ApprovalQueue()
        a = queue.open("sign", PK1, {}, 5)
        b = queue.open("sign", PK1, {}, 5)
        c = queue.open("ecdh", PK2, {}, 0.05)
        assert {x.id for x in queue.pending()} == {a.id, b.id, c.id}
        asyncio.get_running_loop().call_soon(queue.decide, a.id, True)
        asyncio.get_running_loop().call_soon(queue.decide, b.id, False)
        results = await asyncio.gather(queue.wait(a), queue.wait(b), queue.wait(c))
        assert queue.decide(a.id, True) is None and queue.pending() == []
        return list(results)

    assert asyncio.run(run()) == ["approved", "denied", "timeout"]
