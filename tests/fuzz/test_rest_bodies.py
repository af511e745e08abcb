"""Fuzz every POST/PUT/DELETE route's body (and path arguments) through a live Igloo.

Each case is one raw HTTP request with the API key: JSON of any shape, huge, deep or unclosed JSON,
bytes that are not UTF-8, not JSON at all, an empty body, any Content-Type. Igloo must answer with
2xx/4xx/503/504 (pages may redirect), JSON errors on the API, never echo a share or the API key, and
log no unhandled exception; the node must never report an exception escaping one of its tasks.
Three worlds: no node manager, a manager without credentials, a running 2-of-3 node with honest peers.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import tornado.ioloop
import tornado.web
from hypothesis import given
from hypothesis import strategies as st

from handlers import routes
from handlers.base import ApiHandler
from tests.fuzz.conftest import (
    API_KEY,
    JSON_HEADERS,
    ErrorTrap,
    World,
    build_request,
    fuzz_settings,
    live_world,
    raw_http,
    run,
    scales,
)
from tests.fuzz.mutate import mutated_credentials
from tests.fuzz.strategies import content_types, json_values, raw_bodies, text

BODY_KEYS = [
    "username", "password", "message", "event", "peer_pubkey", "pubkey", "content", "groupCredential",
    "shareCredentials", "type", "credential", "GROUP_CRED", "SHARE_CRED", "RELAYS", "target", "allowSend",
    "allowReceive", "action", "approve", "label", "scope", "apiKeyId", "reason", "userId", "role",
    "currentPassword", "newPassword", "group", "share", "name", "keys",
]
_GROUP = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class Endpoint:
    """One route and method that takes a body."""

    pattern: str
    method: str
    api: bool

    @property
    def groups(self) -> list[str]:
        return _GROUP.findall(self.pattern)

    def path(self, args: list[str]) -> str:
        parts = iter(args)
        return _GROUP.sub(lambda _: next(parts), self.pattern)


def body_endpoints() -> list[Endpoint]:
    """Every route (from handlers.routes) whose handler implements POST, PUT, DELETE or PATCH."""
    out = []
    for spec in routes.ROUTES:
        pattern, handler = spec[0], spec[1]
        for method in ("post", "put", "delete", "patch"):
            if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method):
                out.append(Endpoint(pattern, method.upper(), issubclass(handler, ApiHandler)))
    return out


ENDPOINTS = body_endpoints()


def test_every_named_endpoint_is_enumerated() -> None:
    """The route walk finds the endpoints the API documents (a missed route would go unfuzzed)."""
    found = {(e.pattern, e.method) for e in ENDPOINTS}
    for wanted in [
        ("/api/auth/login", "POST"), ("/api/auth/logout", "POST"), ("/api/sign", "POST"),
        ("/api/(nip44|nip04)/(encrypt|decrypt)", "POST"), ("/api/recover", "POST"),
        ("/api/recover/validate", "POST"), ("/api/env", "POST"), ("/api/peers/ping", "POST"),
        ("/api/peers/([^/]+)/policy", "PUT"), ("/api/peers/([^/]+)/policy", "DELETE"),
        ("/api/approvals/([A-Za-z0-9-]{1,64})", "POST"), ("/api/demo/start", "POST"),
        ("/login", "POST"), ("/logout", "POST"), ("/onboarding", "POST"), ("/configure", "POST"),
    ]:
        assert wanted in found, wanted


def interesting_values(world: World) -> st.SearchStrategy[Any]:
    """Values that get past the first checks: the world's own credentials, pubkeys, ids, events."""
    members = world.member_pubkeys
    return st.one_of(
        json_values(),
        st.sampled_from([
            world.group_cred, world.share_creds[1], world.share_creds[2], world.share_creds[1:],
            world.share_creds[:1], "all", "approve", "deny", "group", "share", True, False,
            ["ws://127.0.0.1:1/", "wss://relay.example"], "ws://a,wss://b", "fake://relay",
            {"kind": 1, "created_at": 1_700_000_000, "tags": [], "content": "hi"},
            {"kind": 1, "created_at": 1_700_000_000, "tags": [["p", "x"]], "content": "\ud800"},
            "nsec1" + "q" * 58,
        ]),
        st.sampled_from(members).map(lambda pk: pk),
        st.sampled_from(members).map(lambda pk: "02" + pk.upper()),
        st.builds(lambda: secrets.token_hex(32)),
        mutated_credentials(world.group_cred, world.share_creds[1]),
        st.lists(mutated_credentials(world.group_cred, world.share_creds[1]), max_size=3),
    )


