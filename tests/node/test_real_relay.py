"""NodeService over the real embedded relay (in-process Tornado app on a loopback port) and the real
RelayPool: ping, echo, sign batch, ECDH; and the first-run demo through the manager and the API."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
import tornado.web

pool_mod = pytest.importorskip("node.transport.pool")

from config.settings import Settings  # noqa: E402
from handlers import api, relay  # noqa: E402
from node import NodeManager, NodeOptions, NodeService  # noqa: E402
from node.crypto import curve  # noqa: E402
from node.crypto.keygen import generate_dealer_pkg_gen  # noqa: E402
from server import build_application, open_state  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def relay_write() -> str:
    """The embedded relay's RELAY_WRITE (the default: only the running group's members may write)."""
    return "signer"


@pytest.fixture
def world(tmp_path: Path, http_server_port: tuple[Any, int], relay_write: str) -> dict[str, Any]:
    config = Settings(data_dir=tmp_path, api_key="k" * 40, credentials_key=secrets.token_bytes(32),
                      host_port=http_server_port[1], sign_timeout=2.0, relay_write=relay_write)
    db, hub = open_state(config)
    manager = NodeManager(emit=hub.publish, options=NodeOptions(sign_timeout=2.0, ping_interval=3600),
                          default_relays=list(config.effective_relays), pool_factory=pool_mod.RelayPool)
    return {"config": config, "db": db, "hub": hub, "manager": manager}


@pytest.fixture
def app(world: dict[str, Any]) -> tornado.web.Application:
    application = build_application(world["config"], world["db"], world["hub"], world["manager"],
                                    bcrypt_rounds=4)
    application.add_handlers(r".*", [*api.ROUTES, *relay.ROUTES])
    return application


@pytest.mark.parametrize("relay_write", ["all"])  # these nodes run outside the manager the relay asks
async def test_triple_over_embedded_relay(
    http_server: Any, http_server_port: tuple[Any, int], relay_write: str
) -> None:
    url = f"ws://127.0.0.1:{http_server_port[1]}/"
    group, shares = generate_dealer_pkg_gen(2, 3)
    events: list[tuple[str, str]] = []
    data: list[Any] = []

    def record(kind: str, message: str, body: Any = None) -> None:
        events.append((kind, message))
        data.append(body)

    nodes = [NodeService(group, share, [url], emit=record,
                         pool_factory=pool_mod.RelayPool, options=NodeOptions(sign_timeout=3.0))
             for share in shares]
    try:
        for node in nodes:
            await node.start()
        assert all([await n.wait_ready(5) for n in nodes])
        for _ in range(100):  # subscriptions acknowledged (EOSE) before the first request
            if all(n.ready for n in nodes):
                break
            await asyncio.sleep(0.02)
        a, b, c = nodes
        policy, _ = await a.ping(b.pubkey)
        assert policy.send and policy.recv
        assert await a.echo("abcd") == "abcd"
        entries = await a.sign([[secrets.token_hex(32)], [secrets.token_hex(32)]])
        assert len(entries) == 2 and all(
            curve.schnorr_verify(bytes.fromhex(a.group_pubkey), bytes.fromhex(e[0]), bytes.fromhex(e[2]))
            for e in entries)
        peer_sk = secrets.token_bytes(32)
        shared = await c.ecdh(curve.pubkey_of(peer_sk)[1:].hex())
        assert curve.xonly(shared) == curve.ecdh_x(peer_sk, group.group_pk)
        assert ("ready", "Node is ready") in events
        # the dashboard's relay dot reads data.state (data is the relay's whole status entry)
        assert any(isinstance(d, dict) and (d.get("url"), d.get("state")) == (url, "connected") for d in data)
        assert a.status()["connectedRelays"] == 1
    finally:
        for node in nodes:
            await node.stop()


async def test_demo_signs_through_the_api(http_server_client: Any, world: dict[str, Any]) -> None:
    headers = {"X-API-Key": "k" * 40, "Content-Type": "application/json"}
    status = await http_server_client.fetch("/api/status", headers=headers)
    assert b'"demoAvailable":true' in status.body
    try:
        response = await http_server_client.fetch("/api/demo/start", method="POST", body="{}",
                                                  headers=headers)
        assert response.code == 200
        manager: NodeManager = world["manager"]
        assert manager.demo and manager.service is not None
        await manager.service.wait_ready(5)
        for _ in range(100):
            if manager.service.ready:
                break
            await asyncio.sleep(0.02)
        msg = secrets.token_hex(32)
        response = await http_server_client.fetch("/api/sign", method="POST", body=f'{{"message":"{msg}"}}',
                                                  headers=headers)
        assert response.code == 200
        frames = [e.payload.decode() for e in world["hub"].ring.recent(500)]
        assert any("Demo peer" in f and "Signature response sent" in f for f in frames)
        assert any("Signature shares aggregated" in f for f in frames)
        again = await http_server_client.fetch("/api/demo/start", method="POST", body="{}", headers=headers)
        assert again.code == 200
    finally:
        await world["manager"].stop()
