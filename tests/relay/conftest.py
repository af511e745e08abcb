"""An application that mounts only the relay, with small limits where tests need to hit them."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.web

from handlers import relay
from relay import RelayLimits, RelayState

TEST_LIMITS = RelayLimits(
    max_events=50,
    max_age=3600,
    max_message_length=16 * 1024,
    max_subscriptions=4,
    max_filters=3,
    max_limit=20,
    max_event_tags=10,
    max_content_length=2000,
    event_rate=1000.0,
    event_burst=1000.0,
)


@pytest.fixture
def relay_settings() -> dict[str, Any]:
    """Application settings for the relay under test (tests may override the fixture)."""
    return {"relay": RelayState(TEST_LIMITS)}


@pytest.fixture
def app(relay_settings: dict[str, Any]) -> tornado.web.Application:
    """The relay routes alone."""
    return tornado.web.Application(relay.ROUTES, **relay_settings)


@pytest.fixture
def relay_url(http_server: Any, http_server_port: tuple[Any, int]) -> str:
    """ws:// URL of the relay on its loopback port."""
    return f"ws://127.0.0.1:{http_server_port[1]}/"
