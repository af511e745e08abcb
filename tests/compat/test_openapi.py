"""Igloo Server's OpenAPI document (tests/compat/fixtures/igloo-server-openapi.json, copied from its commit
e6f814a) run against a real Igloo: every documented operation is sent, with the document's own example body
where it has one, and the answer must have the documented status code and the documented field names
(the response schema's required fields and its example's keys).

Each operation is in ``CASES`` (run and checked), and any field, status or route Igloo deliberately does not
provide is named there with the reason; ``docs/MIGRATING.md`` lists the same differences (checked below).
Cases that change the signer (credentials, relays) run after the ones that need it ready, and wait for it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.crypto import curve
from node.nostr.event import compute_event_id
from tests.compat.conftest import API_KEY, GROUP_NAME, USER, Igloo, Reply, load_fixture

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SPEC: dict[str, Any] = load_fixture("igloo-server-openapi.json")
MIGRATING = (Path(__file__).resolve().parents[2] / "docs" / "MIGRATING.md").read_text()
NEVER_RETURNED = "credentials are never returned"


@dataclass
class Case:
    """One documented operation as Igloo answers it."""

    method: str
    path: str
    name: str = "documented"
    auth: str = "api-key"
    body: Any = None  # a JSON body; "example" or "example:NAME" takes the document's own
    path_args: dict[str, str] = field(default_factory=dict)
    status: int = 200  # documented status Igloo answers with
    absent: dict[str, str] = field(default_factory=dict)  # documented field → why Igloo leaves it out
    difference: str | None = None  # deliberately answered with a clear error (``status`` is Igloo's)
    pending: str | None = None  # expected to pass once another piece of work is merged
    check: Callable[[Igloo, Reply], None] | None = None
    restarts_node: bool = False
    from_source: str | None = None  # an answer Igloo Server's code gives but its document does not list

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} [{self.name}]"


def operation(case: Case) -> dict[str, Any]:
    return SPEC["paths"][case.path][case.method.lower()]  # type: ignore[no-any-return]


def resolve(node: Any) -> Any:
    """Follow ``$ref`` pointers inside the document."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def documented_fields(case: Case) -> tuple[str, set[str]] | None:
    """``("object" | "array", names)`` of the documented response for the case's status, or None."""
    response = resolve(operation(case)["responses"].get(str(case.status)))
    if response is None and case.from_source:
        return "object", set(resolve({"$ref": "#/components/schemas/ErrorResponse"})["required"])
    if response is None:
        raise AssertionError(f"{case.id}: status {case.status} is not documented")
    content = response.get("content", {}).get("application/json")
    if content is None:
        return None
    schema = resolve(content.get("schema", {}))
    example = content.get("example", schema.get("example"))
    parts = [resolve(p) for p in schema.get("allOf", [])] or [schema]
    if schema.get("type") == "array":
        items = resolve(schema.get("items", {}))
        names = set(items.get("required", []))
        if isinstance(example, list) and example and isinstance(example[0], dict):
            names |= set(example[0])
        return "array", names
    if "oneOf" in schema and example is None:
        return None
    names = {name for part in parts for name in part.get("required", [])}
    if isinstance(example, dict):
        names |= set(example)
    return "object", names


def request_body(igloo: Igloo, case: Case) -> Any:
    """The case's body, the document's example with its placeholders replaced by the group's real values."""
    body = case.body
    if isinstance(body, str) and body.startswith("example"):
        content = operation(case)["requestBody"]["content"]["application/json"]
        body = content["examples"][body.split(":", 1)[1]]["value"] if ":" in body else content["example"]
    return substitute(igloo, body)


def substitute(igloo: Igloo, value: Any) -> Any:
    """Igloo Server's example placeholders → this group's values (nothing outside 127.0.0.1)."""
    keys = igloo.keys
    if isinstance(value, dict):
        return {k: substitute(igloo, v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, str) and v.startswith(("wss://", "ws://")) for v in value):
            return [igloo.target.relay]
        shares = [v for v in value if isinstance(v, str) and v.startswith("bfshare1")]
        if shares and len(shares) == len(value):
            return keys["shares"][: len(value)]
        return [substitute(igloo, v) for v in value]
    if isinstance(value, str):
        if value.startswith("bfgroup1"):
            return keys["group"]
        if value.startswith("bfshare1"):
            return keys["shares"][0]
        replacements = {"your-api-key": API_KEY, "admin": USER[0], "your-password": USER[1]}
        if value in replacements:
            return replacements[value]
        if re.fullmatch(r"0[23][0-9a-f]{64}", value):  # the ping example's made-up peer
            return "02" + igloo.peer_pubkeys()[0]
    return value


