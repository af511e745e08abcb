"""Every page renders in every state of a server, under Jinja's StrictUndefined (a template naming a
variable or include that is not there fails here instead of rendering an empty string).

States: no account; logged in with no node; a node manager idle, running the demo, running stored
credentials (with approval mode), running credentials from the environment. Each test records which
templates the pages loaded, and the last test checks that together they cover templates/.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from node import NodeManager, NodeOptions
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from server import TEMPLATES_DIR
from store.credentials import CredentialStore
from store.policies import SqlitePolicyStore
from tests.node.fakenet import FakeNetwork
from tests.server.conftest import Igloo
from tests.server.test_auth import xsrf_pair

DASHBOARD_CARDS = {"_relays.html", "_peers.html", "_activity.html"}
NO_NODE_TEMPLATES = {"base.html", "_macros.html", "onboarding.html", "login.html", "dashboard.html",
                     "_node_actions.html", "_approvals.html", "configure.html", "error.html",
                     *DASHBOARD_CARDS}
MANAGER_TEMPLATES = {"base.html", "_macros.html", "dashboard.html", "_node_actions.html", "_approvals.html",
                     "configure.html", *DASHBOARD_CARDS}


class RecordingLoader(jinja2.BaseLoader):
    """The app's loader, noting every template name it is asked for (pages, layouts, includes)."""

    def __init__(self, inner: jinja2.BaseLoader) -> None:
        self.inner = inner
        self.loaded: set[str] = set()

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        self.loaded.add(template)
        return self.inner.get_source(environment, template)


@pytest.fixture
def loaded(igloo: Igloo) -> Iterator[set[str]]:
    """The names of the templates this test's pages loaded."""
    env: jinja2.Environment = igloo.app.settings["templates"]
    assert env.loader is not None
    recorder = RecordingLoader(env.loader)
    env.loader = recorder
    env.cache = None  # every render goes through the loader
    yield recorder.loaded


async def page(igloo: Igloo, path: str, cookie: str | None = None, status: int = 200) -> str:
    resp = await igloo.fetch(path, headers={"Cookie": cookie} if cookie else {})
    assert resp.code == status, (path, resp.code, resp.body[:300])
    return resp.body.decode()


