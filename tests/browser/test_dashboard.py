"""The dashboard in real headless Chromium against a real ``python server.py``.

What events.js promises (reconnect, resume, dedupe, sign-out, close codes, state indicator) and what the
event log does (live rows, several types and text at once, pause, download, clear, phone layout) are checked
here end to end; the relays, peers and activity cards with a running group in test_dashboard_ops.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

CONN = "[data-igloo-conn]"
ROWS = "[data-log-list] > li"
EVENTS_RE = re.compile(r"/api/events")


class Tab:
    """A page plus what it did: the WebSocket URLs it opened and the routed sockets (when routed)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sockets: list[str] = []
        self.routes: list[Any] = []
        page.on("websocket", lambda ws: self.sockets.append(ws.url) if EVENTS_RE.search(ws.url) else None)

    def js(self, expr: str) -> Any:
        """Evaluate an expression in the page."""
        return self.page.evaluate(expr)

    def seqs(self) -> list[int]:
        """The seq of every row in the log, top (newest) first."""
        found = self.page.eval_on_selector_all(ROWS + "[data-seq]", "els => els.map(e => e.dataset.seq)")
        return [int(s) for s in found]

    def wait_live(self) -> None:
        """Wait until the indicator says Live."""
        expect(self.page.locator(CONN)).to_have_attribute("data-state", "live", timeout=10_000)
        expect(self.page.locator(CONN)).to_have_text("Live")

    def settle(self) -> int:
        """Wait until the page has seen every event the server has published (e.g. this tab's own login
        event, which arrives live after the socket opens); return that seq."""
        self.page.wait_for_function(
            "fetch('/api/status').then(r => r.json()).then(s => IglooEvents.lastSeq === s.lastSeq)",
            timeout=5_000,
        )
        last: int = self.js("IglooEvents.lastSeq")
        return last

    def wait_row(self, seq: int) -> Any:
        """Wait until the row of ``seq`` is in the log."""
        row = self.page.locator(f'{ROWS}[data-seq="{seq}"]')
        expect(row).to_have_count(1, timeout=10_000)
        return row


@pytest.fixture
def open_tab(browser: Any, igloo: IglooProcess) -> Iterator[Any]:
    """Factory: a (logged-in) dashboard tab, optionally with tuned timing or a routed socket."""
    contexts: list[Any] = []

    def make(
        *,
        login: bool = True,
        config: dict[str, int] | None = None,
        route: bool = False,
        viewport: dict[str, int] | None = None,
        goto: str | None = "/dashboard",
    ) -> Tab:
        # bypass_csp: Playwright's wait_for_function evaluates its predicate string with eval, which the
        # pages' Content-Security-Policy forbids; tests/browser/test_csp.py loads the pages with it enforced.
        ctx = browser.new_context(base_url=igloo.base, viewport=viewport or {"width": 1280, "height": 900},
                                  bypass_csp=True)
        contexts.append(ctx)
        if config:
            ctx.add_init_script(f"window.IglooEventsConfig = {json.dumps(config)};")
        if login:
            res = ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD})
            assert res.status == 200, res.text()
        tab = Tab(ctx.new_page())
        if route:
            def handler(ws: Any) -> None:
                ws.connect_to_server()
                tab.routes.append(ws)

            tab.page.route_web_socket(EVENTS_RE, handler)
        if goto:
            tab.page.goto(goto)
        return tab

    yield make
    for ctx in contexts:
        ctx.close()


def test_login_form_then_live_events_newest_first(open_tab: Any, igloo: IglooProcess) -> None:
    tab = open_tab(login=False)
    page = tab.page
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"))
    page.fill("#f-username", USERNAME)
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    tab.wait_live()
    expect(page.locator("#signer")).to_be_visible()
    expect(page.locator("form.logout-form input[name=_xsrf]")).to_have_count(1)
    assert tab.sockets[0].startswith(f"ws://127.0.0.1:{igloo.port}/api/events")

    first = igloo.publish_event()
    tab.wait_row(first)
    second = igloo.publish_event()
    row = tab.wait_row(second)
    expect(row).to_have_attribute("data-type", "info")
    assert tab.seqs()[:2] == [second, first]
    expect(page.locator("[data-log-count]")).to_contain_text("events")


