"""First run in real Chromium: start the demo, sign a test message, watch the exchange arrive live."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

ROWS = "[data-log-list] > li"


@pytest.fixture
def page(browser: Any, igloo: IglooProcess) -> Iterator[Any]:
    ctx = browser.new_context(base_url=igloo.base, viewport={"width": 1280, "height": 900})
    res = ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD})
    assert res.status == 200, res.text()
    yield ctx.new_page()
    ctx.close()


def test_demo_button_then_sign_a_test_message_live(page: Any) -> None:
    page.goto("/dashboard")
    expect(page.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    page.click("[data-demo-start]")  # starts three nodes on the embedded relay, then reloads the page
    sign = page.locator("[data-sign-test]")
    expect(sign).to_be_visible(timeout=15_000)
    expect(page.locator("text=Demo").first).to_be_visible()
    expect(page.locator(f'{ROWS}:has-text("Node is ready")').first).to_be_visible(timeout=10_000)

    sign.click()
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)
    # The whole exchange arrives in the live log: our request, a demo peer's answer, the aggregate.
    for text in ("Signature request sent", "Signature response sent", "Signature shares aggregated"):
        expect(page.locator(f'{ROWS}:has-text("{text}")').first).to_be_visible(timeout=10_000)
    expect(page.locator(f'{ROWS}:has-text("[Demo peer")').first).to_be_visible()
    # Both demo peers show online without waiting for a full ping interval.
    expect(page.locator("[data-peer-total]")).to_have_text("2")
    expect(page.locator("[data-peer-online]")).to_have_text("2", timeout=10_000)
