"""Running the signer from the dashboard, in real Chromium against a real server running the demo 2-of-3
group: relays added and removed live with their state and round trip, peers pinged, their policies toggled and
reset, the latency sparkline and the activity chart redrawn by the server as events arrive, phone layout."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from tests.browser.conftest import PASSWORD, REPO_ROOT, USERNAME, IglooProcess
from tests.browser.helpers import api, spawn, wait_for

DEFAULT_BUDGET = Settings().sign_budget  # the server under test runs with the default SIGN_BUDGET

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

RTT = re.compile(r"RTT (<1|\d+) ms")
# IGLOO_DOCS_SCREENSHOTS=1 writes the screenshots into docs/ (how docs/dashboard-*.png were made).
DOCS_SCREENSHOTS = os.environ.get("IGLOO_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IglooProcess]:
    """A server running the demo group; peers are pinged every 2 s so live updates come quickly."""
    proc = spawn(tmp_path_factory.mktemp("ops"), users=((USERNAME, PASSWORD),), PEER_PING_INTERVAL="2")
    try:
        code, body = api(proc, "POST", "/api/demo/start")
        assert code == 200 and body["demo"] is True, body
        wait_for(lambda: proc.status().get("peersOnline") == 2, 15, "both demo peers online")
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def spare_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another loopback relay (a second server that takes any group's events)."""
    proc = spawn(tmp_path_factory.mktemp("spare-relay"), RELAY_WRITE="all", IGLOO_DEMO="false")
    try:
        yield f"ws://127.0.0.1:{proc.port}/"
    finally:
        proc.stop()


@pytest.fixture
def page(browser: Any, server: IglooProcess) -> Iterator[Any]:
    # bypass_csp: Playwright's wait_for_function evaluates its predicate string with eval, which the pages'
    # Content-Security-Policy forbids; tests/browser/test_csp.py loads the pages with it enforced.
    ctx = browser.new_context(base_url=server.base, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    res = ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD})
    assert res.status == 200, res.text()
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/dashboard")
    expect(page.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    yield page
    assert not errors, errors
    ctx.close()


def relay_urls(server: IglooProcess) -> list[tuple[str, bool]]:
    return [(r["url"], r["connected"]) for r in server.status()["relayDetails"]]


def test_relays_added_and_removed_live_with_state_and_round_trip(
    page: Any, server: IglooProcess, spare_relay: str
) -> None:
    embedded = f"ws://127.0.0.1:{server.port}/"
    card = page.locator("#relays")
    first = card.locator(f'[data-relay="{embedded}"]')
    expect(first).to_have_attribute("data-state", "connected")
    expect(first.locator("[data-relay-rtt]")).to_have_text(RTT)
    expect(card.locator("[data-relay-source-text]")).to_contain_text("Demo: changes move the demo node only")
    expect(card.locator("[data-relay-remove]")).to_have_count(0)  # the only relay cannot be removed

    # The round trip is measured again every ping interval; the card is redrawn without a click.
    done = page.evaluate("IglooCards.refreshes.relays || 0")
    page.wait_for_function(f"(IglooCards.refreshes.relays || 0) > {done}", timeout=8_000)

    page.fill("#relay-add-url", "http://not-a-relay.example")
    page.click("[data-relay-add-button]")
    expect(card.locator("[data-relay-error]")).to_contain_text("wss://")
    page.fill("#relay-add-url", spare_relay)
    page.click("[data-relay-add-button]")
    added = card.locator(f'[data-relay="{spare_relay}"]')
    expect(added).to_have_attribute("data-state", "connected", timeout=10_000)
    expect(added.locator("[data-relay-rtt]")).to_have_text(RTT, timeout=10_000)
    expect(card.locator("[data-relay-error]")).to_be_hidden()
    expect(page.locator("#relay-add-url")).to_have_value("")
    expect(card.locator('[data-slot="relays-summary"]')).to_contain_text("2 connected / 2")
    assert relay_urls(server) == [(embedded, True), (spare_relay, True)]
    expect(page.locator('[data-log-list] > li:has-text("Relays changed")').first).to_be_visible()

    page.fill("#relay-add-url", spare_relay)
    page.click("[data-relay-add-button]")
    expect(card.locator("[data-relay-error]")).to_have_text("That relay is already in the list.")

    added.locator("[data-relay-remove]").click()
    expect(added).to_have_count(0)
    assert relay_urls(server) == [(embedded, True)]
    # The node moved twice without a restart: it still signs with its peers.
    page.click("[data-sign-test]")
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)
    assert server.status()["demo"] is True


