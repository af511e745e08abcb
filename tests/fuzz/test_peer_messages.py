"""Fuzz the node's inbound path (node/protocol.py via NodeService._on_event) with messages that reach the
parser: kind-20004 events correctly signed and encrypted with the transport cipher, from a group member or
from a stranger, carrying random envelopes, random tags and data, and session / ECDH packages with one
field replaced.

Every message is refused or answered with an event (responses to nothing pending are dropped quietly), no
exception escapes a node task ("Node error") or is logged, and the node still signs afterwards.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import pytest
import tornado.ioloop
from hypothesis import given
from hypothesis import strategies as st

from node import protocol
from node.crypto import curve
from node.crypto.ecdh import create_ecdh_pkg
from node.crypto.session import create_session
from node.nostr import cipher
from node.nostr.event import sign_event_gen
from tests.fuzz.conftest import (
    ErrorTrap,
    World,
    fuzz_settings,
    run,
    scales,
)
from tests.fuzz.strategies import dumps, json_values, numbers, text

TAGS = [protocol.PING_REQ, protocol.ECHO_REQ, protocol.SIGN_REQ, protocol.ECDH_REQ, protocol.PING_RES,
        protocol.SIGN_RES, protocol.ECDH_RES, "/x/req", "/sign/REQ"]


def session_packages(world: World) -> st.SearchStrategy[Any]:
    """A valid session from peer 2 (members 1 and 2), with one field replaced or removed."""
    group = world.group

    def build(field: str | None, value: Any, hashes: int) -> dict[str, Any]:
        vectors = [[secrets.token_hex(32)] for _ in range(hashes)]
        pkg = create_session(group, [1, 2], vectors, stamp=int(time.time())).to_json()
        if field is not None:
            pkg[field] = value
        return dict(pkg)

    fields = st.one_of(st.none(),
                       st.sampled_from(["gid", "sid", "members", "hashes", "stamp", "type", "content"]))
    values = st.one_of(json_values(), numbers, st.sampled_from([[1, 2], [1, 1], [2, 3], [1, 2, 3], [0, 1], [],
                                                                [[("a" * 64)]], "ab" * 32, 2**33]))
    return st.builds(build, fields, values, st.integers(1, 3))


def ecdh_packages(world: World) -> st.SearchStrategy[Any]:
    group, share = world.group, world.shares[1]

    def build(field: str | None, value: Any) -> dict[str, Any]:
        target = curve.pubkey_of(secrets.token_bytes(32))[1:].hex()
        pkg = dict(create_ecdh_pkg(group, share, [1, 2], target).to_json())
        if field is not None:
            pkg[field] = value
        return pkg

    fields = st.one_of(st.none(), st.sampled_from(["idx", "members", "ecdh_pk", "keyshare"]))
    values = st.one_of(json_values(), numbers, st.sampled_from([[1, 2], [2, 2], [9], "02" + "ff" * 32, 3]))
    return st.builds(build, fields, values)


def envelopes(world: World) -> st.SearchStrategy[str]:
    """Decrypted plaintexts: well-formed envelopes with random or package data, or anything else."""
    msg_ids = st.one_of(st.builds(lambda: secrets.token_hex(16)), text)
    data = st.one_of(text, st.builds(lambda v: dumps(v).decode(), json_values()), st.just("ping"),
                     session_packages(world).map(lambda p: json.dumps(p)),
                     ecdh_packages(world).map(lambda p: json.dumps(p)),
                     st.integers(1, 70_000).map(lambda n: "x" * n),
                     st.integers(900, 3000).map(lambda n: "[" * n + "]" * n))
    envelope = st.builds(lambda t, i, d: json.dumps([t, i, d]), st.one_of(st.sampled_from(TAGS), text),
                         msg_ids, data)
    anything = st.one_of(envelope, envelope, envelope, st.builds(lambda v: dumps(v).decode(), json_values()),
                         text, st.integers(900, 3000).map(lambda n: "[" * n + "]" * n))
    # the cipher carries UTF-8: raw lone surrogates cannot be sent (escaped ones in JSON can, and are)
    return anything.map(lambda s: s.encode("utf-8", "replace").decode())


async def deliver(world: World, sender_sk: bytes, plaintext: str, stranger: bool) -> list[dict[str, Any]]:
    """Seal ``plaintext`` to the node as ``sender_sk`` and wait until the node has dealt with it."""
    service = world.manager.service  # type: ignore[union-attr]
    assert service is not None
    content = cipher.encrypt_payload_gen(sender_sk, bytes.fromhex(service.pubkey), plaintext)
    event = sign_event_gen(sender_sk, protocol.KIND, [["p", service.pubkey]], content, int(time.time()))
    before = len(world.events)
    world.net.deliver(event, ignore_filters=stranger)
    for _ in range(200):  # the node's tasks (replies, rejections) finish within a few loop turns
        await asyncio.sleep(0.005)
        if len(world.events) > before and not len(service._tasks):
            break
    return world.events[before:]


@pytest.mark.parametrize("examples", scales(40))
def test_peer_messages(
    world: World, io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap, examples: int
) -> None:
    """Random inbound messages from members and strangers (see module doc)."""
    member_sk = world.shares[1].seckey

    @fuzz_settings(examples)
    @given(from_member=st.booleans(), plaintext=envelopes(world))
    def case(from_member: bool, plaintext: str) -> None:
        sender = member_sk if from_member else secrets.token_bytes(32)
        emitted = run(io_loop, lambda: deliver(world, sender, plaintext, stranger=not from_member))
        errors.check()
        assert not world.node_errors(), world.node_errors()[:1]
        try:
            tag = json.loads(plaintext)[0]
        except (ValueError, RecursionError, TypeError, KeyError, IndexError):
            tag = None
        if not isinstance(tag, str) or tag not in protocol.RESPONSE_TAGS or not from_member:
            assert emitted, "the node said nothing about an inbound message"

    case()

    async def still_signs() -> None:
        service = world.manager.service  # type: ignore[union-attr]
        assert service is not None
        entries = await service.sign(secrets.token_hex(32))
        assert len(entries) == 1

    run(io_loop, still_signs)
