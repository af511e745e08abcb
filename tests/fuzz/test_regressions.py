"""One explicit case per bug the fuzzers found, so each fix stays proven in the normal suite."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.nostr import cipher
from node.nostr.messages import ClientReq, InvalidEventMessage, parse_client_message, parse_relay_message
from tests.fuzz.conftest import (
    API_KEY,
    JSON_HEADERS,
    ErrorTrap,
    build_request,
    raw_http,
)
from tests.fuzz.wsutil import connect, read


async def post(port: int, path: str, body: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
    request = build_request("POST", path, JSON_HEADERS if headers is None else headers, body)
    return await raw_http(port, request)


async def test_deeply_nested_json_body_is_a_400(
    http_server: Any, http_server_port: tuple[Any, int], errors: ErrorTrap
) -> None:
    """``[[[…]]]`` nested past Python's recursion limit made json.loads raise RecursionError: a 500."""
    port = http_server_port[1]
    for path in ("/api/auth/login", "/api/sign", "/api/env"):
        response = await post(port, path, b"[" * 5000 + b"]" * 5000)
        assert response.status == 400, (path, response.status)
        assert json.loads(response.body)["error"] == "Invalid JSON body"  # /api/sign adds code INVALID_JSON
    errors.check()


async def test_deeply_nested_event_command_gets_an_error_frame(
    http_server: Any, http_server_port: tuple[Any, int], errors: ErrorTrap
) -> None:
    """A 4 KiB command ``[[[…]]]`` raised RecursionError out of on_message: logged, socket aborted."""
    ws = await connect(f"ws://127.0.0.1:{http_server_port[1]}/api/events", {"X-API-Key": API_KEY})
    assert json.loads(await read(ws))["message"] == "Connected to event stream"  # type: ignore[arg-type]
    await ws.write_message("[" * 2000 + "]" * 2000)
    await ws.write_message('{"type":"ping"}')
    replies = []
    for _ in range(200):  # the recent events come first
        reply = json.loads(await read(ws))  # type: ignore[arg-type]
        if reply["seq"] is None:
            replies.append((reply["type"], reply["message"]))
        if reply["type"] == "pong":
            break
    assert replies == [("error", "invalid JSON"), ("pong", "pong")]
    ws.close()
    errors.check()


async def test_non_ascii_digits_in_since_are_ignored(
    http_server: Any, http_server_port: tuple[Any, int], errors: ErrorTrap
) -> None:
    """``?since=²`` passed str.isdigit() and then int() raised in open(): the socket was dropped."""
    url = f"ws://127.0.0.1:{http_server_port[1]}/api/events?since=%C2%B2"
    ws = await connect(url, {"X-API-Key": API_KEY})
    assert json.loads(await read(ws))["message"] == "Connected to event stream"  # type: ignore[arg-type]
    ws.close()
    errors.check()


def test_relay_messages_with_lone_surrogates_are_refused() -> None:
    """``["REQ","\\ud800"]`` decoded to a lone surrogate; the relay's CLOSED reply could not be encoded
    to UTF-8 and the handler logged an internal error. Such text is not Unicode: refuse it while parsing."""
    with pytest.raises(ValueError, match="lone surrogate"):
        parse_client_message('["REQ","\\ud800",{}]')
    with pytest.raises(ValueError, match="lone surrogate"):
        parse_relay_message('["NOTICE","\\udfff"]')
    event = {"id": "ab" * 32, "pubkey": "cd" * 32, "created_at": 1, "kind": 1, "tags": [["t", "\ud800"]],
             "content": "", "sig": "ef" * 64}
    with pytest.raises(InvalidEventMessage) as refused:
        parse_client_message(json.dumps(["EVENT", event]))
    assert refused.value.event_id == "ab" * 32  # so the relay can answer OK false for that id
    req = parse_client_message('["REQ","\\ud83d\\ude00",{}]')  # an escaped pair is fine
    assert isinstance(req, ClientReq) and req.sub_id == "\U0001f600"


async def test_basic_auth_with_non_ascii_base64_is_a_401(
    http_server: Any, http_server_port: tuple[Any, int], errors: ErrorTrap
) -> None:
    """``Authorization: Basic /zrp6ek=\\xe9`` (header bytes arrive as latin-1 text): b64decode raised a plain
    ValueError for non-ASCII input, which the Basic check did not catch: a 500 on every route."""
    for value in (b"Basic \xe9\xe9==", b"Basic /zrp6ek=\xff"):
        request = build_request("GET", "/api/peers", [("Authorization", value)], b"")
        response = await raw_http(http_server_port[1], request)
        assert response.status == 401, response.status
    errors.check()


def test_deeply_nested_envelope_is_a_value_error() -> None:
    """A stranger's kind-20004 event whose decrypted envelope is ``[[[…]]]`` 2000 deep: decode_envelope let
    RecursionError escape, past NodeService._on_event's ValueError handler, into the event loop."""
    with pytest.raises(ValueError, match="envelope is not JSON"):
        cipher.decode_envelope("[" * 2000 + "]" * 2000)


def test_envelope_with_a_lone_surrogate_is_a_value_error() -> None:
    """A member's envelope tag ``"11\\ud800"`` made the node's 'Message received' event unencodable: the
    event hub raised, the node swallowed it, and the message vanished without any event."""
    for envelope in ('["11\\ud800", "73405e82b7376da7495f90e23ed0077e", "ping"]',
                     '["/ping/req", "73405e82b7376da7495f90e23ed0077e", "\\udfff"]'):
        with pytest.raises(ValueError, match="lone surrogate"):
            cipher.decode_envelope(envelope)
    pair = '["/ping/req", "73405e82b7376da7495f90e23ed0077e", "\\ud83d\\ude00"]'
    assert cipher.decode_envelope(pair)[2] == "\U0001f600"
