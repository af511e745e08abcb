"""Pure parts of the bunker: permissions, links, request parsing, event templates, the request state machine,
and the proven-secret cipher."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from node.crypto import curve
from node.nip46 import protocol
from node.nip46.permissions import Decision, Permissions, parse_requested
from node.nip46.records import APPROVED, COMPLETED, DENIED, EXPIRED, PENDING, InvalidTransition, RequestRecord
from node.nip46.uri import bunker_uri, client_profile, parse_nostrconnect
from node.nostr.event import Event, verify_event

PK = "ab" * 32


# ----------------------------------------------------------------------------------------- permissions


def test_defaults_allow_identity_and_ping_and_ask_everything_else() -> None:
    perms = Permissions()
    assert perms.decide("get_public_key") is Decision.ALLOW
    assert perms.decide("ping") is Decision.ALLOW
    for method in ("sign_event", "nip44_encrypt", "nip44_decrypt", "nip04_encrypt", "nip04_decrypt"):
        assert perms.decide(method, 1 if method == "sign_event" else None) is Decision.ASK


def test_kind_entry_beats_star_which_beats_method_and_method_deny_beats_all() -> None:
    perms = Permissions().patched({"methods": {"sign_event": True}, "kinds": {"*": "ask", "1": "allow",
                                                                              "4": False}})
    assert perms.decide("sign_event", 1) is Decision.ALLOW
    assert perms.decide("sign_event", 4) is Decision.DENY
    assert perms.decide("sign_event", 7) is Decision.ASK
    assert perms.patched({"kinds": {"*": None}}).decide("sign_event", 7) is Decision.ALLOW
    denied = perms.patched({"methods": {"sign_event": "deny"}})
    assert denied.decide("sign_event", 1) is Decision.DENY


def test_igloo_server_boolean_shape_and_the_explicit_third_state() -> None:
    perms = Permissions().patched({"methods": {"nip44_encrypt": True, "ping": False},
                                   "kinds": {1: True, "7": "ask"}})
    assert perms.to_json()["methods"]["nip44_encrypt"] == "allow"
    assert perms.to_json()["methods"]["ping"] == "deny"
    assert perms.to_json()["kinds"] == {"1": "allow", "7": "ask"}
    assert Permissions.from_stored(perms.to_stored()) == perms


@pytest.mark.parametrize("patch, field", [
    ({"methods": {"create_account": True}}, "policy.methods"),
    ({"methods": {"ping": "maybe"}}, "policy.methods.ping"),
    ({"kinds": {"-1": True}}, "policy.kinds"),
    ({"kinds": {"70000": True}}, "policy.kinds"),
    ({"kinds": []}, "policy.kinds"),
    ({"other": 1}, "policy"),
    ({}, "policy"),
    ([], "policy"),
])
def test_bad_policy_patches_name_the_field(patch: object, field: str) -> None:
    with pytest.raises(ValueError) as caught:
        Permissions().patched(patch)
    assert str(caught.value).startswith(field)


def test_requested_permissions_keep_known_entries_only() -> None:
    parsed = parse_requested("nip44_encrypt,sign_event:4, sign_event:1 ,get_relays,sign_event:x,ping:3,"
                             "nip44_encrypt")
    assert [str(p) for p in parsed] == ["nip44_encrypt", "sign_event:4", "sign_event:1"]
    assert parse_requested("") == [] and parse_requested(None) == []
    assert len(parse_requested(",".join(f"sign_event:{k}" for k in range(500)))) == 64


# ----------------------------------------------------------------------------------------- links


def test_bunker_link_round_trips_through_a_url_parser() -> None:
    uri = bunker_uri(PK, ["ws://127.0.0.1:8002/", "wss://relay.example.com/a?b=c"], "s3cr3t&x")
    parts = urlsplit(uri)
    assert parts.scheme == "bunker" and parts.netloc == PK
    query = parse_qs(parts.query)
    assert query["relay"] == ["ws://127.0.0.1:8002/", "wss://relay.example.com/a?b=c"]
    assert query["secret"] == ["s3cr3t&x"]
    # nostr-tools' BUNKER_REGEX accepts only these characters after the pubkey
    assert set(uri[len("bunker://") + 64:]) <= set("?/:.=&%-_" + "abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_nostrconnect_offer_is_parsed_and_checked() -> None:
    uri = (f"nostrconnect://{PK}?relay=ws%3A%2F%2F127.0.0.1%3A7000&relay=ws://127.0.0.1:7001&secret=abc"
           "&perms=sign_event%3A1%2Cnip44_encrypt&name=My%20Client&url=https%3A%2F%2Fclient.example"
           "&image=javascript%3Aalert(1)")
    offer = parse_nostrconnect(uri)
    assert offer.client_pubkey == PK
    assert offer.relays == ["ws://127.0.0.1:7000", "ws://127.0.0.1:7001"]
    assert offer.secret == "abc" and "abc" not in repr(offer)
    assert [str(p) for p in offer.requested] == ["sign_event:1", "nip44_encrypt"]
    assert offer.profile() == {"name": "My Client", "url": "https://client.example"}


@pytest.mark.parametrize("uri, field", [
    ("", "uri"),
    ("bunker://" + PK, "uri"),
    ("nostrconnect://xyz?relay=ws://a&secret=s", "uri"),
    (f"nostrconnect://{PK}?secret=s", "uri.relay"),
    (f"nostrconnect://{PK}?relay=http://a&secret=s", "uri.relay"),
    (f"nostrconnect://{PK}?relay=ws://a", "uri.secret"),
    (f"nostrconnect://{PK}?relay=ws://a&secret=" + "x" * 300, "uri.secret"),
    (f"nostrconnect://{PK}?" + "&".join(f"relay=ws://r{i}" for i in range(9)) + "&secret=s", "uri.relay"),
    ("nostrconnect://" + "a" * 9000, "uri"),
])
def test_bad_nostrconnect_links_name_the_field(uri: str, field: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_nostrconnect(uri)
    message = str(caught.value)
    assert message.split(":")[0] == field
    assert "x" * 50 not in message


def test_client_metadata_is_only_a_cleaned_display_hint() -> None:
    assert client_profile({"name": "A\u0000pp\n", "url": "data:text/html,hi", "image": "https://i.example/a.png",
                           "extra": 1}) == {"name": "App", "image": "https://i.example/a.png"}
    assert client_profile("nope") == {}


# ----------------------------------------------------------------------------------------- requests


def test_requests_are_checked_and_their_id_kept_for_the_error_answer() -> None:
    parsed = protocol.parse_request('{"id":"1","method":"ping","params":[]}')
    assert parsed == protocol.Request("1", "ping", [])
    assert protocol.parse_request('{"id":"1","method":"ping"}').params == []
    cases = {
        "not json": None,
        "[1]": None,
        '{"id": 5, "method": "ping"}': None,
        '{"id": "' + "x" * 200 + '", "method": "ping"}': None,
        '{"id": "a", "method": 1}': "a",
        '{"id": "a", "method": "ping", "params": [1]}': "a",
        '{"id": "a", "method": "ping", "params": ' + json.dumps(["p"] * 9) + "}": "a",
        "[" * 5000 + "]" * 5000: None,
    }
    for text, rid in cases.items():
        with pytest.raises(protocol.BadRequest) as caught:
            protocol.parse_request(text)
        assert caught.value.request_id == rid


def test_event_templates_need_kind_and_created_at_and_yield_a_verifiable_event() -> None:
    seckey = secrets.token_bytes(32)
    pubkey = curve.pubkey_of(seckey)[1:].hex()
    template = protocol.parse_event_template(
        [json.dumps({"kind": 1, "created_at": 1700000000, "tags": [["t", "x"]], "content": "héllo"})], pubkey)
    event_id = template.event_id(pubkey)
    sig = curve.schnorr_sign(seckey, bytes.fromhex(event_id), bytes(32)).hex()
    verify_event(Event.from_json(template.signed(pubkey, event_id, sig)))
    assert template.preview() == {"kind": 1, "content": "héllo", "tags": 1, "createdAt": 1700000000}
    for bad, field in [({"created_at": 1}, "event.kind"), ({"kind": 1}, "event.created_at"),
                       ({"kind": 1.5, "created_at": 1}, "event.kind"),
                       ({"kind": True, "created_at": 1}, "event.kind"),
                       ({"kind": 1, "created_at": 1, "tags": [[1]]}, "event.tags"),
                       ({"kind": 1, "created_at": 1, "content": 3}, "event.content"),
                       ({"kind": 1, "created_at": 1, "pubkey": "cd" * 32}, "event.pubkey")]:
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            protocol.parse_event_template([json.dumps(bad)], pubkey)
    with pytest.raises(ValueError):
        protocol.parse_event_template([], pubkey)


def test_cipher_params_need_a_point_on_the_curve() -> None:
    good = curve.pubkey_of(secrets.token_bytes(32))[1:].hex()
    assert protocol.parse_cipher_params("nip44_encrypt", [good, "hi"]) == (good, "hi")
    assert protocol.parse_cipher_params("nip04_encrypt", ["02" + good.upper(), ""]) == (good, "")
    for params in ([good], ["zz" * 32, "hi"], ["00" * 32, "hi"], [good, "x" * 70000]):
        with pytest.raises(ValueError):
            protocol.parse_cipher_params("nip44_encrypt", params)


def test_request_state_machine_has_only_the_listed_transitions() -> None:
    def record() -> RequestRecord:
        return RequestRecord("r", PK, "1", "sign_event", PENDING, {}, 0.0, 10.0, params=["secret text"])

    done = record()
    done.advance(APPROVED, 1.0)
    done.advance(COMPLETED, 2.0)
    assert done.params == [] and done.completed_at == 2.0
    for first, second in [(APPROVED, APPROVED), (DENIED, APPROVED), (EXPIRED, APPROVED), (DENIED, DENIED)]:
        rec = record()
        rec.advance(first, 1.0)
        with pytest.raises(InvalidTransition):
            rec.advance(second, 2.0)
    with pytest.raises(InvalidTransition):
        record().advance(COMPLETED, 1.0)
    assert "secret text" not in json.dumps(record().to_json()) and "secret text" not in repr(record())


def test_lone_surrogates_make_a_request_unanswerable_or_refused() -> None:
    with pytest.raises(protocol.BadRequest) as caught:
        protocol.parse_request('{"id": "\\ud800", "method": "connect", "params": []}')
    assert caught.value.request_id is None  # an id that cannot be sent back as UTF-8 gets no answer
    for body in ('{"id": "a", "method": "ping\\ud800"}',
                 '{"id": "a", "method": "sign_event", "params": ["\\udfff"]}'):
        with pytest.raises(protocol.BadRequest) as caught:
            protocol.parse_request(body)
        assert caught.value.request_id == "a"
        protocol.response_text("a", error=str(caught.value)).encode("utf-8")


def test_an_event_with_a_lone_surrogate_is_refused_not_signed() -> None:
    with pytest.raises(ValueError, match="Unicode"):
        protocol.parse_event_template(['{"kind": 1, "created_at": 1, "content": "\\ud800"}'])
    with pytest.raises(ValueError, match="Unicode"):
        protocol.parse_event_template(['{"kind": 1, "created_at": 1, "tags": [["t", "\\udfff"]]}'])
    assert protocol.response_text("a", "\ud800").encode("utf-8")  # escaped rather than failing
