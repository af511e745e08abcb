"""Every page works under its Content-Security-Policy (own scripts and styles only, nothing inline):
Chromium reports any refused script, style, handler or connection, and the page's scripts must run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

CONN = "[data-igloo-conn]"


def test_pages_run_under_the_policy(browser: Any, igloo: IglooProcess) -> None:
    ctx = browser.new_context(base_url=igloo.base)  # the policy enforced (no bypass_csp)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text)
            if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        response = page.goto("/login")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        page.fill("input[name=username]", USERNAME)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{igloo.base}/dashboard")
        expect(page.locator(CONN)).to_have_attribute("data-state", "live", timeout=10_000)  # events.js ran
        page.goto("/configure")
        expect(page.locator("textarea[name=relays]")).to_be_visible()
        page.goto("/nip46")
        expect(page.locator(CONN)).to_have_attribute("data-state", "live", timeout=10_000)
        page.goto("/dashboard")
        expect(page.locator(CONN)).to_have_attribute("data-state", "live", timeout=10_000)
        page.click("form.logout-form button")  # a form post with the session's XSRF token
        expect(page).to_have_url(f"{igloo.base}/login")
    finally:
        ctx.close()
    assert not problems, problems
