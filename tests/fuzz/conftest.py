"""Shared pieces of the fuzz tests: example counts, the error-log trap, a raw HTTP client, live servers.

Every target runs twice: ``quick`` (a few dozen examples, part of ``make test``) and ``fuzz`` (marked
``fuzz``; ``IGLOO_FUZZ_EXAMPLES`` examples, 10 000 under ``make fuzz``). The hypothesis tests are plain
functions that drive the server through ``io_loop.run_sync`` one example at a time, so a real Igloo
application on a loopback port answers every case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tornado.ioloop
import tornado.web
from hypothesis import HealthCheck, settings

from config.settings import Settings
from node import NodeManager, NodeOptions, NodeService
from node.crypto.credentials import GroupPackage, SharePackage, encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from server import build_application, open_state
from store.credentials import CredentialStore
from store.policies import SqlitePolicyStore
from store.users import UserStore
from tests.node.fakenet import FakeNetwork

FUZZ_EXAMPLES = int(os.environ.get("IGLOO_FUZZ_EXAMPLES", "0") or 0) or 150
API_KEY = "fuzz-api-key-" + "0123456789abcdef" * 2
JSON_HEADERS = [("X-API-Key", API_KEY.encode()), ("Content-Type", b"application/json")]
BASIC_USER, BASIC_PASS = "basic-user", "basic-pass-word"
USERNAME, PASSWORD = "alice", "correct horse battery"
T = TypeVar("T")


def scales(quick: int) -> list[Any]:
    """Parameters ``examples``: a quick run in the normal suite and the long one in the fuzz group."""
    return [
        pytest.param(quick, id="quick"),
        pytest.param(FUZZ_EXAMPLES, id="fuzz", marks=[pytest.mark.fuzz, pytest.mark.timeout(0)]),
    ]


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for one target; the quick run is derandomized so the suite is reproducible."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples < FUZZ_EXAMPLES or not os.environ.get("IGLOO_FUZZ_EXAMPLES"),
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


class ErrorTrap(logging.Handler):
    """Collects ERROR records that carry an exception (an unhandled error anywhere in the process)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)

    def check(self) -> None:
        """Fail with the first trapped traceback (and forget them all)."""
        if not self.records:
            return
        record = self.records[0]
        self.records.clear()
        detail = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        raise AssertionError(f"unhandled exception logged by {record.name}: {record.getMessage()}\n{detail}")


@pytest.fixture
def errors() -> Iterator[ErrorTrap]:
    """The error trap on the root logger (tornado.application, asyncio, igloo.* all propagate to it)."""
    trap = ErrorTrap()
    root = logging.getLogger()
    root.addHandler(trap)
    try:
        yield trap
    finally:
        root.removeHandler(trap)
    trap.check()


