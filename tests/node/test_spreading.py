"""Concurrent signing spread over the online co-signers, counted by who answered each session.

Real parts: the embedded relay (Tornado on a loopback port), the real RelayPool, and between every node and
the relay its own delaying TCP proxy (bench/_delay_proxy.py), so each co-signer has a network distance like
a device on the internet, and "slow" means farther away. 8 requesters sign concurrently through each
requester's sign queue (what POST /api/sign does).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from bench._delay_proxy import DelayProxy
from config.settings import Settings
from node import NodeManager, NodeOptions, NodeService
from node.crypto import curve
from node.crypto.keygen import generate_dealer_pkg_gen
from node.transport.pool import RelayPool
from server import build_application, open_state

pytestmark = pytest.mark.timeout(60)

REQUESTERS = 8
PER_REQUESTER = 6


@pytest.fixture
def app(tmp_path: Path, http_server_port: tuple[Any, int]) -> tornado.web.Application:
    """A server used for its embedded relay only (these nodes run outside its manager: RELAY_WRITE=all)."""
    config = Settings(data_dir=tmp_path, api_key="k" * 40, credentials_key=secrets.token_bytes(32),
                      host_port=http_server_port[1], relay_write="all", relay_event_rate=100_000)
    db, hub = open_state(config)
    manager = NodeManager(emit=hub.publish, options=NodeOptions(), default_relays=[],
                          pool_factory=RelayPool)
    return build_application(config, db, hub, manager, bcrypt_rounds=4)


class Recorder:
    """A node's events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    def answered(self) -> list[dict[str, Any]]:
        """Data of every 'Signature response sent': one per session this node co-signed."""
        return [d for t, m, d in self.events if t == "sign" and m == "Signature response sent"]

    def sent(self) -> list[dict[str, Any]]:
        """Data of every 'Signature request sent' (one per session attempt this node started)."""
        return [d for t, m, d in self.events if t == "sign" and m == "Signature request sent"]


class Cluster:
    """A k-of-n group whose members each reach the relay through their own delaying proxy."""

    def __init__(self, relay_port: int, threshold: int, total: int) -> None:
        self.relay_port = relay_port
        self.group, self.shares = generate_dealer_pkg_gen(threshold, total)
        self.nodes: dict[int, NodeService] = {}
        self.recs: dict[int, Recorder] = {}
        self.proxies: list[DelayProxy] = []

    async def start(self, index: int, delay_ms: float, **options: Any) -> NodeService:
        proxy = DelayProxy(self.relay_port, delay_ms=delay_ms, jitter_ms=delay_ms / 10, seed=index)
        await proxy.start()
        self.proxies.append(proxy)
        rec = Recorder()
        node = NodeService(self.group, self.shares[index], [proxy.url], emit=rec, pool_factory=RelayPool,
                           options=NodeOptions(**{"sign_timeout": 5.0, "ping_interval": 3600,
                                                  "sign_budget": 1000, **options}))
        await node.start()
        assert await node.wait_ready(5)
        for _ in range(250):  # the subscription acknowledged (EOSE) before the first request
            if node.ready:
                break
            await asyncio.sleep(0.02)
        assert node.ready
        self.nodes[index], self.recs[index] = node, rec
        return node

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        for proxy in self.proxies:
            await proxy.close()


async def sign_concurrently(node: NodeService) -> list[tuple[str, str, str]]:
    """REQUESTERS callers, each signing PER_REQUESTER fresh sighashes one after the other."""

    async def caller() -> list[tuple[str, str, str]]:
        return [await node.sign_message(secrets.token_hex(32)) for _ in range(PER_REQUESTER)]

    results = await asyncio.gather(*(caller() for _ in range(REQUESTERS)))
    entries = [entry for batch in results for entry in batch]
    key = bytes.fromhex(node.group_pubkey)
    assert all(curve.schnorr_verify(key, bytes.fromhex(e[0]), bytes.fromhex(e[2])) for e in entries)
    return entries


def answered_sighashes(rec: Recorder) -> int:
    return sum(len(d["sighashes"]) for d in rec.answered())


async def all_answers_logged(cluster: Cluster, cosigners: list[int], expected: int) -> None:
    """Wait until the co-signers have logged ``expected`` partial signatures in all.

    A co-signer logs "Signature response sent" once the relay's OK for its answer is back, which can be
    after the requester already has the answer.
    """
    for _ in range(200):
        if sum(answered_sighashes(cluster.recs[i]) for i in cosigners) >= expected:
            return
        await asyncio.sleep(0.01)


