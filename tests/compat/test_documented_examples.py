"""The request examples of Igloo Server's README and docs (tests/compat/fixtures/igloo-server-examples.json,
quoted with file and line) sent to a real Igloo: the HTTP ones answer as documented, and the event-stream
ones connect and receive the greeting, whichever way the credential travels (subprotocol hint alone, as a
browser sends it, or the ``?apiKey=`` query of its test script)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from tests.compat.conftest import ADMIN_SECRET, API_KEY, Igloo, load_fixture

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

EXAMPLES: list[dict[str, Any]] = load_fixture("igloo-server-examples.json")["examples"]
REQUESTS = [(example, request) for example in EXAMPLES for request in example["requests"]]
IDS = [f"{example['file']}:{example['line']}:{n}"
       for example in EXAMPLES for n in range(len(example["requests"]))]


def fill(igloo: Igloo, text: str) -> str:
    return (text.replace("<TOKEN>", API_KEY).replace("<ADMIN_SECRET>", ADMIN_SECRET)
            .replace("<ID>", igloo.session()))


async def open_stream(igloo: Igloo, query: str, subprotocols: list[str]) -> tuple[str | None, dict[str, Any]]:
    request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{igloo.target.port}{query}", connect_timeout=5)
    ws = await tornado.websocket.websocket_connect(request, subprotocols=subprotocols or None)
    try:
        greeting = json.loads(await asyncio.wait_for(ws.read_message(), 5))  # type: ignore[arg-type]
        return ws.selected_subprotocol, greeting
    finally:
        ws.close()


@pytest.mark.parametrize(("example", "request_"), REQUESTS, ids=IDS)
def test_documented_example(igloo: Igloo, example: dict[str, Any], request_: dict[str, Any]) -> None:
    if "ws" in request_:
        offered = [fill(igloo, p) for p in request_.get("subprotocols", [])]
        selected, greeting = asyncio.run(open_stream(igloo, fill(igloo, request_["ws"]), offered))
        assert greeting["type"] == "system" and greeting["message"] == "Connected to event stream"
        # A browser aborts unless one offered protocol is selected; offered alone, the hint is selected.
        assert selected == (offered[0] if offered else None)
        return
    headers = {k: fill(igloo, v) for k, v in request_.get("headers", {}).items()}
    auth = "basic" if request_.get("basic") else "none"
    raw = json.dumps(request_["body"]).encode() if "body" in request_ else None
    reply = igloo.call(request_["method"], request_["path"], auth=auth, headers=headers, raw=raw)
    if request_.get("pending") and reply.status == 404:
        pytest.xfail(request_["pending"])
    assert reply.status == request_.get("expect", 200), (example["text"], reply.body)
    if request_["path"] == "/api/status":
        assert reply.body["serverRunning"] is True and all(isinstance(r, str) for r in reply.body["relays"])


def test_plain_protocol_beside_a_hint_is_selected_and_the_hint_never_echoed(igloo: Igloo) -> None:
    selected, _ = asyncio.run(open_stream(igloo, "/api/events", [f"apikey.{API_KEY}", "igloo.v1"]))
    assert selected == "igloo.v1"


def test_a_fresh_client_gets_live_events_only(igloo: Igloo) -> None:
    """As on Igloo Server: connecting without ?since= brings no old events (the setup made plenty)."""

    async def first_frames() -> list[dict[str, Any]]:
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{igloo.target.port}/api/events",
                                                 headers={"X-API-Key": API_KEY})
        ws = await tornado.websocket.websocket_connect(request)
        frames = [json.loads(await asyncio.wait_for(ws.read_message(), 5))]  # type: ignore[arg-type]
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.read_message(), 0.3)))  # type: ignore[arg-type]
        except TimeoutError:
            pass
        ws.close()
        return frames

    frames = asyncio.run(first_frames())
    assert frames[0]["message"] == "Connected to event stream" and frames[0]["data"]["lastSeq"] > 0
    # Anything after the greeting is live (published after it): its seq is above the greeting's lastSeq.
    assert all(f["seq"] > frames[0]["data"]["lastSeq"] for f in frames[1:])
