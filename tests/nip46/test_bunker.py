"""The bunker end to end over the real embedded relay (loopback) with real SQLite storage: pairing, the
session gate, every method, permissions, the approval queue, expiry, relays edited live, key rotation,
restarts.

The signer is a plain key here (``KeySigner``) so every result can be checked with NIP-01/NIP-44 directly;
``test_threshold.py`` runs the same bunker on a real 2-of-3 group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from node.crypto import curve
from node.errors import NodeUnavailable
from node.nip46.bunker import Bunker, TooManySessions
from node.nip46.records import APPROVED, COMPLETED, DENIED, EXPIRED, FAILED, PENDING, InvalidTransition
from node.nip46.uri import parse_nostrconnect
from node.nostr import nip04, nip44
from node.nostr.event import Event, verify_event
from store.db import Database
from tests.nip46.client import Nip46Client
from tests.nip46.conftest import Clock, KeySigner, Recorder, make_bunker, paired, until
from tests.transport.conftest import LocalServer, relay_app

pytestmark = pytest.mark.timeout(60)


def note(kind: int = 1, content: str = "hello from a bunker client", **extra: Any) -> str:
    return json.dumps({"kind": kind, "created_at": int(time.time()), "tags": [["t", "igloo"]],
                       "content": content, **extra})


def secret_of(link: dict[str, Any]) -> str:
    return str(link["uri"].split("secret=")[1])


# ----------------------------------------------------------------------------------------- pairing


async def test_bunker_link_pairs_once_and_the_client_gets_the_group_key(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder, relay: LocalServer) -> None:
    link = bunker.new_bunker_link()
    assert link["pubkey"] == bunker.pubkey != signer.pubkey  # the transport key is not the user key
    assert link["relays"] == [relay.url] and link["expiresAt"] > time.time() + 590
    secret = secret_of(link)
    client = await clients()
    meta = json.dumps({"name": "Test Client", "url": "https://client.example"})
    answer = await client.call("connect", ["", secret, "sign_event:1,nip44_encrypt", meta])
    assert answer == {"id": answer["id"], "result": "ack", "_author": bunker.pubkey}
    session = bunker.session(client.pubkey)
    assert session is not None and session.requested == ["sign_event:1", "nip44_encrypt"]
    assert session.profile == {"name": "Test Client", "url": "https://client.example"}
    # requested permissions are shown, never granted by themselves
    assert session.permissions.decide("sign_event", 1).value == "ask"
    [paired_event] = recorder.of("nip46:session_pending")
    assert paired_event["change"] == "paired" and paired_event["session"] == client.pubkey
    assert (await client.call("get_public_key"))["result"] == signer.pubkey
    assert (await client.call("ping"))["result"] == "pong"

    # clients send connect again on every start, with the same secret: ack, nothing new
    assert (await client.call("connect", [signer.pubkey, secret]))["result"] == "ack"
    assert len(recorder.of("nip46:session_pending")) == 1

    # the same secret from another key is refused and creates nothing
    thief = await clients()
    refused = await thief.call("connect", [bunker.pubkey, secret])
    assert "already used" in refused["error"] and bunker.session(thief.pubkey) is None
    assert "unauthorized" in (await thief.call("get_public_key"))["error"]


async def test_wrong_expired_and_superseded_secrets_create_nothing(
        bunker: Bunker, clients: Any, clock: Clock, recorder: Recorder) -> None:
    client = await clients()
    assert "invalid secret" in (await client.call("connect", [bunker.pubkey, "guess"]))["error"]
    assert "secret is required" in (await client.call("connect", [bunker.pubkey]))["error"]
    old = secret_of(bunker.new_bunker_link())
    new = secret_of(bunker.new_bunker_link())
    assert "invalid secret" in (await client.call("connect", [bunker.pubkey, old]))["error"]  # rotated away
    clock.advance(601)  # the client's clock moves with ours: its request is not stale
    expired = await client.call("connect", [bunker.pubkey, new], created_at=int(clock()))
    assert "expired" in expired["error"]
    assert bunker.sessions() == [] and recorder.of("nip46:session_pending") == []
    assert bunker.storage.load_requests(None, 100) == []


async def test_new_sessions_are_limited_per_window_and_a_refused_connect_keeps_its_secret(
        io_loop: Any, signer: KeySigner, storage: Any, recorder: Recorder, clock: Clock,
        relay: LocalServer) -> None:
    bunker = make_bunker(signer, storage, recorder, clock, session_limit=2, session_window=600)
    await bunker.start()
    apps: list[Nip46Client] = []
    try:
        await bunker._listener.wait_subscribed([relay.url], 5)
        for _ in range(3):
            apps.append(await Nip46Client([relay.url], bunker.pubkey or "").start())
        for app in apps[:2]:
            assert (await app.call("connect", ["", secret_of(bunker.new_bunker_link())]))["result"] == "ack"
        kept = secret_of(bunker.new_bunker_link())
        refused = await apps[2].call("connect", ["", kept])
        assert refused["error"] == "unauthorized: too many new sessions, try again later"
        assert bunker.session(apps[2].pubkey) is None and len(bunker.sessions()) == 2
        # an app already paired is not new: its connect on start-up is still acknowledged
        assert (await apps[0].call("connect", ["", "any"]))["result"] == "ack"
        with pytest.raises(TooManySessions) as limited:
            await bunker.pair_nostrconnect(parse_nostrconnect(
                f"nostrconnect://{'cd' * 32}?relay={relay.url}&secret=s"), [])
        assert limited.value.retry_after == 300  # two per 600 s: one more every 300 s
        clock.advance(299)
        again = await apps[2].call("connect", ["", kept], created_at=int(clock()))
        assert "too many new sessions" in again["error"]
        clock.advance(1)
        paired_now = await apps[2].call("connect", ["", kept], created_at=int(clock()))
        assert paired_now["result"] == "ack"  # the secret was not spent by the refusal
        assert bunker.session(apps[2].pubkey) is not None and bunker.counters["sessions_limited"] == 3
    finally:
        for app in apps:
            await app.close()
        await bunker.stop()


async def test_strangers_get_one_error_each_and_at_most_one_log_line(
        bunker: Bunker, clients: Any, recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="igloo.nip46")
    stranger = await clients()
    for method, params in [("get_public_key", []), ("sign_event", [note()]), ("ping", []),
                           ("nip44_decrypt", ["ab" * 32, "x"]), ("logout", []), ("switch_relays", [])]:
        answer = await stranger.call(method, params)
        assert answer["error"].startswith("unauthorized"), answer
        assert "result" in answer and answer["result"] == ""
    assert [r for r in stranger.responses if "error" not in r] == []
    assert bunker.storage.load_requests(None, 100) == [] and bunker.pending() == []
    assert [e for e in recorder.events if e[0].startswith("nip46:")] == []
    assert len([r for r in caplog.records if "unpaired" in r.getMessage()]) == 1


# ----------------------------------------------------------------------------------------- methods


async def test_sign_event_allowed_by_kind_returns_a_verifiable_event(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    bunker.set_policy(client.pubkey, {"kinds": {"1": "allow"}})
    answer = await client.call("sign_event", [note()])
    event = Event.from_json(json.loads(answer["result"]))
    verify_event(event)
    assert event.pubkey == signer.pubkey and event.content == "hello from a bunker client"
    [request] = recorder.of("nip46:request")
    assert request["status"] == APPROVED and request["preview"]["kind"] == 1
    await bunker.settle()
    [done] = recorder.of("nip46:request_status")
    assert done["status"] == COMPLETED and done["id"] == request["id"]
    stored = bunker.storage.load_requests(None, 10)
    assert [r.status for r in stored] == [COMPLETED] and stored[0].request_id == answer["id"]


async def test_bad_templates_and_unknown_methods_are_answered_at_once(bunker: Bunker, clients: Any) -> None:
    client = await paired(bunker, clients)
    bunker.set_policy(client.pubkey, {"kinds": {"*": "allow"}})
    no_kind = json.dumps({"created_at": int(time.time()), "content": "x", "tags": []})
    assert "event.kind" in (await client.call("sign_event", [no_kind]))["error"]
    no_time = json.dumps({"kind": 1, "content": "x", "tags": []})
    assert "event.created_at" in (await client.call("sign_event", [no_time]))["error"]
    assert "event.pubkey" in (await client.call("sign_event", [note(pubkey="cd" * 32)]))["error"]
    for method in ("get_relays", "describe", "create_account", "delegate", "x" * 64):
        started = time.monotonic()
        answer = await client.call(method, [], timeout=1.0)
        assert answer["error"] == f"unsupported method: {method}"
        assert time.monotonic() - started < 1.0
    bad = await client.call("nip44_encrypt", ["zz", "hi"])
    assert "valid 64-hex public key" in bad["error"]
    assert bunker.pending() == [] and bunker.storage.load_requests(None, 10) == []


async def test_switch_relays_and_logout(bunker: Bunker, clients: Any, relay: LocalServer,
                                        recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    assert json.loads((await client.call("switch_relays"))["result"]) == [relay.url]
    assert (await client.call("logout"))["result"] == "ack"
    assert bunker.session(client.pubkey) is None
    assert "unauthorized" in (await client.call("ping"))["error"]
    assert recorder.of("nip46:session_pending")[-1]["change"] == "logout"


async def test_nip44_and_nip04_through_the_signer_are_readable_by_plain_nostr_code(
        bunker: Bunker, clients: Any, signer: KeySigner) -> None:
    client = await paired(bunker, clients)
    bunker.set_policy(client.pubkey, {"methods": {m: "allow" for m in (
        "nip44_encrypt", "nip44_decrypt", "nip04_encrypt", "nip04_decrypt")}})
    friend_sk = secrets.token_bytes(32)
    friend = curve.pubkey_of(friend_sk)[1:].hex()
    conv = nip44.conversation_key(friend_sk, bytes.fromhex(signer.pubkey))
    shared_x = curve.ecdh_x(friend_sk, bytes.fromhex(signer.pubkey))

    sealed = (await client.call("nip44_encrypt", [friend, "to my friend ✓"]))["result"]
    assert nip44.decrypt(conv, sealed) == "to my friend ✓"
    opened = await client.call("nip44_decrypt", [friend, nip44.encrypt_gen(conv, "from my friend")])
    assert opened["result"] == "from my friend"
    legacy = (await client.call("nip04_encrypt", [friend, "old style"]))["result"]
    assert nip04.decrypt(shared_x, legacy) == "old style"
    back = await client.call("nip04_decrypt", [friend, nip04.encrypt_gen(shared_x, "old reply")])
    assert back["result"] == "old reply"
    assert signer.cipher.proven(friend)


async def test_a_nip04_encrypted_request_gets_an_error_it_can_read(bunker: Bunker, clients: Any) -> None:
    client = await paired(bunker, clients)
    answer = await client.call("get_public_key", scheme="nip04")
    assert "NIP-04" in answer["error"]
    [event] = [e for e in client.events if "?iv=" in e.content]  # answered in the client's own scheme
    assert event.pubkey == bunker.pubkey


async def test_replayed_requests_are_answered_once(bunker: Bunker, clients: Any, signer: KeySigner) -> None:
    client = await paired(bunker, clients)
    bunker.set_policy(client.pubkey, {"kinds": {"1": "allow"}})
    body = json.dumps({"id": "same-id", "method": "sign_event", "params": [note()]})
    first = client.seal(body)
    await client.publish(first)
    await client.wait("same-id")
    await client.publish(client.seal(body))  # a new event, the same request id
    assert (await client.call("ping"))["result"] == "pong"  # a marker: everything before it was handled
    await bunker.settle()
    assert len(client.answers_to("same-id")) == 1 and len(signer.signed) == 1


async def test_events_outside_the_clock_window_are_ignored(bunker: Bunker, clients: Any) -> None:
    client = await paired(bunker, clients)
    stale = await client.send("ping", created_at=int(time.time()) - 3600)  # before `since`: relay drops it
    ahead = await client.send("ping", created_at=int(time.time()) + 600)  # the bunker's own window drops it
    assert (await client.call("ping"))["result"] == "pong"
    await bunker.settle()
    assert client.answers_to(stale) == client.answers_to(ahead) == []
    assert bunker.counters.get("stale") == 1


# ----------------------------------------------------------------------------------------- approvals


async def test_ask_queues_approve_completes_and_approving_twice_signs_nothing_twice(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    rid = await client.send("sign_event", [note(content="please approve me")])
    pending = await until(lambda: bunker.pending())
    [record] = pending
    assert record.status == PENDING and record.preview["content"] == "please approve me"
    [queued] = recorder.of("nip46:request")
    assert queued["status"] == PENDING and queued["method"] == "sign_event" and queued["preview"]["tags"] == 1
    assert client.answers_to(rid) == []
    bunker.decide(record.id, "approve")
    with pytest.raises(InvalidTransition):
        bunker.decide(record.id, "approve")
    [answer] = await client.wait(rid)
    verify_event(Event.from_json(json.loads(answer["result"])))
    await bunker.settle()
    with pytest.raises(InvalidTransition):
        bunker.decide(record.id, "deny")
    assert len(signer.signed) == 1
    statuses = [d["status"] for d in recorder.of("nip46:request_status") if d["id"] == record.id]
    assert statuses == [APPROVED, COMPLETED]  # once per change
    with pytest.raises(KeyError):
        bunker.decide("nope", "approve")


async def test_deny_and_deny_by_policy_answer_with_errors(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    rid = await client.send("sign_event", [note()])
    [record] = await until(lambda: bunker.pending())
    bunker.decide(record.id, "deny")
    [answer] = await client.wait(rid)
    assert "denied" in answer["error"]
    assert [d["status"] for d in recorder.of("nip46:request_status")] == [DENIED]
    bunker.set_policy(client.pubkey, {"kinds": {"1": "deny"}})
    denied = await client.call("sign_event", [note()])
    assert denied["error"] == "denied: this session may not use sign_event of kind 1"
    assert signer.signed == [] and bunker.pending() == []


async def test_always_allow_and_always_deny_remember_the_kind(
        bunker: Bunker, clients: Any, signer: KeySigner) -> None:
    client = await paired(bunker, clients)
    first = await client.send("sign_event", [note(kind=7, content="+")])
    second = await client.send("sign_event", [note(kind=7, content="again")])
    other = await client.send("sign_event", [note(kind=1)])
    await until(lambda: len(bunker.pending()) == 3)
    kind7 = [r for r in bunker.pending() if r.preview["kind"] == 7]
    bunker.decide(kind7[0].id, "always_allow")
    for rid in (first, second):  # the waiting one of the same kind is settled too
        verify_event(Event.from_json(json.loads((await client.wait(rid))[0]["result"])))
    later = await client.call("sign_event", [note(kind=7, content="no question asked")])
    assert json.loads(later["result"])["content"] == "no question asked"
    [kind1] = bunker.pending()
    bunker.decide(kind1.id, "always_deny")
    assert "denied" in (await client.wait(other))[0]["error"]
    assert "denied" in (await client.call("sign_event", [note(kind=1)]))["error"]
    session = bunker.session(client.pubkey)
    assert session is not None and session.permissions.to_json()["kinds"] == {"1": "deny", "7": "allow"}


async def test_a_waiting_request_expires_and_its_client_hears_so(
        bunker: Bunker, clients: Any, clock: Clock, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    friend = curve.pubkey_of(secrets.token_bytes(32))[1:].hex()
    rid = await client.send("nip44_encrypt", [friend, "secret words"])
    [record] = await until(lambda: bunker.pending())
    assert record.preview["counterparty"] and "secret words" not in json.dumps(record.to_json())
    clock.advance(60)
    assert bunker.expire_due() == 0
    clock.advance(61)
    bunker.tick()
    [answer] = await client.wait(rid)
    assert answer["error"] == "request expired: not approved within 120 s"
    assert recorder.of("nip46:request_status")[-1]["status"] == EXPIRED
    with pytest.raises(InvalidTransition):
        bunker.decide(record.id, "approve")


async def test_auth_url_is_sent_first_when_configured(
        io_loop: Any, signer: KeySigner, storage: Any, recorder: Recorder, clock: Clock,
        relay: LocalServer) -> None:
    bunker = make_bunker(signer, storage, recorder, clock, auth_url="https://igloo.example.com")
    await bunker.start()
    try:
        await bunker._listener.wait_subscribed([relay.url], 5)
        link = bunker.new_bunker_link()
        client = await Nip46Client([relay.url], bunker.pubkey or "").start()
        assert (await client.call("connect", [bunker.pubkey or "", secret_of(link)]))["result"] == "ack"
        rid = await client.send("sign_event", [note()])
        [challenge] = await client.wait(rid)
        [record] = bunker.pending()
        assert challenge["result"] == "auth_url"
        assert challenge["error"] == f"https://igloo.example.com/nip46?request={record.id}"
        bunker.decide(record.id, "approve")
        answers = await client.wait(rid, count=2)
        verify_event(Event.from_json(json.loads(answers[1]["result"])))
        await client.close()
    finally:
        await bunker.stop()


async def test_the_pending_queue_per_session_is_bounded(
        io_loop: Any, signer: KeySigner, storage: Any, recorder: Recorder, clock: Clock,
        relay: LocalServer) -> None:
    bunker = make_bunker(signer, storage, recorder, clock, max_pending=3)
    await bunker.start()
    try:
        await bunker._listener.wait_subscribed([relay.url], 5)
        client = await Nip46Client([relay.url], bunker.pubkey or "").start()
        await client.call("connect", ["", secret_of(bunker.new_bunker_link())])
        ids = [await client.send("sign_event", [note(content=str(n))]) for n in range(5)]
        refusals = [(await client.wait(rid))[0] for rid in ids[3:]]
        assert all(r["error"] == "too many requests are waiting for approval" for r in refusals)
        assert len(bunker.pending()) == 3
        await client.close()
    finally:
        await bunker.stop()


# ----------------------------------------------------------------------------------------- threshold failures


async def test_a_signer_failure_fails_the_request_with_its_reason(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    bunker.set_policy(client.pubkey, {"kinds": {"*": "allow"}})
    signer.fail = NodeUnavailable("not enough peers to reach the threshold: need 1, 0 available")
    answer = await client.call("sign_event", [note()])
    assert answer["error"] == "not enough peers to reach the threshold: need 1, 0 available"
    await bunker.settle()
    assert recorder.of("nip46:request_status")[-1]["status"] == FAILED
    assert bunker.storage.load_requests([FAILED], 10)[0].error == answer["error"]


# ----------------------------------------------------------------------------------------- sessions


async def test_revoked_sessions_stay_revoked_until_a_new_secret(
        bunker: Bunker, clients: Any, recorder: Recorder) -> None:
    link = bunker.new_bunker_link()
    client = await clients()
    await client.call("connect", ["", secret_of(link)])
    rid = await client.send("sign_event", [note()])
    await until(lambda: bunker.pending())
    assert bunker.revoke(client.pubkey)
    assert "revoked" in (await client.wait(rid))[0]["error"]  # its waiting request ends with it
    assert "unauthorized" in (await client.call("ping"))["error"]
    assert "already used" in (await client.call("connect", ["", secret_of(link)]))["error"]
    assert (await client.call("connect", ["", secret_of(bunker.new_bunker_link())]))["result"] == "ack"
    assert recorder.of("nip46:session_pending")[-2]["change"] == "revoked"


async def test_paused_sessions_are_refused_and_resume(bunker: Bunker, clients: Any) -> None:
    client = await paired(bunker, clients)
    bunker.set_status(client.pubkey, "paused")
    assert "paused" in (await client.call("ping"))["error"]
    bunker.set_status(client.pubkey, "active")
    assert (await client.call("ping"))["result"] == "pong"
    with pytest.raises(ValueError):
        bunker.set_status(client.pubkey, "weird")


async def test_sessions_and_the_transport_key_survive_a_restart(
        io_loop: Any, signer: KeySigner, tmp_path: Path, recorder: Recorder, clock: Clock,
        relay: LocalServer) -> None:
    from store.nip46 import Nip46Store

    key = secrets.token_bytes(32)
    db = Database.open_in(tmp_path)
    first = make_bunker(signer, Nip46Store(db, key), recorder, clock)
    await first.start()
    await first._listener.wait_subscribed([relay.url], 5)
    client = await Nip46Client([relay.url], first.pubkey or "").start()
    await client.call("connect", ["", secret_of(first.new_bunker_link())])
    waiting = await client.send("sign_event", [note()])
    await until(lambda: first.pending())
    await first.stop()
    assert "shutting down" in (await client.wait(waiting))[0]["error"]
    db.close()
    raw = (tmp_path / "igloo.db").read_bytes()
    assert first.pubkey is not None and first._sk is not None and first._sk not in raw

    db = Database.open_in(tmp_path)
    second = make_bunker(signer, Nip46Store(db, key), recorder, clock)
    await second.start()
    try:
        assert second.pubkey == first.pubkey
        await second._listener.wait_subscribed([relay.url], 5)
        assert (await client.call("get_public_key"))["result"] == signer.pubkey
    finally:
        await client.close()
        await second.stop()
        db.close()


async def test_a_different_group_key_ends_the_old_sessions(
        bunker: Bunker, clients: Any, signer: KeySigner, recorder: Recorder) -> None:
    client = await paired(bunker, clients)
    signer.seckey = secrets.token_bytes(32)
    signer.pubkey = curve.pubkey_of(signer.seckey)[1:].hex()
    bunker.sync()
    assert bunker.session(client.pubkey) is None
    assert recorder.of("nip46:session_pending")[-1]["change"] == "ended"
    assert "unauthorized" in (await client.call("ping"))["error"]


async def test_the_listener_runs_only_while_the_node_runs(
        bunker: Bunker, clients: Any, signer: KeySigner, relay: LocalServer) -> None:
    client = await paired(bunker, clients)
    signer.available = False
    bunker.sync()
    assert not bunker.listening
    await until(lambda: bunker.status()["relayStatus"] == [])
    signer.available = True
    bunker.sync()
    assert bunker.listening
    await bunker._listener.wait_subscribed([relay.url], 5)
    assert (await client.call("ping"))["result"] == "pong"


async def test_relays_are_added_and_removed_live(
        bunker: Bunker, clients: Any, relay: LocalServer, io_loop: Any) -> None:
    second = LocalServer(relay_app).start()
    try:
        client = await paired(bunker, clients)
        other = await clients([second.url], seckey=client.seckey)  # the same client, on the new relay
        assert bunker.set_relays([relay.url, second.url]) == [relay.url, second.url]
        assert await bunker._listener.wait_subscribed([second.url], 5) == [second.url]
        assert (await other.call("ping"))["result"] == "pong"
        bunker.set_relays([second.url])
        assert bunker._listener.urls == [second.url]
        assert secret_of(bunker.new_bunker_link()) and bunker.new_bunker_link()["relays"] == [second.url]
        gone = await client.send("ping")  # only on the relay the bunker left
        assert (await other.call("ping"))["result"] == "pong"
        await bunker.settle()
        assert client.answers_to(gone) == []
        bunker.set_relays(None)  # back to the node's relays
        assert bunker.bunker_relays() == [relay.url] and bunker.relays_source() == "node"
    finally:
        await second.stop()


async def test_rotating_the_transport_key_ends_sessions_and_restarts_the_listener(
        bunker: Bunker, clients: Any, recorder: Recorder, relay: LocalServer) -> None:
    client = await paired(bunker, clients)
    old = bunker.pubkey
    unused = secret_of(bunker.new_bunker_link())
    new = await bunker.rotate_transport_key()
    assert new != old and bunker._listener.pubkey == new and bunker.sessions() == []
    await bunker._listener.wait_subscribed([relay.url], 5)
    fresh = await Nip46Client([relay.url], new).start()
    try:
        assert "invalid secret" in (await fresh.call("connect", ["", unused]))["error"]
        assert (await fresh.call("connect", ["", secret_of(bunker.new_bunker_link())]))["result"] == "ack"
    finally:
        await fresh.close()
    assert client.pubkey not in [s.client_pubkey for s in bunker.sessions()]


# ----------------------------------------------------------------------------------------- nostrconnect


async def test_nostrconnect_pairs_on_the_offer_relays_with_the_ticked_permissions(
        bunker: Bunker, relay: LocalServer, signer: KeySigner, recorder: Recorder) -> None:
    own = LocalServer(relay_app).start()  # the client's relay, not the bunker's
    client = Nip46Client([own.url], bunker.pubkey or "")
    try:
        await client.start()
        uri = (f"nostrconnect://{client.pubkey}?relay={own.url}&secret=client-made-secret"
               "&perms=sign_event:1,nip44_encrypt&name=Web%20Client")
        result = await bunker.pair_nostrconnect(parse_nostrconnect(uri), ["sign_event:1"])
        assert result["accepted"] is True
        assert result["relays"] == [{"url": own.url, "subscribed": True, "accepted": True}]
        [response] = await until(
            lambda: [r for r in client.responses if r.get("result") == "client-made-secret"])
        assert response["_author"] == bunker.pubkey
        client.bunker = response["_author"]
        signed = await client.call("sign_event", [note()])  # granted on the page: no approval needed
        verify_event(Event.from_json(json.loads(signed["result"])))
        assert json.loads((await client.call("switch_relays"))["result"]) == [own.url]
        assert bunker.bunker_relays() == [relay.url]  # not merged into the global list
        assert "sign_event:1" in bunker.session(client.pubkey).requested  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="grant"):
            await bunker.pair_nostrconnect(parse_nostrconnect(uri), ["nip04_decrypt"])
    finally:
        await client.close()
        await own.stop()


async def test_nostrconnect_reports_honestly_when_no_relay_accepted(
        bunker: Bunker, recorder: Recorder) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    offer = parse_nostrconnect(f"nostrconnect://{'ab' * 32}?relay={dead}&secret=s")
    result = await bunker.pair_nostrconnect(offer, [])
    assert result == {"accepted": False, "relays": [{"url": dead, "subscribed": False, "accepted": False}],
                      "session": None}
    assert bunker.sessions() == [] and dead not in bunker._listener.urls
    await asyncio.sleep(0)