def structured_bodies(world: World) -> st.SearchStrategy[Any]:
    """Objects with the keys the endpoints read (plus random ones) and hostile or plausible values."""
    return st.dictionaries(st.one_of(st.sampled_from(BODY_KEYS), text), interesting_values(world), max_size=5)


def path_args(world: World, group: str) -> st.SearchStrategy[str]:
    """Values for one path parameter: matching the route's regex, a member pubkey, or anything."""
    members = world.member_pubkeys
    return st.one_of(
        st.from_regex(group, fullmatch=True).map(lambda s: quote(s, safe="")),
        st.sampled_from([*members, members[0].upper(), "02" + members[1], "%ff", "%c3%28", "%00", "..",
                         "%2F", "%uD800", "a" * 300]),
        text.map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
    )


@pytest.fixture(params=["none", "idle", "running"])
def world(request: pytest.FixtureRequest, io_loop: tornado.ioloop.IOLoop, tmp_path: Path) -> Iterator[World]:
    """A live app (see module doc) with its node, if any, started."""
    yield from live_world(request.param, io_loop, tmp_path)


def check_response(world: World, endpoint: Endpoint, path: str, status: int, body: bytes) -> None:
    """Allowed statuses, JSON errors on the API, nothing secret echoed."""
    allowed = 200 <= status < 300 or 400 <= status < 500 or status in (503, 504)
    allowed = allowed or (not endpoint.api and 300 <= status < 400)
    assert allowed, (status, body[:300])
    routed = re.fullmatch(endpoint.pattern, path) is not None  # else a 404 from outside the API
    if endpoint.api and routed and status >= 400:
        assert isinstance(json.loads(body).get("error"), str), body[:300]
    assert API_KEY.encode() not in body
    for share in world.share_creds:
        assert share.encode() not in body


@pytest.mark.parametrize("examples", scales(40))
def test_bodies_never_break_the_api(
    world: World, http_server: Any, http_server_port: tuple[Any, int], io_loop: tornado.ioloop.IOLoop,
    errors: ErrorTrap, examples: int,
) -> None:
    """Random bodies to random endpoints: never a 500, never an unhandled exception (see module doc)."""
    port = http_server_port[1]

    @fuzz_settings(examples)
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
        args = [data.draw(path_args(world, g), label="path arg") for g in endpoint.groups]
        body = data.draw(raw_bodies(structured_bodies(world)), label="body")
        headers = [("X-API-Key", API_KEY.encode())]
        content_type = data.draw(content_types, label="content type")
        if content_type is not None:
            headers.append(("Content-Type", content_type.encode("utf-8")))
        path = endpoint.path(args)
        request = build_request(endpoint.method, path, headers, body)
        response = run(io_loop, lambda: raw_http(port, request))
        errors.check()
        check_response(world, endpoint, path, response.status, response.body)
        assert not world.node_errors(), world.node_errors()[:1]

    case()
    status = run(io_loop, lambda: raw_http(port, build_request("GET", "/api/status", [], b"")))
    assert status.status == 200
    if world.kind == "running":
        # the node still signs after everything it was sent
        sign = build_request("POST", "/api/sign", JSON_HEADERS,
                             json.dumps({"message": secrets.token_hex(32)}).encode())
        response = run(io_loop, lambda: raw_http(port, sign))
        assert response.status == 200 and len(json.loads(response.body)["signature"]) == 128
