"""Fixtures for the bunker tests: the real embedded relay on a loopback port, real SQLite storage, a bunker
whose signer is a plain key (so results can be checked against NIP-01/NIP-44 directly), and a clock tests
can move forward."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.ciphers import ProvenCipher, SharedSecret
from node.crypto import curve
from node.errors import NodeError
from node.nip46.bunker import Bunker, BunkerOptions
from node.transport.pool import RelayPool
from store.db import Database
from store.nip46 import Nip46Store
from tests.nip46.client import Nip46Client
from tests.transport.conftest import LocalServer, relay_app

pytestmark = pytest.mark.timeout(60)


class Clock:
    """Wall time plus an offset a test can advance (no sleeping to let time pass)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class KeySigner:
    """``GroupSigner`` over one plain secret key: the protocol tests' stand-in for the threshold node."""

    def __init__(self) -> None:
        self.seckey = secrets.token_bytes(32)
        self.pubkey = curve.pubkey_of(self.seckey)[1:].hex()
        self.available = True
        self.relays: list[str] = []
        self.signed: list[str] = []
        self.fail: NodeError | None = None
        self.gate: asyncio.Event | None = None
        self.cipher = ProvenCipher(self._derive)

    def group_pubkey(self) -> str | None:
        return self.pubkey if self.available else None

    def node_relays(self) -> list[str]:
        return list(self.relays)

    async def sign_event_id(self, event_id: str) -> str:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.signed.append(event_id)
        return curve.schnorr_sign(self.seckey, bytes.fromhex(event_id), secrets.token_bytes(32)).hex()

    async def _derive(self, peer: str, avoid: frozenset[str], timeout: float) -> SharedSecret:
        if self.fail is not None:
            raise self.fail
        return SharedSecret(curve.ecdh_point(self.seckey, bytes.fromhex(peer)))

    async def encrypt(self, scheme: str, peer: str, plaintext: str) -> str:
        return await self.cipher.encrypt(scheme, peer, plaintext)

    async def decrypt(self, scheme: str, peer: str, payload: str) -> str:
        return await self.cipher.decrypt(scheme, peer, payload)


class Recorder:
    """Collects the events the bunker emits."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def __call__(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    def of(self, type_: str) -> list[Any]:
        return [data for t, _, data in self.events if t == type_]


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Wait (bounded) until ``check()`` is truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def relay(io_loop: Any) -> Iterator[LocalServer]:
    """The embedded relay on a loopback port."""
    server = LocalServer(relay_app).start()
    yield server
    io_loop.run_sync(server.stop, timeout=5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Nip46Store]:
    db = Database.open_in(tmp_path)
    yield Nip46Store(db, secrets.token_bytes(32))
    db.close()


@pytest.fixture
def signer(relay: LocalServer) -> KeySigner:
    made = KeySigner()
    made.relays = [relay.url]
    return made


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_bunker(signer: KeySigner, storage: Nip46Store, recorder: Recorder, clock: Clock,
                **options: Any) -> Bunker:
    """A bunker on real relay pools that never ticks by itself (tests call ``tick``)."""
    opts = BunkerOptions(tick_interval=3600, publish_timeout=3, connect_wait=3, **options)
    return Bunker(signer, storage, emit=recorder, pool_factory=RelayPool, options=opts, clock=clock)


@pytest.fixture
def bunker(io_loop: Any, signer: KeySigner, storage: Nip46Store, recorder: Recorder, clock: Clock,
           relay: LocalServer) -> Iterator[Bunker]:
    made = make_bunker(signer, storage, recorder, clock)

    async def start() -> None:
        await made.start()
        assert await made._listener.wait_subscribed([relay.url], 5) == [relay.url]

    io_loop.run_sync(start, timeout=10)
    yield made
    io_loop.run_sync(made.stop, timeout=10)


@pytest.fixture
def clients(io_loop: Any, relay: LocalServer, bunker: Bunker) -> Iterator[Callable[..., Any]]:
    """Factory (async) of started clients on the relay; closed at the end."""
    made: list[Nip46Client] = []

    async def make(relays: list[str] | None = None, seckey: bytes | None = None) -> Nip46Client:
        assert bunker.pubkey is not None
        client = await Nip46Client(relays or [relay.url], bunker.pubkey, seckey).start()
        made.append(client)
        return client

    yield make
    for client in made:
        io_loop.run_sync(client.close, timeout=5)


async def paired(bunker: Bunker, make: Callable[..., Any], **connect: Any) -> Any:
    """A client paired through a fresh bunker link."""
    link = bunker.new_bunker_link()
    secret = link["uri"].split("secret=")[1]
    client = await make(**connect)
    answer = await client.call("connect", [bunker.pubkey, secret])
    assert answer.get("result") == "ack", answer
    return client
