"""A real 2-of-3 group over separate loopback relays, run from the dashboard in real Chromium.

X (the server in the browser) has its credentials and RELAYS in the environment; Y, its co-signer, is another
``python server.py`` on two relays; the third member never runs. Both hold peers' requests for approval.
Shown here: the approval panel beside the peers card, the budget a peer has used, a refusal marked in the
activity chart, and X moved from one relay to another on its dashboard while its own sign is in flight, the
old relay killed, and the co-signer still answering.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import Settings
from node.keytools import keygen
from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess
from tests.browser.helpers import api, spawn, wait_for

DEFAULT_BUDGET = Settings().sign_budget  # the server under test runs with the default SIGN_BUDGET

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


class Group:
    """The processes of this module: relays R1 and R2, the co-signer Y, and X."""

    def __init__(self, tmp: Any) -> None:
        self.keyset = keygen(2, 3)
        self.r1 = spawn(tmp.mktemp("r1"), RELAY_WRITE="all", IGLOO_DEMO="false")
        self.r2 = spawn(tmp.mktemp("r2"), RELAY_WRITE="all", IGLOO_DEMO="false")
        self.r1_url, self.r2_url = (f"ws://127.0.0.1:{r.port}/" for r in (self.r1, self.r2))
        common = {"IGLOO_DEMO": "false", "SIGN_APPROVAL": "true", "PEER_PING_INTERVAL": "2",
                  "GROUP_CRED": self.keyset["group"]}
        self.y = spawn(tmp.mktemp("y"), SHARE_CRED=self.keyset["shares"][1],
                       RELAYS=f"{self.r1_url},{self.r2_url}", FROSTR_SIGN_TIMEOUT="8000", **common)
        self.x = spawn(tmp.mktemp("x"), users=((USERNAME, PASSWORD),), SHARE_CRED=self.keyset["shares"][0],
                       RELAYS=self.r1_url, FROSTR_SIGN_TIMEOUT="20000", **common)
        self.y_pubkey = api(self.y, "GET", "/api/peers/self")[1]["pubkey"]

    def stop(self) -> None:
        for proc in (self.x, self.y, self.r1, self.r2):
            proc.stop()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    made = Group(tmp_path_factory)
    try:
        wait_for(lambda: made.x.status().get("ready") and made.y.status().get("ready"), 15, "nodes ready")
        yield made
    finally:
        made.stop()


@pytest.fixture
def page(browser: Any, group: Group) -> Iterator[Any]:
    ctx = browser.new_context(base_url=group.x.base, viewport={"width": 1280, "height": 900})
    assert ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD}).ok
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/dashboard")
    expect(page.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    yield page
    assert not errors, errors
    ctx.close()


def sign_in_background(proc: IglooProcess) -> tuple[threading.Thread, list[tuple[int, Any]]]:
    """POST /api/sign on ``proc`` in another thread (it waits for approvals); the result goes in the list."""
    results: list[tuple[int, Any]] = []
    thread = threading.Thread(target=lambda: results.append(api(proc, "POST", "/api/sign",
                                                                {"message": "ab" * 32}, timeout=40)))
    thread.start()
    return thread, results


def pending_approvals(proc: IglooProcess) -> list[dict[str, Any]]:
    code, body = api(proc, "GET", "/api/approvals")
    assert code == 200
    approvals: list[dict[str, Any]] = body["approvals"]
    return approvals


def test_approval_panel_budget_and_refusal_beside_the_peers(page: Any, group: Group) -> None:
    row = page.locator(f'#peers [data-pubkey="{group.y_pubkey}"]')
    expect(row).to_have_attribute("data-online", "true", timeout=10_000)
    expect(row.locator("[data-peer-budget]")).to_have_attribute("data-peer-budget", "0")
    expect(page.locator("#relays [data-relay-source-text]")).to_contain_text("From RELAYS in the environment")

    # Y asks X to co-sign: the request waits in X's approval panel, next to the peers.
    thread, results = sign_in_background(group.y)
    request = page.locator("[data-approval-list] > li")
    expect(request).to_have_count(1, timeout=10_000)
    expect(request).to_contain_text("1 signature(s) for " + group.y_pubkey[:12])
    request.get_by_role("button", name="Approve").click()
    thread.join(30)
    assert results and results[0][0] == 200, results
    expect(request).to_have_count(0)
    expect(row.locator("[data-peer-budget]")).to_have_attribute("data-peer-budget", "1", timeout=10_000)
    expect(row.locator("[data-peer-budget]")).to_contain_text(f"budget 1/{DEFAULT_BUDGET}")
    expect(page.locator('[data-act="signAnswered"]')).to_have_text("1", timeout=10_000)

    # Answer off for Y: its next request is refused at once (nothing to approve), marked in the chart.
    row.locator('[data-policy="recv"]').click()
    expect(row).to_have_attribute("data-explicit", "true")
    thread, results = sign_in_background(group.y)
    expect(page.locator('[data-act="refused"]')).to_have_text("1", timeout=15_000)
    expect(page.locator('#activity svg.act-chart [data-mark="refused"]')).to_have_count(1)
    # (Not necessarily the last column: the half hour may have turned since.)
    expect(page.locator("#activity svg.act-chart g.act-col title", has_text="refused: 1")).to_have_count(1)
    expect(request).to_have_count(0)
    thread.join(30)
    assert results and results[0][0] in (502, 503, 504), results
    expect(row.locator("[data-peer-budget]")).to_have_attribute("data-peer-budget", "1")  # nothing spent
    row.locator("[data-peer-reset]").click()
    expect(row).to_have_attribute("data-explicit", "false")


def test_moved_to_another_relay_with_a_sign_in_flight(page: Any, group: Group) -> None:
    card = page.locator("#relays")
    expect(card.locator(f'[data-relay="{group.r1_url}"]')).to_have_attribute("data-state", "connected")

    # X asks Y; Y holds the request for its operator: X's sign is in flight.
    page.click("[data-sign-test]")
    approvals = wait_for(lambda: pending_approvals(group.y), 10, "the request waiting on Y")

    # On X's dashboard: add R2, remove R1, then R1 dies for good.
    page.fill("#relay-add-url", group.r2_url)
    page.click("[data-relay-add-button]")
    expect(card.locator(f'[data-relay="{group.r2_url}"]')).to_have_attribute("data-state", "connected",
                                                                              timeout=10_000)
    card.locator(f'[data-relay="{group.r1_url}"] [data-relay-remove]').click()
    expect(card.locator(f'[data-relay="{group.r1_url}"]')).to_have_count(0)
    expect(card.locator("[data-relay-source-text]")).to_contain_text("Set here")
    expect(card.locator("[data-relay-reset]")).to_be_visible()
    assert [r["url"] for r in group.x.status()["relayDetails"]] == [group.r2_url]
    group.r1.kill()
    assert page.locator("[data-action-result]").inner_text() == "Signing…"

    # Y's operator approves: the answer reaches X through R2 and the sign in flight completes.
    assert api(group.y, "POST", f"/api/approvals/{approvals[0]['id']}", {"action": "approve"})[0] == 200
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)

    # The co-signer keeps answering on the new relay.
    page.click("[data-sign-test]")
    expect(page.locator("[data-action-result]")).to_have_text("Signing…")
    approvals = wait_for(lambda: pending_approvals(group.y), 10, "the second request waiting on Y")
    assert api(group.y, "POST", f"/api/approvals/{approvals[0]['id']}", {"action": "approve"})[0] == 200
    expect(page.locator("[data-action-result]")).to_contain_text("Signed in", timeout=15_000)

    # Back to RELAYS from the environment: R1 is gone, and the card says why it cannot connect. The node keeps
    # R2 until R1 answers or the switch gives up (at most 5 s), then has R1 alone.
    card.locator("[data-relay-reset]").click()
    expect(card.locator("[data-relay-source-text]")).to_contain_text("From RELAYS in the environment")
    dead = card.locator(f'[data-relay="{group.r1_url}"]')
    expect(dead).not_to_have_attribute("data-state", "connected", timeout=10_000)
    expect(dead.locator("[data-relay-error-text]")).not_to_be_empty(timeout=10_000)
    expect(card.locator("[data-relay-remove]")).to_have_count(0, timeout=10_000)
    assert [r["url"] for r in group.x.status()["relayDetails"]] == [group.r1_url]