# --------------------------------------------------------------------------- checks of particular answers


def relays_are_urls(igloo: Igloo, reply: Reply) -> None:
    assert reply.body["relays"] == [igloo.target.relay]
    details = reply.body["relayDetails"][0]
    assert details["url"] == igloo.target.relay and "state" in details
    assert reply.body["health"]["isConnected"] is True
    assert reply.body["restartInfo"] == {"blockedByCredentials": False}


def signature_verifies(igloo: Igloo, reply: Reply) -> None:
    assert curve.schnorr_verify(bytes.fromhex(igloo.keys["group_pubkey"]), bytes.fromhex(reply.body["id"]),
                                bytes.fromhex(reply.body["signature"]))


def error_code(code: str) -> Callable[[Igloo, Reply], None]:
    def check(_igloo: Igloo, reply: Reply) -> None:
        assert reply.body["code"] == code, reply.body

    return check


def says(*words: str) -> Callable[[Igloo, Reply], None]:
    def check(_igloo: Igloo, reply: Reply) -> None:
        text = str(reply.body)
        assert all(word in text for word in words), reply.body

    return check


def event_template(igloo: Igloo) -> dict[str, Any]:
    return {"pubkey": igloo.keys["group_pubkey"], "kind": 1, "created_at": 1_700_000_000, "content": "hello",
            "tags": [["t", "igloo"]]}


def event_signed(igloo: Igloo, reply: Reply) -> None:
    template = event_template(igloo)
    assert reply.body["id"] == compute_event_id(template["pubkey"], template["created_at"], template["kind"],
                                                template["tags"], template["content"])
    signature_verifies(igloo, reply)


PEER_PUB = curve.xonly(curve.base_mul(secrets.randbelow(2**255) + 1)).hex()  # the other party of the ciphers
PLAINTEXT = "hello from igloo"

STATUS_ABSENT = {"publishMetrics": "Igloo publishes no relay metrics (NODE_PUBLISH_METRICS has no effect)"}
NO_SESSION = {"sessionId": "no session for an API key: Igloo answers Igloo Server's no-session shape",
              "expiresIn": "no session, so nothing expires"}
ENV_ABSENT = {"GROUP_CRED": NEVER_RETURNED, "SHARE_CRED": NEVER_RETURNED}
SHARES_ABSENT = {"shareCredential": NEVER_RETURNED, "groupCredential": NEVER_RETURNED}
NO_SESSION_KEY = "ab" * 32

