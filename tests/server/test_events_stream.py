"""The /api/events WebSocket: auth, subprotocols, origin, frames, one serialization, commands, caps."""

from __future__ import annotations

import asyncio
import enum
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket
from hypothesis import given, settings
from hypothesis import strategies as st

import handlers.event_hub as events_module
from tests.clock import ManualClock
from tests.server.conftest import (
    API_KEY,
    Igloo,
    base_env,
    read_frame,
    read_until_closed,
    start_igloo,
    stop_igloo,
)


async def expect_refused(igloo: Igloo, code: int, query: str = "", **kwargs: object) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await igloo.ws(query, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code


async def test_greeting_then_live_events(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    hello = await read_frame(ws)
    assert hello is not None and hello["type"] == "system" and hello["message"] == "Connected to event stream"
    assert hello["seq"] is None and set(hello) == {"type", "message", "data", "timestamp", "id", "seq"}
    sent = igloo.hub.publish("sign", "signed", {"blob": b"\x01\x02", "n": 1})
    frame = await read_frame(ws)
    assert frame == sent and frame["data"] == {"blob": "0102", "n": 1} and frame["seq"] == 1
    ws.close()


async def test_ws_auth_methods(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, session_id = await igloo.login()
    ways = [
        {"headers": {"Cookie": cookie}},
        {"subprotocols": ["igloo.v1", f"apikey.{API_KEY}"]},
        {"subprotocols": [f"bearer.{API_KEY}"]},
        {"subprotocols": [f"session.{session_id}"]},
        {"query": f"?apiKey={API_KEY}"},
        {"query": f"?sessionId={session_id}"},
        {"headers": {"Authorization": f"Bearer {API_KEY}"}},
    ]
    for way in ways:
        ws = await igloo.ws(**way)  # type: ignore[arg-type]
        assert (await read_frame(ws))["message"] == "Connected to event stream", way  # type: ignore[index]
        ws.close()
    await expect_refused(igloo, 401)
    await expect_refused(igloo, 401, "?apiKey=wrong-key-wrong-key")
    await expect_refused(igloo, 401, subprotocols=["apikey.wrong-key-wrong-key"])
    await expect_refused(igloo, 401, "?sessionId=not-a-session")


async def test_credential_subprotocol_echoed_only_when_alone(igloo: Igloo) -> None:
    # A plain protocol offered beside the credential is selected; the credential is never echoed then.
    ws = await igloo.ws(subprotocols=[f"apikey.{API_KEY}", "igloo.v1"])
    assert ws.selected_subprotocol == "igloo.v1"
    ws.close()
    # Offered alone, the credential is selected (as Igloo Server does): a browser aborts a handshake that
    # selects none of the protocols it offered.
    ws = await igloo.ws(subprotocols=[f"apikey.{API_KEY}"])
    assert ws.selected_subprotocol == f"apikey.{API_KEY}"
    assert (await read_frame(ws))["message"] == "Connected to event stream"  # type: ignore[index]
    ws.close()


@pytest.mark.parametrize("overrides", [{"ALLOWED_ORIGINS": "https://ui.example"}])
async def test_origin_policy(igloo: Igloo) -> None:
    host = f"127.0.0.1:{igloo.port}"
    for origin in (f"http://{host}", "https://ui.example"):
        ws = await igloo.ws(headers={"X-API-Key": API_KEY, "Origin": origin})
        assert (await read_frame(ws))["type"] == "system"  # type: ignore[index]
        ws.close()
    bad = await igloo.ws(headers={"X-API-Key": API_KEY, "Origin": "https://evil.example"})
    assert await read_until_closed(bad) == []  # nothing, not even the greeting
    assert bad.close_code == 1008
    assert igloo.hub.connection_count == 0


async def test_one_serialization_shared_frame(igloo: Igloo, monkeypatch: pytest.MonkeyPatch) -> None:
    clients = [await igloo.ws_key() for _ in range(3)]
    for ws in clients:
        await read_frame(ws)
    calls = []
    real_frame, real_encode = events_module.websocket_text_frame, events_module.encode_payload
    mp = monkeypatch
    mp.setattr(events_module, "websocket_text_frame", lambda p: calls.append("frame") or real_frame(p))
    mp.setattr(events_module, "encode_payload", lambda b: calls.append("json") or real_encode(b))
    sent = igloo.hub.publish("info", "once")
    assert calls == ["json", "frame"]
    for ws in clients:
        assert await read_frame(ws) == sent
        ws.close()


@pytest.mark.parametrize("overrides", [{"WS_COMPRESSION": "true"}])
async def test_compressed_and_plain_clients(igloo: Igloo) -> None:
    deflate = await igloo.ws_key(compression_options={})
    plain = await igloo.ws_key()
    await read_frame(deflate)
    await read_frame(plain)
    sent = igloo.hub.publish("info", "x" * 2000)
    assert await read_frame(deflate) == sent and await read_frame(plain) == sent
    deflate.close()
    plain.close()


async def test_client_commands(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    await ws.write_message(json.dumps({"type": "ping"}))
    pong = await read_frame(ws)
    assert pong["type"] == "pong" and pong["seq"] is None  # type: ignore[index]
    for bad in ("{not json", json.dumps({"type": "subscribe"}), json.dumps([1, 2]),
                json.dumps({"type": "resume", "since": "x"})):
        await ws.write_message(bad)
        reply = await read_frame(ws)
        assert reply["type"] == "error" and reply["seq"] is None, bad  # type: ignore[index]
    await ws.write_message(b"\x00\x01", binary=True)
    assert (await read_frame(ws))["type"] == "error"  # type: ignore[index]
    igloo.hub.publish("info", "still alive")
    assert (await read_frame(ws))["message"] == "still alive"  # type: ignore[index]
    ws.close()


async def test_oversized_frame_closes_1009(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    await ws.write_message(json.dumps({"type": "ping", "pad": "x" * 5000}))
    await read_until_closed(ws)
    assert ws.close_code == 1009


@pytest.mark.parametrize("overrides", [{"WS_CLIENT_RATE": "2"}])
async def test_flood_closes_1008(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    for _ in range(20):
        try:
            await ws.write_message('{"type":"ping"}')
        except tornado.websocket.WebSocketClosedError:
            break
    await read_until_closed(ws)
    assert ws.close_code == 1008


@pytest.mark.parametrize("overrides", [{"WS_CLIENT_RATE": "2"}])
async def test_command_rate_refills_with_the_hub_clock(igloo: Igloo) -> None:
    now = [1000.0]
    igloo.hub.clock = lambda: now[0]
    ws = await igloo.ws_key()
    await read_frame(ws)
    for _ in range(4):  # bursts of twice WS_CLIENT_RATE
        await ws.write_message('{"type":"ping"}')
        assert (await read_frame(ws))["type"] == "pong"  # type: ignore[index]
    now[0] += 0.5  # one frame's worth at 2 frames/s
    await ws.write_message('{"type":"ping"}')
    assert (await read_frame(ws))["type"] == "pong"  # type: ignore[index]
    await ws.write_message('{"type":"ping"}')  # the clock has not moved: nothing left
    assert await read_until_closed(ws) == []
    assert ws.close_code == 1008


@pytest.mark.parametrize("overrides", [{"WS_MAX_PER_IP": "2"}])
async def test_per_ip_cap(igloo: Igloo) -> None:
    first, second = await igloo.ws_key(), await igloo.ws_key()
    await expect_refused(igloo, 429, headers={"X-API-Key": API_KEY})
    first.close()
    await read_until_closed(first)
    for _ in range(50):  # the slot comes back once the server has seen the close
        if igloo.hub.sockets_pending_close() < 2:
            break
        await asyncio.sleep(0.02)
    third = await igloo.ws_key()
    second.close()
    third.close()


@pytest.mark.parametrize("overrides", [{"WS_MAX_CONNECTIONS": "1"}])
async def test_total_cap(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await expect_refused(igloo, 503, headers={"X-API-Key": API_KEY})
    ws.close()


async def test_logout_closes_sockets_4401(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, session_id = await igloo.login()
    ws = await igloo.ws(headers={"Cookie": cookie})
    other = await igloo.ws_key("?history=10")
    await read_frame(ws)
    await read_frame(other)
    resp = await igloo.fetch("/api/auth/logout", method="POST", body=b"",
                             headers={"X-Session-ID": session_id})
    assert resp.code == 200
    await read_until_closed(ws)
    assert ws.close_code == 4401
    sent = igloo.hub.publish("info", "api-key socket unaffected")
    # The other socket first gets the login/logout events (recent history, then live), then this one.
    received = [await read_frame(other) for _ in range(3)]
    assert [f["message"] for f in received if f] == ["User logged in", "User logged out", sent["message"]]
    assert received[-1] == sent
    other.close()


async def test_session_expiry_closes_socket_4401(io_loop: object, tmp_path: Path) -> None:
    clock = ManualClock()
    env = base_env(tmp_path / "data")
    env["SESSION_TIMEOUT"] = "1"
    igloo = start_igloo(env, clock=clock)
    try:
        igloo.add_user()
        cookie, _ = await igloo.login()
        ws = await igloo.ws(headers={"Cookie": cookie})
        await read_frame(ws)
        clock.advance(1)  # the one-second session timeout passes on the clock, not in real time
        igloo.hub.sweep_sessions()  # what the hub's periodic sweep does
        await read_until_closed(ws, timeout=3)
        assert ws.close_code == 4401
    finally:
        stop_igloo(igloo)


def test_encode_payload_never_fails() -> None:
    from handlers.event_frames import encode_payload

    lone = "peer said \ud800"
    frame = json.loads(encode_payload({"type": "warn", "message": lone, "data": {"tag": lone}}))
    assert frame["message"] == lone and frame["data"] == {"tag": lone}
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    frame = json.loads(encode_payload({"type": "warn", "message": lone, "data": deep}))
    assert frame["message"] == lone and frame["data"] == {"error": "event data could not be serialized"}


def test_frames_convert_values_json_lacks_with_the_node_converter() -> None:
    from handlers.event_frames import encode_payload, frame_body
    from node import safe_data

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = {"when": when, "error": ValueError("relay said bfshare1qqq"), "ids": {b"\x01"}, "peer": object()}
    frame = json.loads(encode_payload(frame_body("info", "converted", data)))
    assert frame["data"] == {
        "when": "2026-01-02T03:04:05Z",
        "error": {"name": "ValueError", "message": "[redacted]"},
        "ids": ["01"],
        "peer": "<object>",
    }
    assert frame["data"] == {key: safe_data(value) for key, value in data.items()}


class _Colour(enum.Enum):
    RED = 1


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this object")


_any_text = st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates included
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), _any_text, st.binary(), st.datetimes(),
    st.builds(ValueError, _any_text), st.just(_Colour.RED), st.just(_Unprintable()),
    st.frozensets(_any_text, max_size=3),
)
_event_data = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(_any_text, inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(message=_any_text, data=_event_data)
def test_any_event_data_encodes(message: str, data: object) -> None:
    from handlers.event_frames import encode_payload, frame_body

    frame = json.loads(encode_payload(frame_body("info", message, data)))
    assert frame["message"] == message and set(frame) == {"type", "message", "data", "timestamp", "id", "seq"}


@pytest.mark.parametrize(("overrides", "expected_writes"), [({}, 1), ({"WS_COALESCE_MS": "0"}, 2)])
async def test_bursts_share_one_write_per_client_when_many_are_connected(
    igloo: Igloo, expected_writes: int
) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)  # greeting
    igloo.hub.connection_count += 63  # as if 63 more clients were connected
    [sock] = igloo.hub.sockets()
    writes: list[bytes] = []
    real_send = sock.send_shared
    sock.send_shared = lambda frame, payload: writes.append(frame) or real_send(frame, payload)  # type: ignore
    first = igloo.hub.publish("sign", "Signature request received")
    await asyncio.sleep(0)  # the next event comes in a later IOLoop turn, about a millisecond later
    second = igloo.hub.publish("sign", "Signature response sent")
    assert [await read_frame(ws), await read_frame(ws)] == [first, second]
    assert len(writes) == expected_writes
    igloo.hub.connection_count -= 63
    ws.close()