async def test_two_equal_cosigners_share_the_sessions_about_half_each(
        http_server: Any, http_server_port: tuple[Any, int]) -> None:
    cluster = Cluster(http_server_port[1], 2, 3)
    try:
        a = await cluster.start(0, 15)
        await cluster.start(1, 15)
        await cluster.start(2, 15)
        assert all(r["success"] for r in await a.ping_all())
        entries = await sign_concurrently(a)
        assert len(entries) == REQUESTERS * PER_REQUESTER
        await all_answers_logged(cluster, [1, 2], len(entries))
        b_sessions, c_sessions = len(cluster.recs[1].answered()), len(cluster.recs[2].answered())
        sessions = a.sign_queue.sessions
        # Each session went to exactly one co-signer (2-of-3 needs one): no extra partial signature.
        assert [len(d["peers"]) for d in cluster.recs[0].sent()] == [1] * sessions
        assert b_sessions + c_sessions == sessions
        assert answered_sighashes(cluster.recs[1]) + answered_sighashes(cluster.recs[2]) == len(entries)
        share = b_sessions / sessions
        assert 0.25 <= share <= 0.75, (b_sessions, c_sessions)
    finally:
        await cluster.stop()


async def test_a_slow_cosigner_gets_nothing_while_the_near_one_keeps_up(
        http_server: Any, http_server_port: tuple[Any, int]) -> None:
    cluster = Cluster(http_server_port[1], 2, 3)
    try:
        a = await cluster.start(0, 15)
        await cluster.start(1, 15)
        await cluster.start(2, 150)  # a round with it takes 330 ms instead of 60
        assert all(r["success"] for r in await a.ping_all())
        entries = await sign_concurrently(a)
        await all_answers_logged(cluster, [1, 2], len(entries))
        assert len(cluster.recs[2].answered()) == 0
        assert answered_sighashes(cluster.recs[1]) == len(entries)
    finally:
        await cluster.stop()


async def test_an_offline_cosigner_gets_nothing_and_nothing_waits_for_it(
        http_server: Any, http_server_port: tuple[Any, int]) -> None:
    cluster = Cluster(http_server_port[1], 2, 3)
    try:
        a = await cluster.start(0, 15)
        await cluster.start(1, 15)  # share 3 never comes online
        results = {r["pubkey"]: r["success"] for r in await a.ping_all(timeout=0.5)}
        assert sorted(results.values()) == [False, True]
        entries = await sign_concurrently(a)
        await all_answers_logged(cluster, [1], len(entries))
        assert answered_sighashes(cluster.recs[1]) == len(entries)
        assert not [d for d in cluster.recs[0].sent() if len(d["peers"]) != 1]
        assert len(cluster.recs[0].sent()) == a.sign_queue.sessions  # no attempt timed out and went again
    finally:
        await cluster.stop()


async def test_policies_and_budgets_still_apply_per_cosigner(
        http_server: Any, http_server_port: tuple[Any, int]) -> None:
    cluster = Cluster(http_server_port[1], 2, 4)
    try:
        a = await cluster.start(0, 15)
        b = await cluster.start(1, 15, sign_budget=10)  # hands us 10 partial signatures, then refuses
        await cluster.start(2, 15)
        await cluster.start(3, 15)
        d = cluster.nodes[3]
        a.policies.set(d.pubkey, send=False)  # we never ask d
        assert all(r["success"] for r in await a.ping_all())
        entries = await sign_concurrently(a)
        await all_answers_logged(cluster, [1, 2], len(entries))
        assert len(cluster.recs[3].answered()) == 0
        assert answered_sighashes(cluster.recs[1]) <= 10
        assert answered_sighashes(cluster.recs[1]) + answered_sighashes(cluster.recs[2]) == len(entries)
        assert b.budget.remaining(a.pubkey) == 10 - answered_sighashes(cluster.recs[1])
    finally:
        await cluster.stop()


async def test_three_of_five_asks_exactly_two_cosigners_per_session_spread_over_four(
        http_server: Any, http_server_port: tuple[Any, int]) -> None:
    cluster = Cluster(http_server_port[1], 3, 5)
    try:
        a = await cluster.start(0, 15)
        for index in range(1, 5):
            await cluster.start(index, 15)
        assert all(r["success"] for r in await a.ping_all())
        entries = await sign_concurrently(a)
        await all_answers_logged(cluster, [1, 2, 3, 4], 2 * len(entries))
        sessions = a.sign_queue.sessions
        assert [len(d["peers"]) for d in cluster.recs[0].sent()] == [2] * sessions
        answered = [len(cluster.recs[i].answered()) for i in range(1, 5)]
        assert sum(answered) == 2 * sessions
        assert sum(answered_sighashes(cluster.recs[i]) for i in range(1, 5)) == 2 * len(entries)
        assert all(n > 0 for n in answered), answered  # every co-signer took part
    finally:
        await cluster.stop()