CASES: list[Case] = [
    # Status and authentication
    Case("GET", "/api/status", absent=STATUS_ABSENT, check=relays_are_urls),
    Case("GET", "/api/auth/status", auth="none"),
    Case("POST", "/api/auth/login", "username and password", auth="none", body="example:basicAuth"),
    Case("POST", "/api/auth/login", "API key", auth="none", body="example:apiKey", absent=NO_SESSION,
         check=says("warning", "api-user")),
    Case("POST", "/api/auth/login", "wrong password", auth="none",
         body={"username": USER[0], "password": "no"}, status=401),
    Case("POST", "/api/auth/logout", auth="own-session"),
    # Peers
    Case("GET", "/api/peers/group"),
    Case("GET", "/api/peers"),
    Case("GET", "/api/peers/self"),
    Case("POST", "/api/peers/ping", "all", body="example:pingAll"),
    Case("POST", "/api/peers/ping", "one", body="example:pingSpecific"),
    # Signing and encryption
    Case("POST", "/api/sign", "message", body={"message": secrets.token_hex(32)}, check=signature_verifies),
    Case("POST", "/api/sign", "event", body="event", check=event_signed),
    Case("POST", "/api/sign", "bad message", body={"message": "zz"}, status=400,
         check=error_code("BAD_REQUEST")),
    Case("POST", "/api/sign", "no content type (curl -d)", body='raw:{"message": 7}', status=400,
         check=error_code("BAD_REQUEST")),
    Case("POST", "/api/sign", "invalid JSON", body="raw:{nope", status=400, check=error_code("INVALID_JSON")),
    Case("POST", "/api/sign", "no credentials", auth="none", body={"message": "00" * 32}, status=401,
         check=error_code("AUTH_REQUIRED"), from_source="src/routes/sign.ts answers 401 AUTH_REQUIRED"),
    Case("POST", "/api/nip44/encrypt", body="nip", check=says("result")),
    Case("POST", "/api/nip44/decrypt", body="nip44-decrypt", check=says("result", PLAINTEXT)),
    Case("POST", "/api/nip04/encrypt", body="nip", check=says("result", "?iv=")),
    Case("POST", "/api/nip04/decrypt", body="nip04-decrypt", check=says("result", PLAINTEXT)),
    Case("POST", "/api/nip44/encrypt", "bad pubkey", body={"peer_pubkey": "zz", "content": "x"}, status=400,
         check=error_code("BAD_REQUEST")),
    # Recovery
    Case("POST", "/api/recover", body="example", check=says("nsec1")),
    Case("POST", "/api/recover/validate", "group", body="example:validateGroup"),
    Case("POST", "/api/recover/validate", "share", body="example:validateShare"),
    # Environment (credentials never come out)
    Case("GET", "/api/env", absent=ENV_ABSENT, check=says(GROUP_NAME)),
    Case("GET", "/api/env/shares", absent=SHARES_ABSENT),
    # NIP-46
    Case("GET", "/api/nip46/sessions"),
    Case("POST", "/api/nip46/sessions", body={"client_pubkey": NO_SESSION_KEY}, status=405,
         difference="sessions come from pairing (bunker:// or nostrconnect://), not from POST",
         check=says("pairing")),
    Case("PUT", "/api/nip46/sessions/{pubkey}/policy", body={"methods": {"sign_event": True}},
         path_args={"pubkey": NO_SESSION_KEY}, status=404),
    Case("PUT", "/api/nip46/sessions/{pubkey}/status", body={"status": "active"},
         path_args={"pubkey": NO_SESSION_KEY}, status=404),
    Case("DELETE", "/api/nip46/sessions/{pubkey}", path_args={"pubkey": NO_SESSION_KEY}, status=404),
    Case("GET", "/api/nip46/history", status=410,
         difference="no history summary: GET /api/nip46/sessions and GET /api/nip46/requests",
         check=says("/api/nip46/requests")),
    # Accounts (database mode on Igloo Server)
    Case("GET", "/api/user/profile", auth="session"),
    Case("GET", "/api/user/credentials", auth="session", status=403, difference=NEVER_RETURNED,
         check=says("never returns")),
    Case("GET", "/api/user/relays", auth="session"),
    Case("GET", "/api/onboarding/status", auth="none"),
    Case("POST", "/api/onboarding/validate-admin", auth="admin-bearer", status=401),  # an account exists
    Case("POST", "/api/onboarding/setup", auth="admin-bearer", body={"username": "eve", "password": "x" * 12},
         status=401),
    # The admin API
    Case("GET", "/api/admin/whoami", auth="admin-bearer"),
    Case("GET", "/api/admin/users", auth="admin-bearer"),
    Case("POST", "/api/admin/users/delete", auth="admin-bearer", body={"userId": 999}, status=404),
    Case("GET", "/api/admin/api-keys", auth="admin-bearer"),
    Case("POST", "/api/admin/api-keys", auth="admin-bearer", body={"label": "compat"}, status=201),
    Case("POST", "/api/admin/api-keys/revoke", auth="admin-bearer", body={"apiKeyId": 999}, status=404),
    # Writes that restart the signer (each waits for it to be ready again)
    Case("POST", "/api/env", body="example", restarts_node=True, check=says("GROUP_NAME", "rejectedReasons")),
    Case("POST", "/api/env", "relays as a JSON string", body="relays-json-string", restarts_node=True),
    Case("POST", "/api/env", "no content type (curl -d)", body="raw-relays", restarts_node=True),
    Case("POST", "/api/env/shares", body="example", restarts_node=True),
    Case("POST", "/api/user/credentials", auth="session", body="user-credentials", restarts_node=True),
    Case("PUT", "/api/user/credentials", auth="session", body="user-credentials", restarts_node=True),
    Case("POST", "/api/user/relays", auth="session", body="user-relays", restarts_node=True),
    Case("PUT", "/api/user/relays", auth="session", body="user-relays", restarts_node=True),
    Case("DELETE", "/api/user/credentials", auth="session", status=405,
         difference="the signer's credentials are cleared with POST /api/env/delete",
         check=says("/api/env/delete")),
    # Last: clearing the credentials stops the signer
    Case("POST", "/api/env/delete", body="example"),
]