def test_peers_ping_policies_reset_and_live_sparkline(page: Any, server: IglooProcess) -> None:
    card = page.locator("#peers")
    rows = card.locator("[data-pubkey]")
    expect(rows).to_have_count(2)
    expect(card.locator("[data-peer-online]")).to_have_text("2")
    pk = rows.first.get_attribute("data-pubkey")
    row = card.locator(f'[data-pubkey="{pk}"]')
    spark = f'#peers [data-pubkey="{pk}"] svg.spark'
    expect(row.locator("svg.spark title")).to_contain_text("Latency of the last")
    expect(row.locator("[data-peer-budget]")).to_contain_text(f"budget 0/{DEFAULT_BUDGET}")

    # Live: the periodic ping (every 2 s here) redraws the server-rendered sparkline with no click.
    before = int(page.get_attribute(spark, "data-samples"))
    page.wait_for_function(f"Number(document.querySelector('{spark}').dataset.samples) > {before}",
                           timeout=8_000)

    row.locator("[data-peer-ping]").click()
    expect(card.locator("[data-peers-result]")).to_contain_text(re.compile(r"answered in \d+ ms"))
    page.click("[data-peers-ping-all]")
    answered = re.compile(r"Pinged 2 peers: 2 answered \(\d+ ms, \d+ ms\)")
    expect(card.locator("[data-peers-result]")).to_contain_text(answered)

    # Answer off: stored at once; Reset goes back to the default.
    expect(row.locator("[data-peer-reset]")).to_be_disabled()
    row.locator('[data-policy="recv"]').click()
    expect(row).to_have_attribute("data-explicit", "true")
    expect(row.locator('[data-policy="recv"]')).not_to_be_checked()
    code, body = api(server, "GET", f"/api/peers/{pk}/policy")
    assert code == 200 and body["policy"]["allowReceive"] is False and body["policy"]["allowSend"] is True
    row.locator("[data-peer-reset]").click()
    expect(row).to_have_attribute("data-explicit", "false")
    expect(row.locator('[data-policy="recv"]')).to_be_checked()
    assert api(server, "GET", f"/api/peers/{pk}/policy")[1]["policy"]["hasExplicitPolicy"] is False

    # With the keyboard: the toggle keeps the focus across the card's redraw.
    toggle = row.locator('[data-policy="send"]')
    toggle.focus()
    page.keyboard.press("Space")
    expect(row).to_have_attribute("data-explicit", "true")
    expect(toggle).not_to_be_checked()
    assert page.evaluate("document.activeElement.dataset.focusId") == f"send:{pk}"
    # Never asked any more, the other peer co-signs.
    page.click("[data-sign-test]")
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)
    toggle.focus()
    page.keyboard.press("Space")
    expect(toggle).to_be_checked()
    row.locator("[data-peer-reset]").click()
    expect(row).to_have_attribute("data-explicit", "false")


def test_activity_chart_counts_signatures_live(page: Any) -> None:
    counter = page.locator('[data-act="signRequested"]')
    before = int(counter.inner_text())
    page.click("[data-sign-test]")
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)
    expect(counter).to_have_text(str(before + 1), timeout=10_000)
    columns = page.locator("#activity svg.act-chart g.act-col")
    expect(columns).to_have_count(48)
    # The newest signatures sit in the last column, or the one before when the half hour has just turned.
    signed = page.locator("#activity svg.act-chart g.act-col:has(rect.act-sign) title")
    expect(signed.last).to_contain_text("asked by this signer: ")
    numbers = [int(n) for t in signed.all_text_contents()
               for n in re.findall(r"asked by this signer: (\d+) signature", t)]
    assert sum(numbers) == before + 1, numbers
    assert int(columns.last.get_attribute("data-start")) - int(
        signed.last.locator("xpath=..").get_attribute("data-start")) <= 1800


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"), (1366, 900, "desktop")])
def test_screenshots_with_a_running_group(
    browser: Any, server: IglooProcess, tmp_path: Path, width: int, height: int, name: str
) -> None:
    ctx = browser.new_context(base_url=server.base, viewport={"width": width, "height": height},
                              device_scale_factor=2 if name == "phone" else 1)
    try:
        assert ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD}).ok
        page = ctx.new_page()
        page.goto("/dashboard")
        expect(page.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
        expect(page.locator("[data-peer-online]")).to_have_text("2", timeout=10_000)
        expect(page.locator("#relays [data-relay]").first).to_have_attribute("data-state", "connected")
        page.click("[data-sign-test]")
        expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)
        expect(page.locator('[data-act="signRequested"]')).not_to_have_text("0")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "horizontal scrolling"
        for card in ("#signer", "#relays", "#peers", "#activity", "#event-log"):
            box = page.locator(card).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, card
        if name == "phone":
            boxes = [page.locator(c).bounding_box() for c in ("#signer", "#relays", "#peers", "#activity")]
            assert all(b is not None for b in boxes)
            assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)  # type: ignore[index]
            # Every control of a peer row stays reachable: no button pushed off the card.
            right_edges = page.eval_on_selector_all(
                "#peers [data-pubkey] button, #peers [data-pubkey] input",
                "els => els.map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect().right])")
            assert len(right_edges) == 8 and all(right <= width for _, right in right_edges), right_edges
        page.evaluate("window.scrollTo(0, 0)")
        target = (REPO_ROOT / "docs" if DOCS_SCREENSHOTS else tmp_path) / f"dashboard-{name}.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000
    finally:
        ctx.close()
