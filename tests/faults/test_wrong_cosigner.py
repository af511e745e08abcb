"""A co-signer that answers ECDH with a wrong key share (a valid point, just not its share's), in a 2-of-3
group on the real embedded relay: NIP-44 decryption through the REST route retries with the honest
co-signer, names the wrong one, caches only the secret a MAC proved (which the NIP-46 bunker then uses: one
cipher), later encryptions leave the wrong co-signer out, and with no other co-signer online the error says
what may be wrong instead of caching a poisoned secret."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient

from config.settings import Settings
from handlers import api, relay
from node import NodeManager, NodeOptions, NodeService, nip46, protocol
from node.crypto import curve
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nostr import nip04, nip44
from node.protocol import Inbound
from node.transport.pool import RelayPool
from server import build_application, open_state
from tests.faults.test_hostile_peer import until

pytestmark = pytest.mark.timeout(60)
API_KEY = "k" * 40
SIGN_TIMEOUT = 2.0


class WrongEcdhCosigner(NodeService):
    """A member whose ECDH answers carry its key share plus G: a valid point, so only the result shows it."""

    async def _reply(self, inbound: Inbound, tag: str, data: str) -> bool:
        if tag == protocol.ECDH_RES:
            pkg = json.loads(data)
            pkg["keyshare"] = curve.point_add(bytes.fromhex(pkg["keyshare"]), curve.base_mul(1)).hex()
            data = protocol.compact(pkg)
        return await super()._reply(inbound, tag, data)


class Group:
    def __init__(self, tmp_path: Path) -> None:
        self.group, self.shares = generate_dealer_pkg_gen(2, 3)
        self.config = Settings(data_dir=tmp_path, api_key=API_KEY, relay_write="all")
        self.db, self.hub = open_state(self.config)
        self.events: list[tuple[str, str, Any]] = []
        self.manager: NodeManager | None = None

    def record(self, type_: str, message: str, data: Any = None) -> None:
        self.events.append((type_, message, data))

    def warnings(self) -> list[Any]:
        return [d for t, m, d in self.events if t == "warn" and m.startswith("ECDH key share")]


@pytest.fixture
def group(tmp_path: Path) -> Group:
    return Group(tmp_path)


@pytest.fixture
def app(group: Group) -> tornado.web.Application:
    application = build_application(group.config, group.db, group.hub, None, bcrypt_rounds=4)
    application.add_handlers(r".*", [*relay.ROUTES, *api.ROUTES])
    return application


Nodes = tuple[NodeService, NodeService, NodeService]


async def start(g: Group, app: tornado.web.Application, url: str) -> Nodes:
    options = NodeOptions(sign_timeout=SIGN_TIMEOUT, ping_interval=3600)
    g.manager = NodeManager(emit=g.record, options=options, default_relays=[url],
                            env_group=encode_group(g.group), env_share=encode_share(g.shares[0]),
                            pool_factory=RelayPool, demo_enabled=False)
    app.settings["node"] = g.manager
    honest = NodeService(g.group, g.shares[1], [url], emit=lambda *a: None, pool_factory=RelayPool,
                         options=options)
    wrong = WrongEcdhCosigner(g.group, g.shares[2], [url], emit=lambda *a: None, pool_factory=RelayPool,
                              options=options)
    await g.manager.boot()
    ours = g.manager.service
    assert ours is not None
    for node in (honest, wrong):
        await node.start()
    for node in (ours, honest, wrong):
        assert await node.wait_ready(5)
    await until(lambda: ours.ready and honest.ready and wrong.ready)
    await ours.ping_all()
    # The wrong co-signer answers fastest, so it is asked first.
    ours.peer_table.mark_seen(wrong.pubkey, 1.0)
    ours.peer_table.mark_seen(honest.pubkey, 500.0)
    return ours, honest, wrong


async def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}{path}", method="POST", body=json.dumps(body), raise_error=False,
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
    return response.code, json.loads(response.body or b"null")


async def test_a_wrong_key_share_is_caught_named_and_never_cached(
        group: Group, app: tornado.web.Application, http_server: Any,
        http_server_port: tuple[Any, int]) -> None:
    port = http_server_port[1]
    ours, honest, wrong = await start(group, app, f"ws://127.0.0.1:{port}/")
    try:
        friend_sk = secrets.token_bytes(32)
        friend = curve.pubkey_of(friend_sk)[1:].hex()
        conv = nip44.conversation_key(friend_sk, bytes.fromhex("02" + ours.group_pubkey))
        code, body = await post(port, "/api/nip44/decrypt",
                                {"peer_pubkey": friend, "content": nip44.encrypt_gen(conv, "hello group")})
        assert (code, body) == (200, {"result": "hello group"})
        assert group.warnings() == [{"peers": [wrong.pubkey], "certain": True, "counterparty": friend,
                                     "provenBy": [honest.pubkey]}]
        assert ours.cipher.proven(friend) and ours.cipher.wrong_cosigners == {wrong.pubkey}

        # The bunker's path is the same cipher: the secret the REST call proved costs it no round.
        rounds = ours.cipher.rounds
        signer = nip46.NodeSigner(group.manager)
        assert signer.cipher() is ours.cipher
        assert await signer.decrypt("nip44", friend, nip44.encrypt_gen(conv, "via bunker")) == "via bunker"
        assert ours.cipher.rounds == rounds

        # A new counterparty: the wrong co-signer sits out while the honest one can stand in.
        stranger_sk = secrets.token_bytes(32)
        stranger = curve.pubkey_of(stranger_sk)[1:].hex()
        code, body = await post(port, "/api/nip04/encrypt", {"peer_pubkey": stranger, "content": "for you"})
        assert code == 200
        shared = curve.ecdh_x(stranger_sk, bytes.fromhex("02" + ours.group_pubkey))
        assert nip04.decrypt(shared, body["result"]) == "for you"
    finally:
        for node in (honest, wrong):
            await node.stop()
        assert group.manager is not None
        await group.manager.stop()


async def test_with_no_other_co_signer_online_the_error_says_so_and_nothing_is_cached(
        group: Group, app: tornado.web.Application, http_server: Any,
        http_server_port: tuple[Any, int]) -> None:
    port = http_server_port[1]
    ours, honest, wrong = await start(group, app, f"ws://127.0.0.1:{port}/")
    try:
        await honest.stop()
        ours.peer_table.mark_failed(honest.pubkey)
        friend_sk = secrets.token_bytes(32)
        friend = curve.pubkey_of(friend_sk)[1:].hex()
        conv = nip44.conversation_key(friend_sk, bytes.fromhex("02" + ours.group_pubkey))
        code, body = await post(port, "/api/nip44/decrypt",
                                {"peer_pubkey": friend, "content": nip44.encrypt_gen(conv, "lost")})
        assert code == 400
        assert "co-signer's ECDH share was wrong (no other set of co-signers online" in body["error"]
        assert not ours.cipher.proven(friend) and group.warnings() == []
        # The honest co-signer comes back: the next decryption of the same kind works and is proven.
        await honest.start()
        assert await honest.wait_ready(5)
        await until(lambda: honest.ready)
        await ours.ping(honest.pubkey)
        ours.peer_table.mark_seen(honest.pubkey, 500.0)
        assert await ours.decrypt("nip44", friend, nip44.encrypt_gen(conv, "found")) == "found"
        assert ours.cipher.proven(friend) and ours.cipher.wrong_cosigners == {wrong.pubkey}
    finally:
        for node in (honest, wrong):
            await node.stop()
        assert group.manager is not None
        await group.manager.stop()