def cipher_body(igloo: Igloo, scheme: str) -> dict[str, Any]:
    """A decrypt request for text this Igloo encrypted (through the same API) to ``PEER_PUB``."""
    reply = igloo.call("POST", f"/api/{scheme}/encrypt", {"peer_pubkey": PEER_PUB, "content": PLAINTEXT})
    assert reply.status == 200, reply.body
    return {"peer_pubkey": PEER_PUB, "content": reply.body["result"]}


BUILDERS: dict[str, Callable[[Igloo], Any]] = {
    "event": lambda igloo: {"event": event_template(igloo)},
    "nip": lambda igloo: {"peer_pubkey": PEER_PUB, "content": PLAINTEXT},
    "nip44-decrypt": lambda igloo: cipher_body(igloo, "nip44"),
    "nip04-decrypt": lambda igloo: cipher_body(igloo, "nip04"),
    "relays-json-string": lambda igloo: {"RELAYS": f'["{igloo.target.relay}"]'},
    "user-credentials": lambda igloo: {"group_cred": igloo.keys["group"],
                                       "share_cred": igloo.keys["shares"][0], "relays": [igloo.target.relay]},
    "user-relays": lambda igloo: {"relays": [igloo.target.relay]},
}


def send(igloo: Igloo, case: Case) -> Reply:
    path = case.path
    for name, value in case.path_args.items():
        path = path.replace("{" + name + "}", value)
    body = case.body
    if isinstance(body, str) and body.startswith("raw:"):  # bytes as curl -d sends them: no JSON content type
        return igloo.call(case.method, path, auth=case.auth, raw=body[4:].encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    if body == "raw-relays":
        raw = json.dumps({"RELAYS": igloo.target.relay}).encode()
        return igloo.call(case.method, path, auth=case.auth, raw=raw)  # no Content-Type at all
    if isinstance(body, str) and body in BUILDERS:
        body = BUILDERS[body](igloo)
    else:
        body = request_body(igloo, case)
    return igloo.call(case.method, path, body, auth=case.auth)


def check_documented_fields(case: Case, reply: Reply) -> None:
    documented = documented_fields(case)
    if documented is None:
        return
    shape, names = documented
    wanted = names - set(case.absent)
    items = reply.body if shape == "array" else [reply.body]
    assert isinstance(items, list), f"{case.id}: expected a JSON {shape}, got {reply.body!r}"
    for item in items:
        assert isinstance(item, dict), f"{case.id}: {item!r}"
        missing = sorted(wanted - set(item))
        assert not missing, f"{case.id}: documented fields missing: {missing} in {item}"
        leaked = sorted(set(case.absent) & set(item))
        assert not leaked, f"{case.id}: fields listed as absent are there: {leaked}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_documented_operation(igloo: Igloo, case: Case) -> None:
    if case.pending:
        reply = send(igloo, case)
        if reply.status == 404:
            pytest.xfail(f"{case.id}: {case.pending}")
    else:
        reply = send(igloo, case)
    assert reply.status == case.status, f"{case.id}: {reply.status} {reply.body}"
    if case.difference is None:
        check_documented_fields(case, reply)
    else:
        clear = isinstance(reply.body, dict) and reply.body.get("error")
        assert clear, f"{case.id}: no clear error: {reply.body}"
    if case.check is not None:
        case.check(igloo, reply)
    if case.restarts_node:
        igloo.wait_ready()


def test_every_documented_operation_has_a_case() -> None:
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops
                  if method in ("get", "post", "put", "delete")}
    covered = {(case.method, case.path) for case in CASES}
    assert documented - covered == set(), "operations of Igloo Server's API without a case"
    assert covered - documented == set(), "cases for operations Igloo Server does not document"


def test_differences_are_listed_in_migrating() -> None:
    """Every deliberate difference and every pending route of the suite is in docs/MIGRATING.md's table."""
    listed = [case for case in CASES if case.difference or case.pending or case.absent]
    for case in listed:
        assert f"`{case.method} {case.path}`" in MIGRATING, f"{case.id} is not in docs/MIGRATING.md"
        for name in case.absent:
            assert f"`{name}`" in MIGRATING, f"{case.id}: absent field {name} is not in docs/MIGRATING.md"