def test_the_page_asks_for_its_history_explicitly(open_tab: Any, igloo: IglooProcess) -> None:
    """The server sends a client that names no position only live events (as Igloo Server did); the
    dashboard names one, so events from before the page opened are in its log."""
    earlier = [igloo.publish_event(message=f"before the page {n}") for n in range(3)]
    tab = open_tab()
    tab.wait_live()
    assert re.search(r"/api/events\?(since|history)=\d+$", tab.sockets[0]), tab.sockets[0]
    for seq in earlier:
        tab.wait_row(seq)


def test_restart_reconnects_resumes_and_never_duplicates(open_tab: Any, igloo: IglooProcess) -> None:
    tab = open_tab(config={"baseDelay": 200, "maxDelay": 800})
    page = tab.page
    tab.wait_live()
    before = igloo.publish_event()
    tab.wait_row(before)

    igloo.kill()
    expect(page.locator(CONN)).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    expect(page.locator(CONN)).to_contain_text("Reconnecting")
    # Backoff while the server is down: 200, 400, 800, 800 ms (each jittered down by at most 20 %).
    page.wait_for_function("IglooEvents.stats.delays.length >= 4", timeout=8_000)
    delays = tab.js("IglooEvents.stats.delays")
    for i, delay in enumerate(delays[:4]):
        step = min(800, 200 * 2**i)
        assert 0.8 * step - 1 <= delay <= step, delays

    # Offline: the page waits for the network instead of retrying; meanwhile the server comes back and
    # publishes an event this page has not seen.
    page.context.set_offline(True)
    expect(page.locator(CONN)).to_have_attribute("data-state", "offline", timeout=5_000)
    expect(page.locator(CONN)).to_have_text("Offline")
    igloo.start()
    missed = igloo.publish_event()
    attempts = len(tab.sockets)
    page.context.set_offline(False)   # fires `online`: reconnect at once, resuming after `before`
    tab.wait_live()
    assert len(tab.sockets) > attempts
    assert tab.sockets[-1].endswith(f"/api/events?since={before}"), tab.sockets[-1]
    tab.wait_row(missed)
    after = igloo.publish_event()
    tab.wait_row(after)

    seqs = tab.seqs()
    assert len(seqs) == len(set(seqs)), f"duplicate rows: {seqs}"
    assert seqs == sorted(seqs, reverse=True)
    assert {before, missed, after} <= set(seqs)
    assert tab.js("IglooEvents.lastSeq") == after


