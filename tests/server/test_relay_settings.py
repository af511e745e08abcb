"""The embedded relay takes its bounds from the environment."""

from __future__ import annotations

import pytest
import tornado.httpclient
import tornado.websocket

from tests.server.conftest import Igloo


@pytest.mark.parametrize("overrides", [{"RELAY_MAX_CONNECTIONS": "1", "RELAY_LOCAL_RESERVED": "0"}])
async def test_relay_connection_cap_comes_from_env(igloo: Igloo) -> None:
    first = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{igloo.port}/")
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{igloo.port}/")
    assert refused.value.code == 503
    first.close()