def text_of(html: str) -> str:
    """The page's text with tags removed and white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_templates_are_strict(igloo: Igloo) -> None:
    env: jinja2.Environment = igloo.app.settings["templates"]
    assert env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ status.nodeActiv }}").render(status={"nodeActive": True})
    with pytest.raises(jinja2.TemplateNotFound):
        env.from_string('{% include "_policies.html" %}').render()


async def test_pages_without_a_node(igloo: Igloo, loaded: set[str]) -> None:
    # No account yet: everything leads to onboarding.
    assert (await igloo.fetch("/login")).headers["Location"] == "/onboarding"
    onboarding = await page(igloo, "/onboarding")
    assert 'name="admin_secret"' in onboarding and 'name="username" type="text" value=""' in onboarding
    await page(igloo, "/dashboard", status=302)

    igloo.add_user()
    login = await page(igloo, "/login?next=/configure")
    assert 'value="/configure"' in login and "Sign in" in login
    token, xsrf_cookie = xsrf_pair((await igloo.fetch("/login")).headers)
    wrong = await igloo.fetch("/login", method="POST", headers={"Cookie": xsrf_cookie},
                              body=f"_xsrf={token}&username=alice&password=wrong&next=/dashboard")
    assert wrong.code == 401 and b"Invalid credentials" in wrong.body and b'value="alice"' in wrong.body

    cookie, _ = await igloo.login()
    dashboard = await page(igloo, "/dashboard", cookie)
    assert "No share configured" in text_of(dashboard) and "Add credentials" in dashboard
    assert 'data-relay="ws://127.0.0.1:8002/"' in dashboard  # the configured URL, no state known
    assert 'data-demo-start' not in dashboard and 'data-sign-test' not in dashboard
    assert "(per peer and hour) limits abuse by a stolen or runaway device; it does not prevent the leak" \
        in text_of(dashboard)
    assert 'id="approvals"' not in dashboard
    assert re.search(r'data-since="\d+"', dashboard)
    configure = await page(igloo, "/configure", cookie)
    assert "No credentials yet." in configure
    missing = await page(igloo, "/no-such-page", cookie, status=404)
    assert "Not found" in missing and "404" in missing
    assert loaded >= NO_NODE_TEMPLATES


@pytest.fixture
def manager(igloo: Igloo, io_loop: Any) -> Iterator[NodeManager]:
    """A node manager on a fake relay network, in approval mode, plugged into the running app."""
    node = NodeManager(
        emit=igloo.hub.publish,
        options=NodeOptions(sign_timeout=1.0, ping_interval=3600, approval_mode=True),
        default_relays=["fake://relay"],
        credential_store=CredentialStore(igloo.db, secrets.token_bytes(32)),
        policy_store=SqlitePolicyStore(igloo.db),
        pool_factory=FakeNetwork().factory,
    )
    igloo.app.settings["node"] = node
    yield node
    io_loop.run_sync(node.stop)


async def test_the_dashboard_offers_admin_actions_to_administrators_only(
    igloo: Igloo, manager: NodeManager
) -> None:
    """A user would get 403 from POST /api/demo/start and /configure: neither is offered to them."""
    from tests.server.callers import make_callers

    callers = await make_callers(igloo)
    admin = await page(igloo, "/dashboard", callers.admin.cookie)
    user = await page(igloo, "/dashboard", callers.user.cookie)
    for html in (admin, user):
        assert "No share configured" in text_of(html)
    assert "data-demo-start" in admin and 'href="/configure" data-add-credentials' in admin
    assert "data-demo-start" not in user and 'href="/configure"' not in user
    demo_start = await igloo.fetch("/api/demo/start", method="POST", body="{}",
                                   headers={**callers.user.header(), "Content-Type": "application/json"})
    assert demo_start.code == 403  # what the hidden button would have met

    await manager.start_demo("fake://relay")
    admin = await page(igloo, "/dashboard", callers.admin.cookie)
    user = await page(igloo, "/dashboard", callers.user.cookie)
    assert "Demo group:" in admin and 'href="/configure"' in admin
    assert "Demo group:" in user and 'href="/configure"' not in user and "saved by an administrator" in user
    assert "data-sign-test" in user  # signing is for users too


async def test_pages_with_a_node_idle_demo_and_stored_credentials(
    igloo: Igloo, manager: NodeManager, loaded: set[str]
) -> None:
    igloo.add_user()
    cookie, _ = await igloo.login()

    idle = await page(igloo, "/dashboard", cookie)
    assert "No share configured" in text_of(idle) and "data-demo-start" in idle
    assert 'data-relay="fake://relay" data-state="idle"' in idle
    assert "data-sign-test" not in idle and 'class="badge">Demo' not in idle
    assert "No credentials yet." in await page(igloo, "/configure", cookie)

    demo = await manager.start_demo("fake://relay")
    running = await page(igloo, "/dashboard", cookie)
    assert 'class="badge">Demo' in running and "Demo group:" in running
    assert "Share #1" in running and "<b data-threshold>2/3</b>" in running
    assert f"data-group-pubkey>{demo.group_pubkey}<" in running and "data-group-npub>npub1" in running
    assert "data-sign-test" in running and "data-demo-start" not in running
    assert "Signer running" in running and "Add credentials" not in running
    assert "No credentials yet." in await page(igloo, "/configure", cookie)  # the demo's do not count

    group, shares = generate_dealer_pkg_gen(2, 3)
    form_page = await igloo.fetch("/configure", headers={"Cookie": cookie})
    token, xsrf_cookie = xsrf_pair(form_page.headers)
    cookies = {"Cookie": f"{cookie}; {xsrf_cookie}"}
    bad = await igloo.fetch("/configure", method="POST", headers=cookies,
                            body=f"_xsrf={token}&group_cred={encode_group(group)}&share_cred=bfshare1x&relays=")
    assert bad.code == 400 and b"SHARE_CRED" in bad.body and b'class="alert alert-error"' in bad.body
    saved = await igloo.fetch("/configure", method="POST", headers=cookies, body=(
        f"_xsrf={token}&group_cred={encode_group(group)}&share_cred={encode_share(shares[1])}&relays="))
    assert saved.code == 200 and b"Credentials saved (encrypted)" in saved.body
    assert b"Credentials are configured." in saved.body

    stored = await page(igloo, "/dashboard", cookie)
    assert 'class="badge">Demo' not in stored and "Share #2" in stored
    assert 'id="approvals"' in stored and "data-approval-count>0<" in stored
    assert "every request waits for your approval" in stored
    assert "per 60 min" in text_of(stored)  # SIGN_BUDGET_WINDOW's default, as the node reports it
    assert 'data-relay="fake://relay" data-state="connected"' in stored
    assert loaded >= MANAGER_TEMPLATES


async def test_configure_names_credentials_from_the_environment(igloo: Igloo, loaded: set[str]) -> None:
    group, shares = generate_dealer_pkg_gen(2, 3)
    node = NodeManager(emit=igloo.hub.publish, options=NodeOptions(ping_interval=3600),
                       default_relays=["fake://relay"], env_group=encode_group(group),
                       env_share=encode_share(shares[0]), pool_factory=FakeNetwork().factory)
    igloo.app.settings["node"] = node
    try:
        await node.boot()
        igloo.add_user()
        cookie, _ = await igloo.login()
        configure = await page(igloo, "/configure", cookie)
        assert "Credentials are configured in the environment." in text_of(configure)
        dashboard = await page(igloo, "/dashboard", cookie)
        assert "Share #1" in dashboard and 'id="approvals"' not in dashboard
        assert "data-demo-start" not in dashboard
    finally:
        await node.stop()
    assert loaded >= MANAGER_TEMPLATES


# The NIP-46 pages need a running bunker; tests/nip46/test_api.py renders them (same StrictUndefined env).
NIP46_TEMPLATES = {"nip46.html", "nip46_connect.html"}
# The administration pages and the API docs: tests/server/test_admin_pages.py renders each of them.
ADMIN_TEMPLATES = {"users.html", "apikeys.html", "account.html", "recover.html", "keyset.html",
                   "api_docs.html"}


def test_the_state_tests_render_every_template() -> None:
    on_disk = {path.name for path in Path(TEMPLATES_DIR).glob("*.html")}
    assert NO_NODE_TEMPLATES | MANAGER_TEMPLATES | NIP46_TEMPLATES | ADMIN_TEMPLATES == on_disk
