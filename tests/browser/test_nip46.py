"""The NIP-46 page in real Chromium against a real ``python server.py`` running the demo group: the bunker
link and its QR code appear, a client pairs with that link, its sign request shows up live, and Approve
completes the client's call with a signature that verifies."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from node.nostr.event import Event, verify_event
from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess
from tests.nip46.client import Nip46Client

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
T = TypeVar("T")


class LoopThread:
    """An asyncio loop on its own thread, for the NIP-46 client next to Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def api(igloo: IglooProcess, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        igloo.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": igloo.env["API_KEY"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def page(browser: Any, igloo: IglooProcess) -> Iterator[Any]:
    ctx = browser.new_context(base_url=igloo.base, viewport={"width": 1280, "height": 900})
    res = ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD})
    assert res.status == 200, res.text()
    yield ctx.new_page()
    ctx.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_pair_from_the_page_then_approve_a_live_request(
        page: Any, igloo: IglooProcess, loop: LoopThread) -> None:
    api(igloo, "POST", "/api/demo/start", {})
    deadline = time.monotonic() + 15
    while not api(igloo, "GET", "/api/nip46/bunker")["listening"]:  # the bunker follows the node within 1 s
        assert time.monotonic() < deadline, "the bunker did not start listening"
        time.sleep(0.1)

    page.goto("/dashboard")
    page.click('a.tab[href="/nip46"]')  # the header's tab
    expect(page).to_have_url(f"{igloo.base}/nip46")
    expect(page.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    uri_box = page.locator("[data-bunker-uri]")
    expect(uri_box).to_contain_text("bunker://")
    expect(page.locator("[data-bunker-qr] svg")).to_be_visible()
    expect(page.locator("[data-nip46-listening]")).to_have_attribute("data-nip46-listening", "true")
    first = uri_box.inner_text()
    page.click("[data-bunker-new]")  # a new link replaces the first one
    expect(uri_box).not_to_have_text(first)
    uri = uri_box.inner_text().strip()
    assert page.locator("[data-bunker-copy]").get_attribute("data-copy") == uri

    pubkey = uri[len("bunker://"):].split("?")[0]
    secret = uri.split("secret=")[1]
    client = Nip46Client([f"ws://127.0.0.1:{igloo.port}/"], pubkey)
    loop.run(client.start())
    try:
        replaced = loop.run(client.call("connect", [pubkey, first.split("secret=")[1]]))
        assert "invalid secret" in replaced["error"]
        assert loop.run(client.call("connect", [pubkey, secret]))["result"] == "ack"
        expect(page.locator(f'[data-session="{client.pubkey}"]')).to_be_visible(timeout=10_000)

        template = {"kind": 1, "created_at": int(time.time()), "tags": [],
                    "content": "approve me in the browser"}
        request_id = loop.run(client.send("sign_event", [json.dumps(template)]))
        card = page.locator(".nip46-request").first
        expect(card).to_contain_text("Sign an event of kind 1", timeout=10_000)  # live, no reload
        expect(card).to_contain_text("approve me in the browser")
        expect(page.locator("[data-request-count]")).to_have_text("1")
        card.locator('[data-action="approve"]').click()

        [answer] = loop.run(client.wait(request_id, 15), timeout=20)
        event = Event.from_json(json.loads(answer["result"]))
        verify_event(event)
        assert event.content == "approve me in the browser"
        expect(page.locator(".nip46-request")).to_have_count(0, timeout=10_000)
        done = page.locator('[data-history-list] [data-status="completed"]').first
        expect(done).to_be_visible(timeout=10_000)
        expect(page.locator("[data-request-count]")).to_have_text("0")
    finally:
        loop.run(client.close())


def test_users_see_apps_and_requests_but_only_administrators_change_them(
        browser: Any, page: Any, igloo: IglooProcess, loop: LoopThread) -> None:
    """Users approve or deny; pairing, permissions, "always" and revoking are for administrators (403 for a
    user), so a user's page offers none of them: it shows the same apps and requests, read-only."""
    igloo.adduser("bob", PASSWORD)  # the second account: a user
    try:
        api(igloo, "POST", "/api/demo/start", {})
    except urllib.error.HTTPError as err:  # already running from an earlier test of this module
        assert err.code == 409, err
    deadline = time.monotonic() + 15
    while not api(igloo, "GET", "/api/nip46/bunker")["listening"]:
        assert time.monotonic() < deadline, "the bunker did not start listening"
        time.sleep(0.1)
    link = api(igloo, "POST", "/api/nip46/bunker", {})
    client = Nip46Client([f"ws://127.0.0.1:{igloo.port}/"], link["pubkey"])
    loop.run(client.start())
    user_ctx = browser.new_context(base_url=igloo.base, viewport={"width": 1280, "height": 900})
    try:
        secret = link["uri"].split("secret=")[1]
        assert loop.run(client.call("connect", [link["pubkey"], secret]))["result"] == "ack"
        template = {"kind": 1, "created_at": int(time.time()), "tags": [], "content": "who may decide"}
        request_id = loop.run(client.send("sign_event", [json.dumps(template)]))

        page.goto("/nip46")  # the administrator
        card = page.locator(".nip46-request", has_text="who may decide")
        expect(card).to_be_visible(timeout=10_000)
        expect(card.locator("[data-action]")).to_have_count(4)
        session = page.locator(f'[data-session="{client.pubkey}"]')
        expect(session.locator("select").first).to_be_visible()
        expect(session.locator("[data-revoke]")).to_have_count(1)
        expect(page.locator("[data-bunker-new]")).to_have_count(1)
        expect(page.locator("#nostrconnect")).to_have_count(1)

        res = user_ctx.request.post("/api/auth/login", data={"username": "bob", "password": PASSWORD})
        assert res.status == 200, res.text()
        user = user_ctx.new_page()
        user.goto("/nip46")
        card = user.locator(".nip46-request", has_text="who may decide")
        expect(card).to_be_visible(timeout=10_000)
        actions = card.locator("[data-action]")
        expect(actions).to_have_count(2)
        assert [actions.nth(i).get_attribute("data-action") for i in range(2)] == ["approve", "deny"]
        session = user.locator(f'[data-session="{client.pubkey}"]')
        expect(session).to_be_visible()
        expect(session.locator("select")).to_have_count(0)
        expect(session.locator('[data-decision="ask"]').first).to_be_visible()  # the permissions, read-only
        expect(session.locator("[data-revoke]")).to_have_count(0)
        for admin_only in ("[data-bunker-new]", "[data-bunker-uri]", "#nostrconnect"):
            expect(user.locator(admin_only)).to_have_count(0)
        expect(user.locator("[data-pairing-admin-only]")).to_be_visible()

        card.locator('[data-action="deny"]').click()  # what a user may do works from the page
        [answer] = loop.run(client.wait(request_id, 15), timeout=20)
        assert answer.get("error")
        expect(card).to_have_count(0, timeout=10_000)
    finally:
        user_ctx.close()
        loop.run(client.close())
