"""The relay's plain-HTTP face (NIP-11, redirect) and its per-connection protections."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import HTTPClientError

from relay import RelayLimits, RelayState
from tests.relay.helpers import RelayClient, make_event

pytestmark = pytest.mark.timeout(30)

LIMITS = RelayLimits(
    max_subscriptions=4,
    max_filters=3,
    max_limit=20,
    max_event_tags=10,
    max_content_length=60_000,
    max_message_length=64 * 1024,
    event_rate=1000.0,
    event_burst=30.0,
    max_connections=3,
)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """Token buckets on a clock that stands still: a client has its burst and nothing refills it."""
    return {"relay": RelayState(LIMITS, monotonic=lambda: 0.0)}


async def test_nip11_document_with_cors(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/", headers={"Accept": "application/nostr+json"})
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/nostr+json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    info = json.loads(response.body)
    assert info["name"] == "Igloo embedded relay"
    assert info["supported_nips"] == [1, 11]
    assert info["limitation"]["max_subscriptions"] == 4
    assert info["limitation"]["max_filters"] == 3
    assert info["limitation"]["max_message_length"] == 64 * 1024
    assert info["limitation"]["auth_required"] is False
    assert isinstance(info["version"], str) and isinstance(info["software"], str)


async def test_cors_preflight(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/", method="OPTIONS")
    assert response.code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_browser_get_redirects_to_dashboard(http_server_client: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await http_server_client.fetch("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert info.value.code == 302
    assert info.value.response is not None
    assert info.value.response.headers["Location"] == "/dashboard"


async def test_foreign_origin_may_connect(relay_url: str) -> None:
    from tornado.httpclient import HTTPRequest

    client = await RelayClient.connect(HTTPRequest(relay_url, headers={"Origin": "https://example.org"}))
    assert await client.req("s", {"kinds": [1]}) == []


async def test_event_rate_limit(relay_url: str) -> None:
    """Each EVENT costs one token plus its size; a refused one still pays for its bytes and reading."""
    client = await RelayClient.connect(relay_url)
    events = [make_event(0, content=str(i)) for i in range(40)]
    frames = [json.dumps(["EVENT", event.to_json()]) for event in events]
    for frame in frames:
        await client.send(frame)
    replies = [await client.recv() for _ in events]
    assert [r[1] for r in replies] == [e.id for e in events]
    tokens, expected = LIMITS.event_burst, []
    for frame in frames:
        size_cost = len(frame) / LIMITS.frame_bytes_per_token
        expected.append(tokens >= 1 + size_cost)
        tokens -= 1 + size_cost if expected[-1] else size_cost + LIMITS.refused_frame_cost
    assert [r[2] for r in replies] == expected
    assert expected.count(False) == 11  # 29 fit in the burst of 30 once their bytes are paid for
    assert all(r[3].startswith("rate-limited:") for r in replies if r[2] is False)


async def test_connection_cap_refuses_upgrades_until_one_leaves(
    relay_url: str, app: tornado.web.Application
) -> None:
    clients = [await RelayClient.connect(relay_url) for _ in range(3)]
    with pytest.raises(HTTPClientError) as info:
        await RelayClient.connect(relay_url)
    assert info.value.code == 503
    clients[0].close()
    hub = app.settings["relay"]
    for _ in range(200):
        if hub.open_count() < 3:
            break
        await asyncio.sleep(0.01)
    late = await RelayClient.connect(relay_url)
    assert await late.req("s", {"kinds": [1]}) == []
