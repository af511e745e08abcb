"""The administration pages in real headless Chromium against a real ``python server.py``: the header's
tabs per role, API keys (created, copied, used, revoked), accounts (added, deleted, a password changed while
another tab of the same account is open), a new keyset (shares copied and downloaded, one used for this
signer, its name on the signer card), recovery, Configure checking credentials as they are pasted (and
without JavaScript), clearing credentials, and the API docs."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from node import keytools
from tests.browser.conftest import PASSWORD, USERNAME, IglooProcess

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

OTHER_USER = "bob"


def status_with_key(igloo: IglooProcess, token: str, path: str = "/api/peers") -> int:
    request = urllib.request.Request(igloo.base + path, headers={"X-API-Key": token})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.fixture(scope="module")
def with_user(igloo: IglooProcess) -> IglooProcess:
    """The module's server with a second account, bob, a user (the CLI's default after the first)."""
    igloo.adduser(OTHER_USER, PASSWORD)
    return igloo


@pytest.fixture
def open_page(browser: Any, with_user: IglooProcess) -> Iterator[Callable[..., Any]]:
    """Factory: a signed-in page (``user`` names the account) in its own browser context."""
    contexts: list[Any] = []

    def make(user: str = USERNAME, password: str = PASSWORD, goto: str = "/dashboard", **options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        ctx = browser.new_context(base_url=with_user.base, **options)
        contexts.append(ctx)
        res = ctx.request.post("/api/auth/login", data={"username": user, "password": password})
        assert res.status == 200, res.text()
        page = ctx.new_page()
        if goto:
            page.goto(goto)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def tabs_of(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("[data-tabs] a", "els => els.map(e => e.textContent.trim())"))


def test_tabs_follow_the_role(open_page: Any, with_user: IglooProcess) -> None:
    admin = open_page()
    assert tabs_of(admin) == [
        "Signer",
        "NIP-46",
        "API keys",
        "Users",
        "Recover",
        "New keyset",
        "Configure",
        "API Docs",
    ]
    expect(admin.locator('[data-tab="/dashboard"]')).to_have_attribute("aria-current", "page")
    admin.click('[data-tab="/users"]')
    expect(admin).to_have_url(f"{with_user.base}/users")
    expect(admin.locator('[data-tab="/users"]')).to_have_attribute("aria-current", "page")
    expect(admin.locator(f'[data-user="{OTHER_USER}"]')).to_have_attribute("data-role", "user")

    user = open_page(OTHER_USER)
    assert tabs_of(user) == ["Signer", "NIP-46", "API Docs"]
    user.goto("/users")
    expect(user.locator(".err-code")).to_have_text("403")
    expect(user.locator("h1")).to_contain_text("Administrator role required")

    phone = open_page(goto="/apikeys", viewport={"width": 390, "height": 844})
    expect(phone.locator("[data-tabs]")).to_be_visible()
    # The tabs scroll inside their bar; the page itself never scrolls sideways on a phone.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_api_key_created_copied_used_and_revoked(open_page: Any, with_user: IglooProcess) -> None:
    page = open_page(goto="/apikeys", permissions=["clipboard-read", "clipboard-write"])
    page.fill("#f-label", "uptime monitor")
    page.check('input[name="scope"][value="read"]')
    page.click("[data-create-key] button[type=submit]")
    token_box = page.locator("[data-new-token]")
    expect(token_box).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    token = token_box.inner_text()
    page.click("[data-new-key] button[data-copy]")
    expect(page.locator("[data-new-key] button[data-copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token

    assert status_with_key(with_user, token) == 503  # accepted (no signer yet); read-only reads peers
    assert status_with_key(with_user, token, "/api/admin/users") == 403
    page.goto("/apikeys")
    expect(page.locator("[data-new-token]")).to_have_count(0)  # shown once
    row = page.locator(f'[data-key="{token[:12]}"]')
    expect(row).to_have_attribute("data-revoked", "false")
    expect(row.locator("[data-scope]")).to_have_text("read-only")
    expect(row.locator("[data-last-used]")).to_contain_text("127.0.0.1")
    row.locator('input[name="confirm"]').check()
    row.locator("[data-revoke]").click()
    expect(page.locator(f'[data-key="{token[:12]}"]')).to_have_attribute("data-revoked", "true")
    assert status_with_key(with_user, token) == 401


def test_accounts_added_deleted_and_a_password_changed(open_page: Any, with_user: IglooProcess) -> None:
    admin = open_page(goto="/users")
    admin.fill("#f-username", "carol")
    admin.fill("#f-password", "carol's long passphrase")
    admin.click("[data-add-user] button[type=submit]")
    expect(admin.locator('[data-user="carol"]')).to_have_attribute("data-role", "user")

    carol = open_page("carol", "carol's long passphrase")
    expect(carol.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    row = admin.locator('[data-user="carol"]')
    row.locator('input[name="confirm"]').check()
    row.locator("[data-delete-user]").click()
    expect(admin.locator('[data-user="carol"]')).to_have_count(0)
    # Her open dashboard's stream ends at once (4401), and events.js takes her to the login form.
    expect(carol).to_have_url(re.compile(r"/login"), timeout=10_000)
    carol.goto("/dashboard")
    expect(carol).to_have_url(re.compile(r"/login"))

    # bob changes his password in one tab; his other tab's live stream ends with its session.
    other_tab = open_page(OTHER_USER)
    expect(other_tab.locator("[data-igloo-conn]")).to_have_attribute("data-state", "live", timeout=10_000)
    account = open_page(OTHER_USER, goto="/dashboard")
    account.click("[data-account-link]")
    expect(account).to_have_url(f"{with_user.base}/account")
    account.fill("#f-current_password", PASSWORD)
    account.fill("#f-new_password", "bob's new passphrase")
    account.fill("#f-repeat_password", "bob's new passphrase")
    account.click("[data-password-form] button[type=submit]")
    # Every other session of bob's ends (this module's earlier tests left one more).
    expect(account.locator(".alert-ok")).to_have_text(
        re.compile(r"Password changed\. \d other sessions? ended\.")
    )
    expect(other_tab).to_have_url(re.compile(r"/login"), timeout=10_000)
    assert with_user.api_login(OTHER_USER, PASSWORD).get("success") is False
    assert with_user.api_login(OTHER_USER, "bob's new passphrase").get("success") is True


def test_new_keyset_used_for_this_signer_then_recovered(open_page: Any, with_user: IglooProcess) -> None:
    page = open_page(goto="/keyset", permissions=["clipboard-read", "clipboard-write"])
    page.fill("#f-threshold", "2")
    page.fill("#f-total", "3")
    page.click("[data-keyset-form] button[type=submit]")
    shares = page.locator("[data-share]")
    expect(shares).to_have_count(3)
    group = page.locator("[data-keyset-group]").inner_text()
    share_texts = [shares.nth(i).inner_text() for i in range(3)]
    assert all(s.startswith("bfshare1") for s in share_texts)
    npub = page.locator("[data-keyset-npub]").inner_text()

    page.locator('[data-share-index="2"] button[data-copy]').click()
    assert page.evaluate("navigator.clipboard.readText()") == share_texts[1]
    with page.expect_download() as download_info:
        page.click('[data-download-share="3"]')
    download = download_info.value
    assert download.suggested_filename == "igloo-share-3.txt"
    assert open(download.path()).read().strip() == share_texts[2]

    use = page.locator('[data-use-share="1"]')
    use.locator('input[name="keyset_name"]').fill("Browser key")
    use.locator("button[type=submit]").click()
    expect(page).to_have_url(f"{with_user.base}/configure")
    expect(page.locator(".alert-ok")).to_contain_text("Credentials saved (encrypted)")
    page.click('[data-tab="/dashboard"]')
    expect(page.locator("[data-share-name]")).to_have_text("Browser key")
    expect(page.locator("[data-share-idx]")).to_have_text("1")

    page.click('[data-tab="/recover"]')
    page.fill("#f-group", group)
    page.fill("#f-shares", f"{share_texts[0]}\n{share_texts[2]}")
    page.click("[data-recover-form] button[type=submit]")
    nsec = page.locator("[data-nsec]")
    expect(nsec).to_have_text(re.compile(r"^nsec1"))
    assert keytools.recover(group, share_texts[1:]) == nsec.inner_text()
    expect(page.locator("[data-recovered] .alert-warn")).to_contain_text("This is the whole key.")
    page.click("[data-recovered] button[data-copy]")
    assert page.evaluate("navigator.clipboard.readText()") == nsec.inner_text()
    assert npub.startswith("npub1")
    # The server log never holds the key.
    assert nsec.inner_text() not in with_user.log_tail(10_000)


def test_configure_checks_as_you_paste_and_clears(
    open_page: Any, browser: Any, with_user: IglooProcess
) -> None:
    keyset = keytools.keygen(2, 3)
    stranger = keytools.keygen(2, 3)
    page = open_page(goto="/configure")
    expect(page.locator("#f-share_cred")).to_have_attribute("type", "password")
    page.fill("#f-group_cred", keyset["group"])
    panel = page.locator("[data-keyset-check]")
    expect(panel.locator("[data-check-group]")).to_contain_text(
        f"2-of-3, public key {keyset['group_pubkey']}"
    )
    page.fill("#f-share_cred", stranger["shares"][1])
    expect(panel.locator("[data-check-share]")).to_have_text("Share: index 2")
    expect(panel.locator("[data-check-match]")).to_have_text("This share does not belong to this group.")
    page.fill("#f-share_cred", keyset["shares"][1])
    expect(panel.locator("[data-check-match]")).to_have_text("The share belongs to this group.")
    page.fill("#f-keyset_name", "Team key")
    page.click("[data-configure-form] button.btn-primary")
    expect(page.locator(".alert-ok")).to_contain_text("Credentials saved (encrypted)")
    assert with_user.status()["shareIdx"] == 2

    # Without JavaScript, "Check without saving" shows the same, from the server.
    ctx = browser.new_context(base_url=with_user.base, java_script_enabled=False)
    try:
        assert ctx.request.post("/api/auth/login", data={"username": USERNAME, "password": PASSWORD}).ok
        plain = ctx.new_page()
        plain.goto("/configure")
        plain.fill("#f-group_cred", keyset["group"])
        plain.fill("#f-share_cred", keyset["shares"][0])
        plain.click("[data-check-button]")
        expect(plain).to_have_url(f"{with_user.base}/configure/check")
        expect(plain.locator("[data-check-share]")).to_have_text("Share: index 1")
        expect(plain.locator("[data-check-match]")).to_have_text("The share belongs to this group.")
        expect(plain.locator("#f-share_cred")).to_have_value("")  # the share is not sent back
    finally:
        ctx.close()

    page.goto("/configure")
    page.click("[data-clear-button]")  # the confirmation box is required: nothing happens yet
    expect(page).to_have_url(f"{with_user.base}/configure")
    assert with_user.status()["hasCredentials"] is True
    page.check("[data-clear-confirm]")
    page.click("[data-clear-button]")
    expect(page.locator(".alert-ok")).to_contain_text("Stored credentials cleared")
    assert with_user.status()["hasCredentials"] is False


def test_api_docs_from_the_header(open_page: Any, with_user: IglooProcess) -> None:
    page = open_page()
    page.click('[data-tab="/api/docs"]')
    expect(page).to_have_url(f"{with_user.base}/api/docs")
    expect(page.locator('[data-op="POST /api/admin/api-keys"] [data-access]')).to_have_text("admin")
    expect(page.locator('[data-op="POST /api/sign"] [data-access]')).to_have_text("user")
    page.locator('[data-op="POST /api/admin/users"] summary').first.click()
    expect(page.locator('[data-op="POST /api/admin/users"] pre').first).to_contain_text('"role"')
    page.click("[data-openapi-link]")
    assert json.loads(page.locator("body").inner_text())["openapi"] == "3.1.0"
