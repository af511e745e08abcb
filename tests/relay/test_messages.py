"""Relay message parsing and building (node/nostr/messages.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.nostr.filters import Filter
from node.nostr.messages import (
    ClientClose,
    ClientEvent,
    ClientReq,
    InvalidEventMessage,
    InvalidSubscription,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayNotice,
    RelayOk,
    build_close,
    build_eose,
    build_event,
    build_ok,
    build_relay_event,
    build_req,
    event_json,
    parse_client_message,
    parse_relay_message,
)
from tests.relay.helpers import make_event, pubkey


def test_client_event_round_trip() -> None:
    event = make_event(0, tags=[["p", pubkey(1)]], content="héllo")
    parsed = parse_client_message(build_event(event))
    assert parsed == ClientEvent(event)


def test_req_standard_and_wrapped_forms_parse_the_same() -> None:
    flt = {"kinds": [20004], "#p": [pubkey(1)], "since": 1_700_000_000}
    standard = parse_client_message(json.dumps(["REQ", "sub", flt]))
    wrapped = parse_client_message(json.dumps(["REQ", "sub", [flt]]))
    assert standard == wrapped == ClientReq("sub", [Filter.from_json(flt)])


def test_build_req_is_standard_nip01() -> None:
    text = build_req("sub", [{"kinds": [1]}, Filter(kinds=frozenset({2}))])
    assert json.loads(text) == ["REQ", "sub", {"kinds": [1]}, {"kinds": [2]}]


@pytest.mark.parametrize(
    "frame",
    [
        '["REQ","s"]',
        '["REQ","s",[]]',
        '["REQ","s",{"kinds":"x"}]',
        '["REQ","s",{"authors":["AB"]}]',
        '["REQ","s",{"#pp":["x"]}]',
        '["REQ","s",{"limit":-1}]',
        '["REQ","s",{"since":true}]',
        '["REQ","s",5]',
    ],
)
def test_bad_req_names_the_subscription(frame: str) -> None:
    with pytest.raises(InvalidSubscription) as info:
        parse_client_message(frame)
    assert info.value.sub_id == "s"


@pytest.mark.parametrize(
    "frame",
    [
        *("", "nope", "{}", "[]", "[1]", '["X"]', '["REQ"]', '["REQ",""]', '["REQ","' + "a" * 65 + '",{}]'),
        *('["CLOSE"]', '["CLOSE","a","b"]', "[" * 100_000, '["EVENT"]'),
    ],
)
def test_malformed_client_frames_raise_value_error(frame: str) -> None:
    with pytest.raises(ValueError):
        parse_client_message(frame)


def test_bad_event_carries_its_id_when_readable() -> None:
    good = make_event(0).to_json()
    with pytest.raises(InvalidEventMessage) as info:
        parse_client_message(json.dumps(["EVENT", dict(good, tags="x")]))
    assert info.value.event_id == good["id"]
    with pytest.raises(InvalidEventMessage) as info:
        parse_client_message(json.dumps(["EVENT", dict(good, id="zz")]))
    assert info.value.event_id is None


def test_close() -> None:
    assert parse_client_message(build_close("x")) == ClientClose("x")


def test_relay_messages_parse() -> None:
    event = make_event(0)
    assert parse_relay_message(build_relay_event("s", event_json(event))) == RelayEvent("s", event)
    ok = RelayOk(event.id, False, "invalid: x")
    assert parse_relay_message(build_ok(event.id, False, "invalid: x")) == ok
    assert parse_relay_message(build_eose("s")) == RelayEose("s")
    assert parse_relay_message('["CLOSED","s","error: x"]') == RelayClosed("s", "error: x")
    assert parse_relay_message('["NOTICE","hi"]') == RelayNotice("hi")


@pytest.mark.parametrize(
    "value",
    [
        ["OK", "x", True, ""],
        ["OK", "a" * 64, "true", ""],
        ["OK", "a" * 64, True],
        ["EVENT", "s"],
        ["EVENT", "s", {"id": "x"}],
        ["EOSE"],
        ["NOTICE", 5],
        ["AUTH", "challenge"],
        {"EVENT": 1},
    ],
)
def test_malformed_relay_frames_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_relay_message(json.dumps(value))


def test_relay_event_frame_splices_sub_id_safely() -> None:
    event = make_event(0)
    frame = build_relay_event('we"ird\\', event_json(event))
    assert json.loads(frame) == ["EVENT", 'we"ird\\', event.to_json()]
