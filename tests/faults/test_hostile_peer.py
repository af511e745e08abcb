"""Garbage, replayed, stale and oversized kind-20004 messages published straight to the embedded relay
(signed with a member's share key or a stranger's key): each is refused with an event that says why, none
is handled twice, nothing crashes, and the node signs afterwards."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.web
import tornado.websocket

from config.settings import Settings
from handlers import relay
from node import NodeOptions, NodeService, protocol
from node.crypto import curve
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nostr.event import Event, sign_event_gen
from node.nostr.messages import build_event
from node.transport.pool import RelayPool
from server import build_application, open_state

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app(tmp_path: Path) -> tornado.web.Application:
    config = Settings(data_dir=tmp_path, api_key="k" * 40, relay_write="all")  # strangers reach the node
    db, hub = open_state(config)
    application = build_application(config, db, hub, None, bcrypt_rounds=4)
    application.add_handlers(r".*", relay.ROUTES)
    return application


class Publisher:
    """A bare NIP-01 client: publish an event, return the relay's OK."""

    def __init__(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        self.ws = ws

    async def send(self, event: Event) -> list[Any]:
        await self.ws.write_message(build_event(event))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.read_message(), 5))  # type: ignore[arg-type]
            if reply[0] == "OK" and reply[1] == event.id:
                return reply  # type: ignore[no-any-return]


async def until(check: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_hostile_messages_are_refused(http_server: Any, http_server_port: tuple[Any, int]) -> None:
    url = f"ws://127.0.0.1:{http_server_port[1]}/"
    group, shares = generate_dealer_pkg_gen(2, 3)
    seen: list[tuple[str, str, Any]] = []

    def record(type_: str, message: str, data: Any = None) -> None:
        seen.append((type_, message, data))

    a = NodeService(group, shares[0], [url], emit=record,
                    pool_factory=RelayPool, options=NodeOptions(sign_timeout=2.0, ping_interval=3600))
    b = NodeService(group, shares[1], [url], emit=lambda *x: None, pool_factory=RelayPool,
                    options=NodeOptions(sign_timeout=2.0, ping_interval=3600))
    ws = await tornado.websocket.websocket_connect(url)
    pub = Publisher(ws)
    member_sk, stranger_sk = shares[1].seckey, secrets.token_bytes(32)
    try:
        for node in (a, b):
            await node.start()
            assert await node.wait_ready(5)
        await until(lambda: a.ready and b.ready)

        def messages() -> list[str]:
            return [m for _, m, _ in seen]

        now = int(time.time())
        # Garbage content from a member: bounced with the decryption error.
        garbage = sign_event_gen(member_sk, protocol.KIND, [["p", a.pubkey]], "not an envelope", now)
        assert (await pub.send(garbage))[2] is True
        await until(lambda: any(m.startswith("Message bounced:") for m in messages()))

        # The same ping request sent twice as one event, then re-sealed with the same message id.
        msg_id = protocol.new_msg_id()
        ping = protocol.seal(member_sk, a.pubkey, protocol.PING_REQ, msg_id, "ping", now)
        await pub.send(ping)
        second = await pub.send(ping)
        assert second[2] is True and second[3].startswith("duplicate")
        await pub.send(protocol.seal(member_sk, a.pubkey, protocol.PING_REQ, msg_id, "ping", now))
        await until(lambda: "Message bounced: replayed message id" in messages())
        assert messages().count("Ping request") == 1

        # A sign request with a stale session stamp and one with a malformed session.
        gid_session = protocol.compact({"gid": "00" * 32})
        await pub.send(protocol.seal(member_sk, a.pubkey, protocol.SIGN_REQ, protocol.new_msg_id(),
                                     gid_session, now))
        await until(lambda: any(m.startswith("Signature request rejected: malformed session")
                                for m in messages()))
        from node.crypto.session import create_session
        members = protocol.members_for(group, [a.pubkey, b.pubkey])
        stale = create_session(group, members, [[secrets.token_hex(32)]], stamp=now - 1000)
        await pub.send(protocol.seal(member_sk, a.pubkey, protocol.SIGN_REQ, protocol.new_msg_id(),
                                     protocol.compact(stale.to_json()), now))
        await until(lambda: "Signature request rejected: session stamp is outside the ±300s window"
                    in messages())

        # Oversized: data over the node's limit (the relay takes it), content over the relay's limit.
        big = protocol.seal(member_sk, a.pubkey, protocol.ECHO_REQ, protocol.new_msg_id(), "a" * 70_000, now)
        assert (await pub.send(big))[2] is True
        await until(lambda: "Message bounced: message data too large" in messages())
        huge = sign_event_gen(member_sk, protocol.KIND, [["p", a.pubkey]], "A" * 120_000, now)
        refused = await pub.send(huge)
        assert refused[2] is False and "content longer" in refused[3]

        # A response nobody asked for (or one arriving after its request timed out) is reported, not used.
        await pub.send(protocol.seal(member_sk, a.pubkey, protocol.PING_RES, protocol.new_msg_id(),
                                     '{"send":true,"recv":true}', now))
        await until(lambda: "Message bounced: response to no pending request" in messages())

        # A stranger's well-formed sign request never reaches the node (not an author of its filter).
        fresh = create_session(group, members, [[secrets.token_hex(32)]], stamp=now)
        await pub.send(protocol.seal(stranger_sk, a.pubkey, protocol.SIGN_REQ, protocol.new_msg_id(),
                                     protocol.compact(fresh.to_json()), now))
        # A captured event replayed later than the stamp window: refused even if a relay delivers it.
        old = protocol.seal(member_sk, a.pubkey, protocol.PING_REQ, protocol.new_msg_id(), "ping", now - 1000)
        a._on_event(old, url)
        assert any(m.startswith("Message bounced: stale event") for m in messages())

        # A member's ping published after it on the same socket is the marker: once the node has handled
        # it, the relay has passed on everything published before.
        marker = protocol.new_msg_id()
        await pub.send(protocol.seal(member_sk, a.pubkey, protocol.PING_REQ, marker, "ping", now))
        await until(lambda: any(m == "Ping request" and isinstance(d, dict) and d.get("id") == marker
                                for _, m, d in seen))
        stranger = curve.pubkey_of(stranger_sk)[1:].hex()
        assert not any(isinstance(d, dict) and d.get("from") == stranger for _, _, d in seen)
        assert not any(t == "error" for t, _, _ in seen), [e for e in seen if e[0] == "error"]
        assert messages().count("Signature request received") == 2  # the malformed and the stale one
        assert "Signature response sent" not in messages()

        # The node still signs.
        entries = await a.sign(secrets.token_hex(32))
        assert curve.schnorr_verify(bytes.fromhex(a.group_pubkey), bytes.fromhex(entries[0][0]),
                                    bytes.fromhex(entries[0][2]))
    finally:
        ws.close()
        for node in (a, b):
            await node.stop()