def run(io_loop: tornado.ioloop.IOLoop, make: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    """Run one coroutine to completion on the test's loop (the loop is idle between examples)."""
    result: T = io_loop.run_sync(make, timeout=timeout)
    return result


# ----- a raw HTTP/1.1 client: any bytes in headers and bodies -------------------------------------


@dataclass
class RawResponse:
    """Status (0 when the server closed without answering), headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def build_request(method: str, path: bytes | str, headers: list[tuple[str, bytes]], body: bytes) -> bytes:
    """One request with ``Connection: close`` and an exact Content-Length."""
    target = path.encode("latin-1") if isinstance(path, str) else path
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name.encode("latin-1") + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def raw_http(port: int, request: bytes, timeout: float = 20.0) -> RawResponse:
    """Send ``request`` and read the whole answer (the server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/1."):
        return RawResponse(0, {}, data)
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


# ----- a live Igloo with or without a node --------------------------------------------------------


@dataclass
class World:
    """One Igloo application and what the tests need to talk to it."""

    kind: str  # "none" (no node manager) | "idle" (manager, no credentials) | "running"
    config: Settings
    app: tornado.web.Application
    manager: NodeManager | None
    group: GroupPackage
    shares: list[SharePackage]
    net: FakeNetwork
    peers: list[NodeService] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def group_cred(self) -> str:
        return encode_group(self.group)

    @property
    def share_creds(self) -> list[str]:
        return [encode_share(s) for s in self.shares]

    @property
    def member_pubkeys(self) -> list[str]:
        return self.group.member_pubkeys()

    def node_errors(self) -> list[dict[str, Any]]:
        """Events that report an exception escaping a node task."""
        return [e for e in self.events if e.get("type") == "error" and e.get("message") == "Node error"]


def fuzz_config(tmp: Path, **extra: Any) -> Settings:
    """Settings with every credential kind configured and limits out of the fuzzer's way."""
    values: dict[str, Any] = {
        "data_dir": tmp,
        "api_key": API_KEY,
        "basic_auth_user": BASIC_USER,
        "basic_auth_pass": BASIC_PASS,
        "admin_secret": "fuzz-admin-secret",
        "credentials_key": secrets.token_bytes(32),
        "sign_timeout": 0.5,
        "rate_limit_login_max": 10**9,
        "rate_limit_enabled": False,  # the per-client request limits have fuzz targets of their own
        "ws_client_rate": 100_000,
        "ws_ping_interval": 0,
        "ws_max_per_ip": 10_000,
    }
    values.update(extra)
    return Settings(**values)


def make_world(kind: str, tmp: Path, **extra: Any) -> World:
    """Build (not start) an app; ``start_world`` brings the node up for ``running``."""
    config = fuzz_config(tmp, **extra)
    db, hub = open_state(config)
    UserStore(db, rounds=4).create_sync(USERNAME, PASSWORD)
    group, shares = generate_dealer_pkg_gen(2, 3)
    net = FakeNetwork()
    manager = None
    if kind != "none":
        manager = NodeManager(
            emit=hub.publish,
            options=NodeOptions(sign_timeout=0.5, ping_interval=3600, sign_budget=10**9),
            default_relays=["fake://relay"],
            credential_store=CredentialStore(db, config.credentials_key),  # type: ignore[arg-type]
            policy_store=SqlitePolicyStore(db),
            pool_factory=net.factory,
        )
    app = build_application(config, db, hub, manager, bcrypt_rounds=4)
    world = World(kind, config, app, manager, group, shares, net)
    hub.add_listener(world.events.append)
    return world


async def start_world(world: World) -> None:
    """Start the two honest peers and, for ``running``, this node on share 1."""
    for share in world.shares[1:]:
        peer = NodeService(world.group, share, ["fake://relay"], emit=lambda *a: None,
                           pool_factory=world.net.factory,
                           options=NodeOptions(sign_timeout=0.5, ping_interval=3600, sign_budget=10**9))
        await peer.start()
        world.peers.append(peer)
    if world.kind == "running":
        assert world.manager is not None
        await world.manager.apply_credentials(world.group_cred, world.share_creds[0])


async def stop_world(world: World) -> None:
    """Stop the node and the peers."""
    if world.manager is not None:
        await world.manager.stop()
    for peer in world.peers:
        await peer.stop()


def live_world(kind: str, io_loop: tornado.ioloop.IOLoop, tmp: Path) -> Iterator[World]:
    """A started world of ``kind`` for the length of a test (the body of the ``world`` fixtures)."""
    world = make_world(kind, tmp)
    run(io_loop, lambda: start_world(world))
    yield world
    run(io_loop, lambda: stop_world(world))


@pytest.fixture
def world(io_loop: tornado.ioloop.IOLoop, tmp_path: Path) -> Iterator[World]:
    """A running node behind the app; a module that needs another world overrides this fixture."""
    yield from live_world("running", io_loop, tmp_path)


@pytest.fixture
def app(world: World) -> tornado.web.Application:
    """The application ``http_server`` serves."""
    return world.app
