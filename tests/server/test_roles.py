"""Role checks on every route, generated from the route table (``handlers/routes.py``): a route added later is
tested without anyone remembering to.

For each route and method, ``handlers.roles.required_level`` says who may call it. Against a running signer
(stored credentials on a fake relay network) and a running NIP-46 bunker on a loopback relay:

- an administrator's route called by a user (session header, or browser cookie with its XSRF token for the
  pages), a full API key or a read-only key is a 403 with a JSON error (an HTML page for pages), and the
  database and the signer are exactly as before; the same request from an administrator is not refused;
- a user's route called with a read-only key is a 403 naming the key as read-only, and a user may call it;
- a read route answers every signed-in caller, a public route anyone.

Requests carry the body the OpenAPI document gives as the example, so a missing check would have let a
meaningful request through.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from handlers import routes
from handlers.base import AuthMixin
from handlers.docs import document
from handlers.openapi import implemented_methods, path_template
from handlers.roles import ADMIN, ADMIN_REQUIRED, PUBLIC, READ, READ_ONLY_KEY, USER, required_level
from node import NodeManager, NodeOptions
from node.crypto.credentials import encode_group, encode_share
from node.crypto.keygen import generate_dealer_pkg_gen
from node.nip46.bunker import Bunker
from store.credentials import CredentialStore
from store.nip46 import Nip46Store
from store.policies import SqlitePolicyStore
from tests.nip46.conftest import Clock, KeySigner, Recorder, make_bunker
from tests.node.fakenet import FakeNetwork
from tests.server.callers import Callers, call, json_of, make_callers
from tests.server.conftest import Igloo
from tests.server.test_auth import xsrf_pair
from tests.transport.conftest import LocalServer, relay_app

pytestmark = pytest.mark.timeout(90)

SAMPLE_VALUES = ("PEER", "nip44", "encrypt", "0" * 64, "abc-123", "peers")


def route_methods() -> list[tuple[str, type[Any], str]]:
    """(pattern, handler, METHOD) for every route and method the table serves (the relay at / aside)."""
    found = []
    for route in routes.ROUTES:
        pattern, handler = route[0], route[1]
        if not issubclass(handler, AuthMixin):
            assert pattern == r"/", f"{pattern} has no role checks: its handler is not an AuthMixin"
            continue
        found.extend((pattern, handler, m.upper()) for m in implemented_methods(handler))
    return found


def concrete_path(pattern: str, handler: type[Any], peer: str) -> str:
    """A path the pattern matches, with the running group's peer where a pubkey is asked for."""
    template, params = path_template(pattern, getattr(handler, "path_params", ()))
    path = template
    for param in params:
        regex = re.compile(param["schema"]["pattern"])
        value = next(v for v in (peer if v == "PEER" else v for v in SAMPLE_VALUES) if regex.fullmatch(v))
        path = path.replace("{" + param["name"] + "}", value, 1)
    assert re.fullmatch(pattern, path), (pattern, path)
    return path


def example_body(doc: dict[str, Any], path: str, handler: type[Any], method: str) -> Any:
    """The documented example request body of this operation (None when it has none)."""
    template, _ = path_template(path_pattern_of(handler), getattr(handler, "path_params", ()))
    operation = doc["paths"].get(template, {}).get(method.lower(), {})
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return media.get("example")


def refused(resp: Any) -> bool:
    """True when authentication or the role check refused the request (a handler's own 401 or 403, such as
    "Igloo never returns secrets", is an answer, not a refusal of the caller)."""
    body = resp.body.decode(errors="replace")
    if resp.code == 401:
        return "Authentication required" in body
    return resp.code == 403 and any(m in body for m in (ADMIN_REQUIRED, READ_ONLY_KEY, "XSRF"))


def path_pattern_of(handler: type[Any]) -> str:
    return next(r[0] for r in routes.ROUTES if r[1] is handler)


