"""Storage faults: the database locked by another process (``BEGIN EXCLUSIVE``) or full (SQLite's own
``max_page_count`` limit, which fails writes with SQLITE_FULL exactly like a full disk) → writes answer 503
with a clear ``error`` event, reads and signing keep working, and everything recovers when the fault ends."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from config.settings import Settings
from handlers import routes
from node import NodeManager, NodeOptions, NodeService
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.transport.pool import RelayPool
from server import build_application, open_state
from store.credentials import CredentialStore
from store.policies import SqlitePolicyStore
from store.users import UserStore

pytestmark = pytest.mark.timeout(60)
API_KEY = "s" * 40
AUTH = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
PASSWORD = "storage fault password"


class World:
    def __init__(self, tmp: Path, port: int) -> None:
        self.config = Settings(data_dir=tmp, api_key=API_KEY, credentials_key=secrets.token_bytes(32),
                               host_port=port, sign_timeout=2.0)
        self.db, self.hub = open_state(self.config)
        self.hub.storage_retry = 0.05  # the event log retries its write sooner than the 1 s default
        self.group, self.shares = generate_dealer_pkg_gen(2, 3)
        self.relay = f"ws://127.0.0.1:{port}/"
        self.creds = (encode_group(self.group), encode_share(self.shares[0]))
        self.manager = NodeManager(
            emit=self.hub.publish, options=NodeOptions(sign_timeout=2.0, ping_interval=3600),
            default_relays=[self.relay], env_group=self.creds[0], env_share=self.creds[1],
            credential_store=CredentialStore(self.db, self.config.credentials_key or b""),
            policy_store=SqlitePolicyStore(self.db), pool_factory=RelayPool,
        )
        self.peer = NodeService(self.group, self.shares[1], [self.relay], emit=lambda *a: None,
                                pool_factory=RelayPool, options=NodeOptions(sign_timeout=2.0))

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(e.payload) for e in self.hub.ring.recent(10_000)]


@pytest.fixture
def world(tmp_path: Path, http_server_port: tuple[Any, int], io_loop: Any) -> Any:
    w = World(tmp_path, http_server_port[1])
    yield w
    io_loop.run_sync(w.manager.stop)
    io_loop.run_sync(w.peer.stop)


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    application = build_application(world.config, world.db, world.hub, world.manager, bcrypt_rounds=4)
    application.add_handlers(r".*", routes.ROUTES)
    return application


async def call(client: Any, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await client.fetch(path, method=method, raise_error=False,
                                  headers=headers if headers is not None else AUTH,
                                  body=None if body is None else json.dumps(body), request_timeout=10)
    return response.code, json.loads(response.body) if response.body else None


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) for a condition to hold."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def start_node(world: World) -> None:
    await world.manager.boot()
    await world.peer.start()
    service = world.manager.service
    assert service is not None
    await wait_until(lambda: service.ready and world.peer.ready)


async def check_reads_and_signing(client: Any, world: World) -> None:
    for path in ("/api/status", "/api/peers", "/api/env"):
        code, _ = await call(client, "GET", path)
        assert code == 200, path
    code, body = await call(client, "POST", "/api/sign", {"message": secrets.token_hex(32)})
    assert code == 200, body


async def check_writes_refused(client: Any, world: World, reason: str, small_writes: bool = True) -> None:
    peer = world.peer.pubkey
    # 32 long relay URLs: a row too big for the free space left in its page (see test_database_full).
    relays = [f"ws://relay{n}.example/{'p' * 480}" for n in range(32)]
    code, body = await call(client, "POST", "/api/env", {"GROUP_CRED": world.creds[0],
                                                          "SHARE_CRED": world.creds[1], "RELAYS": relays})
    assert code == 503 and body["error"] == f"Storage unavailable: {reason}", body
    errors = [f["message"] for f in world.frames() if f["type"] == "error"]
    assert f"Storage unavailable: {reason}" in errors
    assert world.manager.source == "env"  # the node was not restarted on credentials that were not saved
    if not small_writes:
        return
    code, body = await call(client, "PUT", f"/api/peers/{peer}/policy", {"allowReceive": False})
    assert code == 503 and reason in body["error"]
    code, body = await call(client, "GET", f"/api/peers/{peer}/policy")
    assert code == 200 and body["policy"]["effectiveReceive"] is True  # not half-applied in memory
    code, body = await call(client, "POST", "/api/auth/login", {"username": "alice", "password": PASSWORD},
                            headers={"Content-Type": "application/json"})
    assert code == 503 and reason in body["error"]


async def check_writes_work(client: Any, world: World) -> None:
    code, _ = await call(client, "PUT", f"/api/peers/{world.peer.pubkey}/policy", {"allowReceive": False})
    assert code == 200
    code, body = await call(client, "POST", "/api/auth/login", {"username": "alice", "password": PASSWORD},
                            headers={"Content-Type": "application/json"})
    assert code == 200 and body["sessionId"]
    # The event log retries on its own timer; its marker is the event saying so, then one more flush.
    await wait_until(lambda: any(f["message"] == "Event log is being written again" for f in world.frames())
                     and world.hub.ring.pending == 0)
    stored = world.db.query_all("SELECT MAX(seq) FROM events")[0][0]
    assert stored == world.hub.last_seq and world.hub.storage_error is None


async def test_database_locked_by_another_process(http_server_client: Any, world: World) -> None:

    UserStore(world.db, rounds=4).create_sync("alice", PASSWORD)
    await start_node(world)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3,sys\n"
         f"c = sqlite3.connect({str(world.db.path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nc.execute('CREATE TABLE IF NOT EXISTS holder (x)')\n"
         "print('locked', flush=True)\nsys.stdin.readline()\nc.execute('ROLLBACK')\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        await check_reads_and_signing(http_server_client, world)
        await check_writes_refused(http_server_client, world, "database is locked")
        assert any(f["message"] == "Event log cannot be written: database is locked" for f in world.frames())
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)
    await check_writes_work(http_server_client, world)


async def test_database_full(http_server_client: Any, world: World) -> None:

    UserStore(world.db, rounds=4).create_sync("alice", PASSWORD)
    await start_node(world)
    pages = world.db.query_all("PRAGMA page_count")[0][0]
    world.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # this connection's size limit: SQLITE_FULL
    world.db.execute("CREATE TABLE filler (x BLOB)")
    for size in (4000, 500, 50, 1):  # fill every page to the brim
        try:
            for _ in range(100_000):
                world.db.execute("INSERT INTO filler VALUES (randomblob(?))", (size,))
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
    await check_reads_and_signing(http_server_client, world)
    # SQLITE_FULL only hits a write that needs a new page; small rows still fit in their table's last page.
    await check_writes_refused(http_server_client, world, "database or disk is full", small_writes=False)
    for _ in range(40):  # events accumulate until the events table needs a page
        await call(http_server_client, "POST", "/api/sign", {"message": secrets.token_hex(32)})
        if world.hub.storage_error:
            break
    assert world.hub.storage_error == "database or disk is full"
    world.db.execute("DROP TABLE filler")
    world.db.execute("PRAGMA max_page_count = 1073741823")
    await check_writes_work(http_server_client, world)
