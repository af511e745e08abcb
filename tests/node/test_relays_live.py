"""Relays changed while the node runs: the node moves without a restart and without dropping a sign in flight;
where the relay list comes from (dashboard, credentials, RELAYS, embedded) and how it survives a restart;
the warning for an exposed server on loopback relays only."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node import NodeManager, NodeOptions, NodeService
from node.crypto import curve
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.transport.pool import RelayPool
from store.credentials import CredentialStore
from store.db import Database
from store.relays import RelayListStore
from tests.node.fakenet import FakeNetwork
from tests.transport.conftest import LocalServer, relay_app

pytestmark = pytest.mark.timeout(60)


async def approve_all(node: NodeService, approved: list[str]) -> None:
    """Approve whatever waits on ``node`` until cancelled (an operator clicking Approve)."""
    while True:
        for approval in node.approvals.pending():
            if node.decide(approval.id, True):
                approved.append(approval.id)
        await asyncio.sleep(0.01)


async def until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_sign_in_flight_survives_a_move_to_another_relay(io_loop: Any) -> None:
    one, two = LocalServer(relay_app).start(), LocalServer(relay_app).start()
    group, shares = generate_dealer_pkg_gen(2, 2)
    events: list[tuple[str, str, Any]] = []
    a = NodeService(group, shares[0], [one.url], emit=lambda t, m, d=None: events.append((t, m, d)),
                    pool_factory=RelayPool, options=NodeOptions(sign_timeout=10.0, ping_interval=3600))
    # The co-signer holds every request for a decision: the sign stays in flight as long as the test likes.
    b = NodeService(group, shares[1], [one.url, two.url], emit=lambda *x: None, pool_factory=RelayPool,
                    options=NodeOptions(sign_timeout=10.0, ping_interval=3600, approval_mode=True))
    approver: asyncio.Future[None] | None = None
    try:
        await a.start()
        await b.start()
        await until(lambda: a.ready and b.ready)
        await until(lambda: all(r["connected"] for r in b.relay_status()))
        pool_before = a._pool
        message = secrets.token_hex(32)
        in_flight = asyncio.ensure_future(a.sign_message(message))
        await until(lambda: len(b.approvals.pending()) == 1)

        added, removed = await a.set_relays([two.url])
        assert (added, removed) == ([two.url], [one.url])
        assert a._pool is pool_before and a.active  # moved, not restarted
        assert [r["url"] for r in a.relay_status()] == [two.url]
        await one.stop()  # the old relay is gone for good: the answer can only come through the new one
        assert not in_flight.done()

        approved: list[str] = []
        approver = asyncio.ensure_future(approve_all(b, approved))
        sighash, _, signature = await asyncio.wait_for(in_flight, 10)
        assert sighash == message and len(approved) == 1
        assert curve.schnorr_verify(bytes.fromhex(a.group_pubkey), bytes.fromhex(message),
                                    bytes.fromhex(signature))
        # The co-signer keeps answering on the new relay.
        again = secrets.token_hex(32)
        assert (await asyncio.wait_for(a.sign_message(again), 10))[0] == again
        change = {"relays": [two.url], "added": [two.url], "removed": [one.url]}
        assert ("info", "Relays changed", change) in events
    finally:
        if approver is not None:
            approver.cancel()
        await a.stop()
        await b.stop()
        await one.stop()
        await two.stop()


class Setup:
    """A manager on a fake network with real SQLite stores, and the peers of its group."""

    def __init__(self, tmp: Path, *, env: bool = False, exposed: bool = False,
                 default: list[str] | None = None, from_env: bool = False) -> None:
        self.tmp = tmp
        self.key = secrets.token_bytes(32)
        self.net = FakeNetwork()
        self.group, self.shares = generate_dealer_pkg_gen(2, 3)
        self.env = env
        self.exposed = exposed
        self.default = default or ["ws://127.0.0.1:8002/"]
        self.from_env = from_env
        self.events: list[tuple[str, str, Any]] = []
        self.db = Database.open_in(tmp)
        self.manager = self.make_manager()

    def make_manager(self) -> NodeManager:
        env_group = encode_group(self.group) if self.env else None
        env_share = encode_share(self.shares[0]) if self.env else None
        return NodeManager(
            emit=lambda t, m, d=None: self.events.append((t, m, d)),
            options=NodeOptions(sign_timeout=1.0, ping_interval=3600),
            default_relays=self.default, env_group=env_group, env_share=env_share,
            credential_store=CredentialStore(self.db, self.key), relay_store=RelayListStore(self.db),
            pool_factory=self.net.factory, relays_from_env=self.from_env, exposed=self.exposed,
        )

    def messages(self, type_: str) -> list[str]:
        return [m for t, m, _ in self.events if t == type_]


@pytest.fixture
def setup_factory(tmp_path: Path, io_loop: Any) -> Iterator[Any]:
    made: list[Setup] = []

    def make(**kwargs: Any) -> Setup:
        made.append(Setup(tmp_path / f"s{len(made)}", **kwargs))
        return made[-1]

    yield make
    for setup in made:
        io_loop.run_sync(setup.manager.stop)
        setup.db.close()


async def test_environment_credentials_take_a_stored_relay_list_that_survives_restart(
    setup_factory: Any,
) -> None:
    s = setup_factory(env=True, default=["ws://127.0.0.1:7001/"], from_env=True)
    await s.manager.boot()
    service = s.manager.service
    assert service is not None and service.relays == ["ws://127.0.0.1:7001/"]
    assert s.manager.relay_choice() == (["ws://127.0.0.1:7001/"], "environment")

    assert await s.manager.set_relays(["ws://127.0.0.1:7002/", "ws://127.0.0.1:7003/"]) is True
    assert s.manager.service is service  # the same node, moved live
    assert service.relays == ["ws://127.0.0.1:7002/", "ws://127.0.0.1:7003/"]
    assert s.net.pools[-1].urls == service.relays
    assert s.manager.relay_choice() == (service.relays, "dashboard")
    assert s.manager.relay_choice(ignore_dashboard=True) == (["ws://127.0.0.1:7001/"], "environment")
    assert "Relays changed" in s.messages("info")

    # A restart (a new manager on the same database) starts on the stored list, not on RELAYS.
    await s.manager.stop()
    s.manager = s.make_manager()
    await s.manager.boot()
    assert s.manager.service is not None and s.manager.service.relays == ["ws://127.0.0.1:7002/",
                                                                          "ws://127.0.0.1:7003/"]
    # Cleared: back to the environment's RELAYS, live.
    service = s.manager.service
    assert await s.manager.set_relays(None) is True
    assert s.manager.service is service and service.relays == ["ws://127.0.0.1:7001/"]
    assert s.manager.relay_choice() == (["ws://127.0.0.1:7001/"], "environment")
    assert RelayListStore(s.db).load() is None
    with pytest.raises(ValueError, match=r"^relays: "):
        await s.manager.set_relays([])


async def test_stored_credentials_idle_manager_and_new_credentials(setup_factory: Any) -> None:
    s = setup_factory()
    # No node yet: the list is stored and used when the node starts.
    assert await s.manager.set_relays(["ws://127.0.0.1:7002/"]) is False
    assert s.manager.relays() == ["ws://127.0.0.1:7002/"]
    assert s.manager.relay_details() == [{"url": "ws://127.0.0.1:7002/", "state": "idle", "connected": False,
                                          "lastError": None, "rtt": None}]
    await s.manager.apply_credentials(encode_group(s.group), encode_share(s.shares[0]))
    assert s.manager.service is not None and s.manager.service.relays == ["ws://127.0.0.1:7002/"]
    assert s.manager.relay_choice()[1] == "dashboard"
    await until(lambda: "Self echo returned" in s.messages("bifrost"))  # the self-echo after a save is done

    # Credentials saved with relays of their own: what was just typed wins, the dashboard list is cleared.
    await s.manager.apply_credentials(encode_group(s.group), encode_share(s.shares[0]), ["ws://127.0.0.1:7004/"])
    await until(lambda: s.messages("bifrost").count("Self echo returned") == 2)
    assert s.manager.relay_choice() == (["ws://127.0.0.1:7004/"], "credentials")
    assert RelayListStore(s.db).load() is None
    await s.manager.set_relays(["ws://127.0.0.1:7005/"])
    assert s.manager.relay_choice(ignore_dashboard=True) == (["ws://127.0.0.1:7004/"], "credentials")
    status = s.manager.status()
    assert status["relayDetails"][0]["url"] == "ws://127.0.0.1:7005/" and "rtt" in status["relayDetails"][0]
    assert status["relays"][0]["url"] == "ws://127.0.0.1:7005/"  # the old shape stays until the API changes


async def test_demo_relays_move_without_being_stored(setup_factory: Any) -> None:
    s = setup_factory()
    service = await s.manager.start_demo("ws://127.0.0.1:7009/")
    assert s.manager.relay_choice() == (["ws://127.0.0.1:7009/"], "demo")
    await s.manager.set_relays(["ws://127.0.0.1:7009/", "ws://127.0.0.1:7010/"])
    assert s.manager.service is service and service.relays == ["ws://127.0.0.1:7009/", "ws://127.0.0.1:7010/"]
    assert RelayListStore(s.db).load() is None
    await s.manager.set_relays(None)
    assert service.relays == ["ws://127.0.0.1:7009/"]


async def test_exposed_server_on_loopback_relays_only_is_warned(
    setup_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup_factory(env=True, exposed=True)
    with caplog.at_level(logging.WARNING, logger="igloo.node"):
        await s.manager.boot()
    warning = s.manager.relay_warning()
    assert warning is not None and "ws://127.0.0.1:8002/" in warning and "Fix: " in warning
    assert "RELAYS=wss://" in warning
    assert warning in s.messages("warn") and warning in caplog.text
    # A relay the peers can reach too: no warning (the fake network never dials it).
    await s.manager.set_relays(["ws://127.0.0.1:8002/", "wss://relay.example.com/"])
    assert s.manager.relay_warning() is None
    # Only loopback again, "localhost" included: warned again.
    count = len(s.messages("warn"))
    await s.manager.set_relays(["ws://localhost:8002/"])
    assert s.manager.relay_warning() is not None and len(s.messages("warn")) == count + 1

    quiet = setup_factory(env=True, exposed=False)
    await quiet.manager.boot()
    assert quiet.manager.relay_warning() is None and not quiet.messages("warn")
