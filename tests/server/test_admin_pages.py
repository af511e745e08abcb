"""The administration pages as a browser without JavaScript uses them (plain forms with XSRF tokens),
against a real app: Users, API keys, Account, Recover, New keyset, Configure (check, name, clear) and
/api/env/delete. Each page's template renders here under StrictUndefined (test_pages.ADMIN_TEMPLATES)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import unquote, urlencode

import pytest

from node import NodeManager, NodeOptions, TokenBucket, keytools
from store.credentials import CredentialStore
from store.policies import SqlitePolicyStore
from tests.node.fakenet import FakeNetwork
from tests.server.callers import Session, call, json_of, make_callers, session
from tests.server.conftest import PASSWORD, Igloo

pytestmark = pytest.mark.timeout(60)


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def post_form(igloo: Igloo, who: Session, path: str, **fields: str) -> tuple[int, str, Any]:
    """Submit a form as the browser of ``who``: (status, HTML, headers)."""
    body = urlencode({"_xsrf": who.xsrf, **fields})
    resp = await igloo.fetch(path, method="POST", headers={"Cookie": who.cookie}, body=body)
    return resp.code, resp.body.decode(), resp.headers


FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


async def submit(igloo: Igloo, who: Session, path: str, **fields: str) -> tuple[int, str, Any]:
    """Open a page whose form has a single-use token, then submit the form with ``fields``."""
    _, html, _ = await get_page(igloo, who, path)
    token = FORM_TOKEN.search(html)
    assert token is not None, html[:300]
    return await post_form(igloo, who, path, form_token=token.group(1), **fields)


async def get_page(igloo: Igloo, who: Session, path: str) -> tuple[int, str, Any]:
    resp = await igloo.fetch(path, headers={"Cookie": who.cookie})
    return resp.code, resp.body.decode(), resp.headers


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture
def manager(igloo: Igloo, io_loop: Any) -> Iterator[NodeManager]:
    node = NodeManager(
        emit=igloo.hub.publish,
        options=NodeOptions(sign_timeout=0.5, ping_interval=3600),
        default_relays=["fake://relay"],
        credential_store=CredentialStore(igloo.db, secrets.token_bytes(32)),
        policy_store=SqlitePolicyStore(igloo.db),
        pool_factory=FakeNetwork().factory,
    )
    igloo.app.settings["node"] = node
    yield node
    io_loop.run_sync(node.stop)


async def test_users_page_adds_and_deletes_accounts(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    code, html, headers = await get_page(igloo, callers.admin, "/users")
    assert code == 200 and headers["Cache-Control"] == "no-store"
    assert 'data-user="alice" data-role="admin"' in html and 'data-user="bob" data-role="user"' in html
    assert "data-last-admin" in html  # alice has no delete button while she is the only admin
    assert 'data-tab="/users" aria-current="page"' in html and 'data-tab="/configure"' in html

    code, html, _ = await post_form(
        igloo, callers.admin, "/users", username="carol", password="long enough", role="admin"
    )
    assert code == 200 and "Account “carol” created (admin)." in text(html)
    assert 'data-user="carol" data-role="admin"' in html and "data-last-admin" not in html
    code, html, _ = await post_form(
        igloo, callers.admin, "/users", username="carol", password="long enough", role="user"
    )
    assert code == 409 and "Username already taken" in html and 'value="carol"' in html

    bob_id = next(u.id for u in igloo.users.list_users() if u.username == "bob")
    code, html, _ = await post_form(igloo, callers.admin, "/users/delete", user_id=str(bob_id))
    assert code == 400 and "Tick the box" in html and igloo.users.get(bob_id) is not None
    code, html, _ = await post_form(igloo, callers.admin, "/users/delete", user_id=str(bob_id), confirm="yes")
    assert code == 200 and 'data-user="bob"' not in html and igloo.users.get(bob_id) is None
    # bob's browser is signed out: his next page is the login page.
    assert (await igloo.fetch("/dashboard", headers={"Cookie": callers.user.cookie})).code == 302


async def test_a_user_gets_no_admin_tabs_and_no_admin_pages(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    code, html, _ = await get_page(igloo, callers.user, "/dashboard")
    tabs = re.findall(r'data-tab="([^"]+)"', html)
    assert code == 200 and tabs == ["/dashboard", "/nip46", "/api/docs"]
    assert 'href="/account"' in html and 'data-role="admin"' not in html
    for page in ("/users", "/apikeys", "/recover", "/keyset", "/configure"):
        code, html, _ = await get_page(igloo, callers.user, page)
        assert code == 403 and "Administrator role required" in html, page
    code, html, _ = await get_page(igloo, callers.admin, "/dashboard")
    assert re.findall(r'data-tab="([^"]+)"', html) == [
        "/dashboard",
        "/nip46",
        "/apikeys",
        "/users",
        "/recover",
        "/keyset",
        "/configure",
        "/api/docs",
    ]


async def test_api_keys_page_shows_the_token_once_and_revokes(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    code, html, _ = await post_form(igloo, callers.admin, "/apikeys", label="grafana", scope="read")
    token = re.search(r"data-new-token>([0-9a-f]{64})<", html)
    assert code == 200 and token is not None and "shown only this once" in text(html)
    token_text = token.group(1)
    assert (await call(igloo, "GET", "/api/peers", {"X-API-Key": token_text})).code == 503  # works (no node)
    code, html, _ = await get_page(igloo, callers.admin, "/apikeys")
    assert token_text not in html and f'data-key="{token_text[:12]}" data-revoked="false"' in html
    assert 'data-scope="read"' in html and "127.0.0.1" in html  # last use and where from
    key_id = igloo.db.query_one("SELECT id FROM api_keys WHERE prefix = ?", (token_text[:12],))["id"]
    code, html, _ = await post_form(igloo, callers.admin, "/apikeys/revoke", key_id=str(key_id))
    assert code == 400 and "Tick the box" in html
    code, html, _ = await post_form(
        igloo, callers.admin, "/apikeys/revoke", key_id=str(key_id), confirm="yes"
    )
    assert code == 200 and f'data-key="{token_text[:12]}" data-revoked="true"' in html
    assert (await call(igloo, "GET", "/api/peers", {"X-API-Key": token_text})).code == 401


async def test_account_page_changes_your_password(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    other = await session(igloo, "bob")
    code, html, _ = await get_page(igloo, callers.user, "/account")
    assert code == 200 and "data-password-form" in html and "data-my-role>user<" in html
    code, html, _ = await post_form(
        igloo,
        callers.user,
        "/account",
        current_password=PASSWORD,
        new_password="a new long one",
        repeat_password="a new long 1",
    )
    assert code == 400 and "do not match" in html
    code, html, _ = await post_form(
        igloo,
        callers.user,
        "/account",
        current_password="wrong",
        new_password="a new long one",
        repeat_password="a new long one",
    )
    assert code == 400 and "currentPassword: not correct" in html
    code, html, _ = await post_form(
        igloo,
        callers.user,
        "/account",
        current_password=PASSWORD,
        new_password="a new long one",
        repeat_password="a new long one",
    )
    assert code == 200 and "Password changed. 1 other session ended." in text(html)
    assert (await igloo.fetch("/account", headers={"Cookie": other.cookie})).code == 302
    assert (await igloo.fetch("/account", headers={"Cookie": callers.user.cookie})).code == 200


# The per-client limit of RATE_LIMIT_RECOVERY_MAX (3) would refuse first; the server-wide one is checked here
# (the per-client one in tests/server/test_throttling.py).
@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_RECOVERY_MAX": "100"}])
async def test_recover_page_shows_the_key_once_and_is_rate_limited(
    igloo: Igloo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    callers = await make_callers(igloo)
    clock = Clock()
    igloo.app.settings["recovery_limiter"] = TokenBucket(1 / 180, 5, clock=clock)
    keyset = keytools.keygen(2, 3)
    code, html, _ = await get_page(igloo, callers.admin, "/recover")
    assert code == 200 and "data-recover-form" in html
    shares = "\n".join(keyset["shares"][1:])
    seq = igloo.hub.last_seq
    code, html, headers = await submit(
        igloo, callers.admin, "/recover", group=keyset["group"], shares=shares
    )
    nsec = re.search(r"data-nsec>(nsec1[0-9a-z]+)<", html)
    assert code == 200 and nsec is not None and headers["Cache-Control"] == "no-store"
    assert keytools.parse_secret(nsec.group(1)) and 'data-copy="' + nsec.group(1) in html
    assert "This is the whole key." in html
    igloo.hub.make_durable()
    new = [json.loads(e.payload) for e in igloo.hub.ring.since(seq).events]
    assert [(e["type"], e["message"], e["data"]) for e in new] == [
        ("warn", "A recovery happened", {"sharesUsed": 2, "via": "page"})
    ]
    assert nsec.group(1) not in caplog.text and keyset["shares"][1] not in caplog.text

    code, html, _ = await submit(
        igloo, callers.admin, "/recover", group=keyset["group"], shares=keyset["shares"][0]
    )
    assert code == 400 and "nsec1" not in html  # one share is not enough
    # Five recoveries at once (one spent above, one by the failed try), then one every three minutes, shared
    # with POST /api/recover.
    for _ in range(3):
        code, _, _ = await submit(igloo, callers.admin, "/recover", group=keyset["group"], shares=shares)
        assert code == 200
    code, html, headers = await submit(
        igloo, callers.admin, "/recover", group=keyset["group"], shares=shares
    )
    assert code == 429 and "Too many recoveries" in html and int(headers["Retry-After"]) > 0
    api = await call(
        igloo,
        "POST",
        "/api/recover",
        callers.admin.header(),
        {"groupCredential": keyset["group"], "shareCredentials": keyset["shares"][1:]},
    )
    assert api.code == 429
    clock.now += 180
    api = await call(
        igloo,
        "POST",
        "/api/recover",
        callers.admin.header(),
        {"groupCredential": keyset["group"], "shareCredentials": keyset["shares"][1:]},
    )
    assert api.code == 200 and json_of(api)["nsec"] == nsec.group(1)


async def test_new_keyset_page_shows_each_share_once_with_downloads(
    igloo: Igloo, manager: NodeManager
) -> None:
    callers = await make_callers(igloo)
    code, html, _ = await get_page(igloo, callers.admin, "/keyset")
    assert code == 200 and "data-keyset-form" in html
    existing = keytools.keygen(1, 1)  # any valid key: split it again below
    nsec = keytools.recover(existing["group"], existing["shares"])
    seq = igloo.hub.last_seq
    code, html, headers = await submit(
        igloo, callers.admin, "/keyset", threshold="2", total="3", nsec=nsec
    )
    assert code == 200 and headers["Cache-Control"] == "no-store"
    group = unescape(re.search(r"data-keyset-group>([^<]+)<", html).group(1))
    shares = [unescape(s) for s in re.findall(r"data-share>([^<]+)<", html)]
    downloads = re.findall(
        r'download="igloo-share-(\d)\.txt" data-download-share="\d"\s+'
        r'href="data:text/plain;charset=utf-8,([^"]+)"',
        html,
    )
    assert len(shares) == 3 and [d[0] for d in downloads] == ["1", "2", "3"]
    assert [unquote(unescape(d[1])).strip() for d in downloads] == shares
    assert keytools.recover(group, shares[:2]) == nsec and keytools.recover(group, shares[1:]) == nsec
    assert existing["npub"] in html and "Moving shares to the other devices" in html
    igloo.hub.make_durable()
    events = [json.loads(e.payload) for e in igloo.hub.ring.since(seq).events]
    assert all(s not in json.dumps(events) for s in shares) and nsec not in json.dumps(events)
    assert code == 200 and len(re.findall(r'data-use-share="\d"', html)) == 3

    # "Use share 2 for this signer": the form posts it to Configure, with a name for the card.
    code, html, _ = await post_form(
        igloo, callers.admin, "/configure", group_cred=group, share_cred=shares[1], keyset_name="Personal key"
    )
    assert code == 200 and "Credentials saved (encrypted)" in html
    assert shares[1] not in html and manager.status()["shareIdx"] == 2
    code, html, _ = await get_page(igloo, callers.admin, "/dashboard")
    assert "data-share-name>Personal key<" in html

    for bad in (
        {"threshold": "4", "total": "3"},
        {"threshold": "x", "total": "3"},
        {"threshold": "2", "total": "3", "nsec": "nsec1bad"},
    ):
        code, html, _ = await submit(igloo, callers.admin, "/keyset", **bad)
        assert code == 400 and "data-share>" not in html, bad


# The per-client recovery limit counts every POST; this test is about the form token.
@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_RECOVERY_MAX": "100"}])
async def test_reloading_a_secret_answer_neither_repeats_the_work_nor_shows_the_secret_again(
    igloo: Igloo, manager: NodeManager
) -> None:
    """A reload of the page a POST rendered sends the same body (same single-use token) again."""
    callers = await make_callers(igloo)
    keyset = keytools.keygen(2, 3)
    _, form, _ = await get_page(igloo, callers.admin, "/recover")
    token = FORM_TOKEN.search(form).group(1)  # type: ignore[union-attr]
    fields = {"group": keyset["group"], "shares": "\n".join(keyset["shares"][1:]), "form_token": token}
    code, html, headers = await post_form(igloo, callers.admin, "/recover", **fields)
    nsec = keytools.recover(keyset["group"], keyset["shares"][1:])
    assert code == 200 and nsec in html and headers["Cache-Control"] == "no-store"
    limiter = igloo.app.settings["recovery_limiter"]
    tokens_before, seq = limiter.tokens, igloo.hub.last_seq
    code, html, headers = await post_form(igloo, callers.admin, "/recover", **fields)  # the reload
    assert code == 409 and nsec not in html and "already sent" in html
    assert headers["Cache-Control"] == "no-store"
    assert igloo.hub.last_seq == seq and limiter.tokens >= tokens_before  # no recovery, no event, none spent
    fresh = FORM_TOKEN.search(html)  # the form is back, with a new token
    assert fresh is not None and fresh.group(1) != token
    again = {**fields, "form_token": fresh.group(1)}
    code, html, _ = await post_form(igloo, callers.admin, "/recover", **again)
    assert code == 200 and nsec in html
    for forged in ("", "x" * 32, token):  # no token, one never issued, one spent: never runs
        code, html, _ = await post_form(igloo, callers.admin, "/recover", **{**fields, "form_token": forged})
        assert code == 409 and nsec not in html

    _, form, _ = await get_page(igloo, callers.admin, "/keyset")
    fields = {"threshold": "2", "total": "3", "form_token": FORM_TOKEN.search(form).group(1)}  # type: ignore
    code, html, headers = await post_form(igloo, callers.admin, "/keyset", **fields)
    shares = re.findall(r"data-share>([^<]+)<", html)
    assert code == 200 and len(shares) == 3 and headers["Cache-Control"] == "no-store"
    seq = igloo.hub.last_seq
    code, html, _ = await post_form(igloo, callers.admin, "/keyset", **fields)  # the reload
    assert code == 409 and "data-share>" not in html and not any(share in html for share in shares)
    assert igloo.hub.last_seq == seq and "data-keyset-form" in html  # no new keyset was made


async def test_configure_checks_names_and_clears(igloo: Igloo, manager: NodeManager) -> None:
    callers = await make_callers(igloo)
    keyset = keytools.keygen(2, 3)
    other = keytools.keygen(2, 3)
    code, html, _ = await get_page(igloo, callers.admin, "/configure")
    assert code == 200 and 'name="share_cred" type="password"' in html and "data-check-button" in html
    assert "data-clear-form" not in html  # nothing to clear yet

    code, html, _ = await post_form(
        igloo, callers.admin, "/configure/check", group_cred=keyset["group"], share_cred=other["shares"][2]
    )
    assert code == 200 and "Group: 2-of-3, public key" in text(html) and keyset["group_pubkey"] in html
    assert "Share: index 3" in text(html) and "This share does not belong to this group." in text(html)
    assert other["shares"][2] not in html and f'value="{keyset["group"]}"' in html
    check = json_of(
        await call(
            igloo,
            "POST",
            "/api/keyset/validate",
            callers.admin.header(),
            {"group": keyset["group"], "share": keyset["shares"][0]},
        )
    )
    assert check["matches"] is True and check["share"] == {
        "valid": True,
        "idx": 1,
        "pubkey": check["share"]["pubkey"],
    }
    assert check["group"]["npub"] == keyset["npub"] and keyset["shares"][0] not in json.dumps(check)

    code, html, _ = await post_form(
        igloo,
        callers.admin,
        "/configure",
        group_cred=keyset["group"],
        share_cred=keyset["shares"][0],
        relays="",
        keyset_name="",
    )
    assert code == 200 and manager.has_credentials() and "data-clear-form" in html
    code, html, _ = await post_form(igloo, callers.admin, "/configure/name", keyset_name="Team key")
    assert code == 200 and "Keyset name saved." in html
    assert json_of(await call(igloo, "GET", "/api/keyset/name", callers.user.header())) == {
        "name": "Team key"
    }
    code, html, _ = await post_form(igloo, callers.admin, "/configure/name", keyset_name="x" * 65)
    assert code == 400 and "at most 64" in html

    code, html, _ = await post_form(igloo, callers.admin, "/configure/clear")
    assert code == 400 and "Tick the box" in html and manager.has_credentials()
    code, html, _ = await post_form(igloo, callers.admin, "/configure/clear", confirm="yes")
    assert code == 200 and "Stored credentials cleared" in html
    assert not manager.has_credentials() and manager.service is None
    assert json_of(await call(igloo, "GET", "/api/keyset/name", callers.admin.header())) == {"name": None}


async def test_env_delete_clears_stored_credentials(igloo: Igloo, manager: NodeManager) -> None:
    callers = await make_callers(igloo)
    keyset = keytools.keygen(2, 3)
    await manager.apply_credentials(keyset["group"], keyset["shares"][0])
    resp = await call(
        igloo,
        "POST",
        "/api/env/delete",
        callers.admin.header(),
        {"keys": ["GROUP_CRED", "SHARE_CRED", "API_KEY"]},
    )
    body = json_of(resp)
    assert resp.code == 200 and body["deletedKeys"] == ["GROUP_CRED", "SHARE_CRED"]
    assert body["rejectedKeys"] == ["API_KEY"] and body["credentialsCleared"] is True
    assert not manager.has_credentials() and manager.service is None
    assert (await call(igloo, "POST", "/api/env/delete", callers.admin.header(), {"keys": []})).code == 400
    refused = await call(igloo, "POST", "/api/env/delete", callers.user.header(), {"keys": ["GROUP_CRED"]})
    assert refused.code == 403


async def test_env_credentials_cannot_be_cleared_here(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    keyset = keytools.keygen(2, 3)
    node = NodeManager(
        emit=igloo.hub.publish,
        options=NodeOptions(ping_interval=3600),
        default_relays=["fake://relay"],
        env_group=keyset["group"],
        env_share=keyset["shares"][0],
        pool_factory=FakeNetwork().factory,
    )
    igloo.app.settings["node"] = node
    try:
        await node.boot()
        resp = await call(igloo, "POST", "/api/env/delete", callers.admin.header(), {"keys": ["SHARE_CRED"]})
        assert resp.code == 409 and "environment" in json_of(resp)["error"]
        code, html, _ = await get_page(igloo, callers.admin, "/configure")
        assert "data-clear-form" not in html and "remove them there" in html
        code, html, _ = await post_form(igloo, callers.admin, "/configure/clear", confirm="yes")
        assert code == 409 and node.service is not None
    finally:
        await node.stop()


async def test_api_docs_page_renders_for_anyone(igloo: Igloo) -> None:
    resp = await igloo.fetch("/api/docs")
    html = resp.body.decode()
    assert resp.code == 200 and 'data-op="POST /api/admin/api-keys"' in html
    assert "data-tabs" not in html  # no tabs for someone not signed in


@pytest.mark.parametrize("overrides", [{"GROUP_NAME": "Env name"}])
async def test_a_stored_keyset_name_wins_over_group_name_from_the_environment(igloo: Igloo) -> None:
    callers = await make_callers(igloo)
    admin = callers.admin.header()
    assert json_of(await call(igloo, "GET", "/api/keyset/name", admin)) == {"name": "Env name"}
    assert json_of(await call(igloo, "PUT", "/api/keyset/name", admin, {"name": " Stored "})) == {
        "name": "Stored"
    }
    assert json_of(await call(igloo, "GET", "/api/keyset/name", callers.user.header())) == {"name": "Stored"}
    assert (await call(igloo, "PUT", "/api/keyset/name", callers.user.header(), {"name": "x"})).code == 403
    assert (await call(igloo, "PUT", "/api/keyset/name", admin, {"name": "a\nb"})).code == 400
    await call(igloo, "PUT", "/api/keyset/name", admin, {"name": None})
    assert json_of(await call(igloo, "GET", "/api/keyset/name", admin)) == {"name": "Env name"}