def test_logout_in_another_tab_sends_the_page_to_login_without_retrying(
    open_tab: Any, igloo: IglooProcess
) -> None:
    tab = open_tab()
    tab.wait_live()
    other = tab.page.context.new_page()
    other.goto("/dashboard")
    other.click("[data-logout]")
    expect(other).to_have_url(re.compile(r"/login"))

    expect(tab.page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"), timeout=5_000)
    time.sleep(0.5)
    assert len(tab.sockets) == 1, tab.sockets   # closed with 4401: no reconnect attempt before leaving


def test_refused_reconnect_with_ended_session_goes_to_login(open_tab: Any, igloo: IglooProcess) -> None:
    tab = open_tab(config={"baseDelay": 200, "maxDelay": 400})
    tab.wait_live()
    tab.page.context.clear_cookies()          # the session is gone, as after an expiry
    igloo.kill()
    expect(tab.page.locator(CONN)).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    igloo.start()
    attempts = tab.js("IglooEvents.stats.attempts")   # the page's own count (Python sees events late)
    # The next upgrade gets HTTP 401; /api/auth/status says authenticated: false -> /login, no more retries.
    expect(tab.page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"), timeout=5_000)
    assert len(tab.sockets) - attempts <= 1, tab.sockets


def test_close_codes_state_text_and_immediate_reconnects(open_tab: Any) -> None:
    tab = open_tab(config={"baseDelay": 20_000, "maxDelay": 30_000, "soonDelay": 250}, route=True)
    page = tab.page
    tab.wait_live()
    assert len(tab.routes) == 1

    # 1013 (too slow): back soon, resuming from the last seq seen.
    last = tab.settle()
    tab.routes[-1].close(code=1013, reason="too slow")
    page.wait_for_function("IglooEvents.stats.opens >= 2", timeout=3_000)
    assert tab.js("IglooEvents.stats.delays") == [250]
    assert tab.routes[-1].url.endswith(f"?since={last}")
    tab.wait_live()

    # 1001 (going away): backoff, shown as a countdown; `online` cuts it short.
    tab.routes[-1].close(code=1001, reason="server shutting down")
    expect(page.locator(CONN)).to_have_text(re.compile(r"Reconnecting in (1[6-9]|20) s"), timeout=3_000)
    delay = tab.js("IglooEvents.stats.delays")[-1]
    assert 16_000 <= delay <= 20_000
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_function("IglooEvents.stats.opens >= 3", timeout=3_000)
    tab.wait_live()

    # Same again, this time the tab becoming visible cuts it short.
    tab.routes[-1].close(code=1001)
    expect(page.locator(CONN)).to_have_attribute("data-state", "reconnecting", timeout=3_000)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function("IglooEvents.stats.opens >= 4", timeout=3_000)
    tab.wait_live()

    # 1000 (normal close): no reconnect at all.
    attempts = tab.js("IglooEvents.stats.attempts")
    tab.routes[-1].close(code=1000)
    expect(page.locator(CONN)).to_have_attribute("data-state", "offline", timeout=3_000)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    time.sleep(0.6)
    assert tab.js("IglooEvents.stats.attempts") == attempts
    assert tab.js("IglooEvents.stats.closes") == [1013, 1001, 1001, 1000]


def test_close_4401_goes_to_login_and_pagehide_closes_cleanly(open_tab: Any) -> None:
    tab = open_tab(route=True)
    tab.wait_live()
    tab.page.context.clear_cookies()   # as the server would have ended the session (else /login bounces back)
    tab.routes[-1].close(code=4401, reason="authentication ended")
    expect(tab.page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"), timeout=5_000)
    assert len(tab.routes) == 1

    tab2 = open_tab(route=True)
    tab2.wait_live()
    closed: list[int | None] = []
    tab2.routes[-1].on_close(lambda code, reason: closed.append(code))
    tab2.page.evaluate("window.dispatchEvent(new Event('pagehide'))")
    tab2.page.wait_for_timeout(600)
    assert closed == [1000]
    assert tab2.js("IglooEvents.stats.attempts") == 1


def test_duplicates_and_null_seq_frames(open_tab: Any) -> None:
    tab = open_tab(route=True)
    page = tab.page
    tab.wait_live()
    last = tab.settle()
    sock = tab.routes[-1]

    def push(message: str, seq: int | None, type_: str = "info", data: object = None) -> None:
        sock.send(json.dumps({"type": type_, "message": message, "data": data,
                              "timestamp": "2025-01-01T00:00:00.000Z", "id": message, "seq": seq}))

    push("probe: replayed duplicate", last)
    push("probe: per-connection frame", None)
    push("probe: new", last + 1000)
    push("probe: older than the newest", last + 999)
    expect(page.locator(ROWS, has_text="probe: new")).to_have_count(1)
    expect(page.locator(ROWS, has_text="probe: per-connection frame")).to_have_count(1)
    expect(page.locator(ROWS, has_text="probe: replayed duplicate")).to_have_count(0)
    expect(page.locator(ROWS, has_text="probe: older than the newest")).to_have_count(0)
    assert tab.js("IglooEvents.lastSeq") == last + 1000

    # The DOM keeps the newest 500 rows.
    sock.send(json.dumps({"type": "warn", "message": "bulk", "seq": last + 1002}))
    for i in range(1, 520):
        push(f"bulk {i}", last + 1002 + i)
    expect(page.locator(ROWS).first).to_contain_text("bulk 519")
    expect(page.locator(ROWS)).to_have_count(500)
    expect(page.locator("[data-log-count]")).to_have_text("500 events")

    # `data` expands as pretty JSON.
    push("probe: with data", last + 2000, "sign", {"session": {"members": [1, 3]}})
    row = page.locator(ROWS, has_text="probe: with data")
    row.locator("summary").click()
    expect(row.locator("pre")).to_contain_text('"members": [\n      1,')


def test_peer_and_relay_frames_without_message_are_described(open_tab: Any) -> None:
    tab = open_tab(route=True)
    page = tab.page
    tab.wait_live()
    pk = "02" + "ab" * 32
    frame: dict[str, Any] = {"type": "peer-ping-internal", "message": "", "id": "p1", "seq": None,
                             "timestamp": "2025-01-01T00:00:00.000Z",
                             "data": {"pubkey": pk, "status": {"pubkey": pk, "online": False, "latency": 42}}}
    tab.routes[-1].send(json.dumps(frame))
    row = page.locator(f'{ROWS}[data-type="peer-ping-internal"]').first
    expect(row).to_contain_text(f"Peer {'ab' * 4}…{'ab' * 4} offline, 42 ms")
    frame = {"type": "relay-status-internal", "message": "", "timestamp": "2025-01-01T00:00:00.000Z",
             "id": "r1", "seq": None, "data": {"url": "ws://127.0.0.1:9/", "state": "connected", "rtt": 3.4}}
    tab.routes[-1].send(json.dumps(frame))
    row = page.locator(f'{ROWS}[data-type="relay-status-internal"]').first
    expect(row).to_contain_text("Relay ws://127.0.0.1:9/ connected, round trip 3 ms")


def visible_types(page: Any) -> list[str]:
    return page.eval_on_selector_all(ROWS, "els => els.filter(e => !e.hidden).map(e => e.dataset.type)")


def test_filter_by_several_types_and_text_pause_download_clear(
    open_tab: Any, igloo: IglooProcess, tmp_path: Any
) -> None:
    tab = open_tab()
    page = tab.page
    tab.wait_live()
    seqs = [igloo.publish_event("info", "plain info"), igloo.publish_event("warn", "needle warning"),
            igloo.publish_event("sign", "Signature request sent", {"note": "haystack needle"}),
            igloo.publish_event("error", "an error")]
    tab.wait_row(seqs[-1])
    total = page.locator(ROWS).count()

    # Several types at once: the menu lists the documented types before any arrives.
    page.click("[data-log-types-summary]")
    for kind in ("relay-status-internal", "peer-ping-internal", "ecdh"):
        expect(page.locator(f'[data-log-type][value="{kind}"]')).to_have_count(1)
    page.check('[data-log-type][value="warn"]')
    page.check('[data-log-type][value="sign"]')
    expect(page.locator("[data-log-types-summary]")).to_have_text("Types: warn, sign")
    assert set(visible_types(page)) == {"warn", "sign"}
    shown = len(visible_types(page))
    expect(page.locator("[data-log-count]")).to_have_text(f"{shown} of {total} events")
    page.click("#log-title")  # a click elsewhere closes the menu
    expect(page.locator("[data-log-types]")).not_to_have_attribute("open", "")

    # And by text (the message or the data): only the two "needle" rows of those types.
    page.fill("[data-log-search]", "NEEDLE")
    expect(page.locator("[data-log-count]")).to_have_text(f"2 of {total} events")
    assert sorted(visible_types(page)) == ["sign", "warn"]

    # Pause: new events wait (and are counted) until Resume, then arrive in order.
    page.click("[data-log-pause]")
    expect(page.locator("[data-log-pause]")).to_have_attribute("aria-pressed", "true")
    held = [igloo.publish_event("warn", "needle while paused"), igloo.publish_event("info", "another")]
    expect(page.locator("[data-log-paused]")).to_have_text("Paused · 2 new")
    expect(page.locator(f'{ROWS}[data-seq="{held[0]}"]')).to_have_count(0)
    page.click("[data-log-pause]")
    expect(page.locator("[data-log-paused]")).to_be_hidden()
    tab.wait_row(held[1])
    assert tab.seqs()[:2] == [held[1], held[0]]
    expect(page.locator("[data-log-count]")).to_have_text(f"3 of {total + 2} events")

    # Download: the visible rows, oldest first, one JSON frame per line.
    with page.expect_download() as info:
        page.click("[data-log-download]")
    download = info.value
    name = download.suggested_filename
    assert name.startswith("igloo-events-") and name.endswith(".jsonl")
    path = tmp_path / "events.jsonl"
    download.save_as(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [f["seq"] for f in lines] == [seqs[1], seqs[2], held[0]]
    assert lines[1]["data"] == {"note": "haystack needle"} and lines[0]["type"] == "warn"

    page.fill("[data-log-search]", "")
    page.click("[data-log-types-summary]")
    page.click("[data-log-types-clear]")
    expect(page.locator("[data-log-types-summary]")).to_have_text("All types")
    expect(page.locator("[data-log-count]")).to_have_text(f"{total + 2} events")
    page.click("[data-log-clear]")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("[data-log-count]")).to_have_text("0 events")
    expect(page.locator("[data-log-empty]")).to_be_visible()
    seq = igloo.publish_event()
    tab.wait_row(seq)
    expect(page.locator("[data-log-count]")).to_have_text("1 event")


def test_backoff_schedule_with_default_timing(open_tab: Any) -> None:
    tab = open_tab()
    tab.wait_live()
    # 1 s doubling to a 30 s cap; jitter keeps each delay within [80 %, 100 %] of its step.
    ranges = tab.js(
        "[1,2,3,4,5,6,7,9].map(n => { let lo = Infinity, hi = 0;"
        " for (let i = 0; i < 300; i++) { const d = IglooEvents.backoffDelay(n); lo = Math.min(lo, d);"
        " hi = Math.max(hi, d); } return [lo, hi]; })"
    )
    for n, (lo, hi) in zip([1, 2, 3, 4, 5, 6, 7, 9], ranges, strict=True):
        step = min(30_000, 1000 * 2 ** (n - 1))
        assert 0.8 * step - 1 <= lo < hi <= step, (n, lo, hi)


@pytest.mark.parametrize("width,height", [(390, 844), (1366, 900)])
def test_layout_phone_and_desktop(open_tab: Any, igloo: IglooProcess, width: int, height: int) -> None:
    tab = open_tab(viewport={"width": width, "height": height})
    page = tab.page
    tab.wait_live()
    tab.wait_row(igloo.publish_event())
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "horizontal scrolling"
    signer = page.locator("#signer").bounding_box()
    relays = page.locator("#relays").bounding_box()
    peers = page.locator("#peers").bounding_box()
    log = page.locator("#event-log").bounding_box()
    assert signer and relays and peers and log
    if width < 600:
        # One column: cards stacked, full width.
        assert abs(signer["x"] - peers["x"]) < 1 and abs(peers["x"] - log["x"]) < 1
        assert signer["y"] < relays["y"] < peers["y"] < log["y"]
        assert signer["width"] > width - 40
    else:
        assert relays["x"] > signer["x"] + signer["width"] - 1, "relays sit beside the signer card"
        assert peers["y"] > signer["y"] + signer["height"] - 1
        assert log["y"] > peers["y"] + peers["height"] - 1
    page.screenshot(path=f"/tmp/igloo-dashboard-{width}.png", full_page=True)