def snapshot(igloo: Igloo, manager: NodeManager, bunker: Bunker) -> Any:
    """Everything a request could change: every table but the event log (the node writes to it on its own
    schedule), and the signer's and bunker's state in memory."""
    tables = [r[0] for r in igloo.db.query_all("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = {
        t: sorted((tuple(r) for r in igloo.db.query_all(f"SELECT * FROM {t}")), key=repr)
        for t in sorted(tables)
        if t not in ("events", "sqlite_sequence")
    }
    service = manager.service
    memory = (
        manager.source,
        manager.relays(),
        id(service),
        service.policies.summary(service.peers[0]) if service else None,
        bunker.pubkey,
        tuple(bunker.bunker_relays()),
        len(bunker.pending()),
    )
    return rows, memory


@pytest.fixture
def signer_app(igloo: Igloo, io_loop: Any) -> Iterator[tuple[NodeManager, Bunker]]:
    """A signer on stored credentials (fake relay network) and a bunker on a loopback relay, in the app."""
    manager = NodeManager(
        emit=igloo.hub.publish,
        options=NodeOptions(sign_timeout=0.5, ping_interval=3600, approval_mode=True),
        default_relays=["fake://relay"],
        credential_store=CredentialStore(igloo.db, secrets.token_bytes(32)),
        policy_store=SqlitePolicyStore(igloo.db),
        pool_factory=FakeNetwork().factory,
    )
    group, shares = generate_dealer_pkg_gen(2, 3)
    io_loop.run_sync(lambda: manager.apply_credentials(encode_group(group), encode_share(shares[0])))
    relay = LocalServer(relay_app).start()
    key_signer = KeySigner()
    key_signer.relays = [relay.url]
    bunker = make_bunker(key_signer, Nip46Store(igloo.db, secrets.token_bytes(32)), Recorder(), Clock())
    io_loop.run_sync(bunker.start, timeout=10)
    igloo.app.settings["node"] = manager
    igloo.app.settings["bunker"] = bunker
    yield manager, bunker
    io_loop.run_sync(bunker.stop, timeout=10)
    io_loop.run_sync(manager.stop, timeout=10)
    io_loop.run_sync(relay.stop, timeout=5)


def test_every_route_has_a_level_and_pages_name_theirs() -> None:
    """Each route and method resolves to a known level; the administrator's pages say so themselves."""
    levels = {(p, m): required_level(h, m) for p, h, m in route_methods()}
    assert set(levels.values()) <= {PUBLIC, READ, USER, ADMIN}
    for page in ("/users", "/apikeys", "/recover", "/keyset", "/configure"):
        assert levels[(page, "GET")] == ADMIN, page
    assert levels[("/api/sign", "POST")] == USER and levels[("/api/peers", "GET")] == READ
    assert levels[("/api/nip46/bunker", "POST")] == ADMIN and levels[("/api/admin/api-keys", "POST")] == ADMIN


async def test_roles_are_enforced_on_every_route(
    igloo: Igloo, signer_app: tuple[NodeManager, Bunker]
) -> None:
    manager, bunker = signer_app
    callers: Callers = await make_callers(igloo)
    assert manager.service is not None
    peer = manager.service.peers[0]
    doc = document()
    # Warm up: each key's first use records it; later uses within a minute do not write.
    for key in (callers.full_key, callers.read_key):
        assert (await call(igloo, "GET", "/api/status", {"X-API-Key": key})).code == 200

    checked: dict[str, int] = {PUBLIC: 0, READ: 0, USER: 0, ADMIN: 0}
    admin_controls: list[tuple[str, str, Any]] = []
    for pattern, handler, method in route_methods():
        level = required_level(handler, method)
        path = concrete_path(pattern, handler, peer)
        body = example_body(doc, path, handler, method)
        api = path.startswith("/api/") and path != "/api/docs"
        where = f"{method} {path}"
        checked[level] += 1
        if level == ADMIN:
            before = snapshot(igloo, manager, bunker)
            strangers = [
                callers.user.header(),
                {"X-API-Key": callers.full_key},
                {"X-API-Key": callers.read_key},
            ]
            if not api:
                strangers = [callers.user.browser()]
            for headers in strangers:
                resp = await call(igloo, method, path, headers, body if api else None)
                assert resp.code == 403, (where, headers, resp.code, resp.body[:200])
                if api:
                    error = json_of(resp)["error"]
                    assert error in (ADMIN_REQUIRED, READ_ONLY_KEY), (where, error)
                else:
                    assert b"Administrator role required" in resp.body, where
            assert snapshot(igloo, manager, bunker) == before, f"{where} changed something for a non-admin"
            admin_controls.append((method, path, body if api else None))
        elif level == USER:
            before = snapshot(igloo, manager, bunker)
            resp = await call(igloo, method, path, {"X-API-Key": callers.read_key}, body if api else None)
            assert resp.code == 403, (where, resp.code)
            if api or method == "GET":  # a page's form is refused earlier still: keys bring no XSRF token
                assert (json_of(resp)["error"] if api else resp.body.decode()).count(READ_ONLY_KEY), where
            assert snapshot(igloo, manager, bunker) == before, (
                f"{where} changed something for a read-only key"
            )
            headers = callers.user.header() if api else callers.user.browser()
            resp = await call(igloo, method, path, headers, body if api else None)
            assert not refused(resp), (where, resp.code, resp.body[:200])
        elif level == READ:
            for headers in (callers.user.header(), {"X-API-Key": callers.read_key}):
                resp = await call(igloo, method, path, headers, body)
                assert not refused(resp), (where, resp.code, resp.body[:200])
        else:
            headers = {}
            if method != "GET":  # a form or a script: a browser brings the XSRF token of the page
                token, cookie = xsrf_pair((await igloo.fetch("/login")).headers)
                headers = {"Cookie": cookie, "X-XSRFToken": token}
            resp = await call(igloo, method, path, headers, body)
            assert not refused(resp), (where, resp.code)

    # The same requests from an administrator are not refused: the role was what stopped them.
    for method, path, body in admin_controls:
        api = path.startswith("/api/") and path != "/api/docs"
        headers = callers.admin.header() if api else callers.admin.browser()
        resp = await call(igloo, method, path, headers, body)
        assert not refused(resp), (method, path, resp.code, resp.body[:200])
    assert all(checked[level] for level in (PUBLIC, READ, USER, ADMIN)), checked


async def test_env_api_key_and_admin_secret_bearer_are_administrators(igloo: Igloo) -> None:
    await make_callers(igloo)
    for headers in (Callers.env_key(), Callers.admin_secret()):
        whoami = json_of(await call(igloo, "GET", "/api/admin/whoami", headers))
        assert whoami["admin"] is True and whoami["role"] == "admin"
        assert (await call(igloo, "GET", "/api/admin/users", headers)).code == 200
    # ADMIN_SECRET is accepted as a Bearer token only, as on Igloo Server (not as X-API-Key).
    from tests.server.conftest import ADMIN_SECRET

    assert (await call(igloo, "GET", "/api/admin/users", {"X-API-Key": ADMIN_SECRET})).code == 401


async def test_a_user_may_approve_but_not_always_allow_a_nip46_request(
    igloo: Igloo, signer_app: tuple[NodeManager, Bunker]
) -> None:
    callers = await make_callers(igloo)
    for action, status in (("always_allow", 403), ("always_deny", 403), ("approve", 404), ("deny", 404)):
        resp = await call(
            igloo,
            "POST",
            "/api/nip46/requests",
            callers.user.header(),
            {"id": "no-such-request", "action": action},
        )
        assert resp.code == status, (action, resp.body)
    admin = await call(
        igloo,
        "POST",
        "/api/nip46/requests",
        callers.admin.header(),
        {"id": "no-such-request", "action": "always_allow"},
    )
    assert admin.code == 404


async def test_users_see_no_pairing_link_on_the_nip46_page(
    igloo: Igloo, signer_app: tuple[NodeManager, Bunker]
) -> None:
    callers = await make_callers(igloo)
    secrets_before = igloo.db.query_one("SELECT COUNT(*) FROM nip46_secrets")[0]
    user_page = await igloo.fetch("/nip46", headers={"Cookie": callers.user.cookie})
    assert user_page.code == 200 and b"bunker://" not in user_page.body
    assert b"data-pairing-admin-only" in user_page.body and b'action="/nip46/connect"' not in user_page.body
    assert igloo.db.query_one("SELECT COUNT(*) FROM nip46_secrets")[0] == secrets_before  # no link was made
    admin_page = await igloo.fetch("/nip46", headers={"Cookie": callers.admin.cookie})
    assert b"bunker://" in admin_page.body and b'action="/nip46/connect"' in admin_page.body
