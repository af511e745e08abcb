"""Igloo Server's authentication and onboarding API as its scripts use it, on a real app (loopback port):
login with ``{apiKey}`` or the Basic pair (no session, under the login limiter), logout on GET, the
``/api/onboarding/*`` routes with the admin secret or setup token, JSON without a Content-Type for header
clients only, 401 (not 403) for a request with no credential at all, and POST /api/env without anything
it can apply."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from handlers.auth import setup_token_path
from tests.server.conftest import ADMIN_SECRET, API_KEY, PASSWORD, Igloo
from tests.server.test_auth import xsrf_pair

JSON = {"Content-Type": "application/json"}


async def post(igloo: Igloo, path: str, body: Any, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> tuple[int, Any, Any]:
    resp = await igloo.fetch(path, method="POST", body=raw if raw is not None else json.dumps(body),
                             headers=JSON if headers is None else headers)
    return resp.code, json.loads(resp.body) if resp.body else None, resp.headers


@pytest.mark.parametrize("overrides", [{"RATE_LIMIT_LOGIN_MAX": "2"}])
async def test_login_with_an_api_key(igloo: Igloo) -> None:
    code, body, headers = await post(igloo, "/api/auth/login", {"apiKey": API_KEY})
    assert code == 200 and body["success"] is True and body["userId"] == "api-user"
    assert "sessionId" not in body and "warning" in body and "Set-Cookie" not in headers
    assert API_KEY not in json.dumps(body)
    for _ in range(2):
        code, body, _ = await post(igloo, "/api/auth/login", {"apiKey": "wrong-key-wrong-key"})
        assert (code, body) == (401, {"success": False, "error": "Invalid credentials"})
    code, _, headers = await post(igloo, "/api/auth/login", {"apiKey": API_KEY})
    assert code == 429 and int(headers["Retry-After"]) > 0  # guessing keys here is limited like passwords


@pytest.mark.parametrize("overrides", [{"BASIC_AUTH_USER": "ops", "BASIC_AUTH_PASS": "ops-password-1"}])
async def test_login_with_the_basic_pair(igloo: Igloo) -> None:
    code, body, _ = await post(igloo, "/api/auth/login", {"username": "ops", "password": "ops-password-1"})
    assert code == 200 and body["userId"] == "ops" and "warning" in body and "sessionId" not in body
    code, _, _ = await post(igloo, "/api/auth/login", {"username": "ops", "password": "wrong"})
    assert code == 401
    status = json.loads((await igloo.fetch("/api/auth/status")).body)
    assert status["methods"] == ["api-key", "basic-auth", "session"] and status["sessionTimeout"] == 3600


async def test_logout_on_get_ends_the_session(igloo: Igloo) -> None:
    igloo.add_user()
    cookie, session_id = await igloo.login()
    resp = await igloo.fetch("/api/auth/logout", headers={"X-Session-ID": session_id})
    assert resp.code == 200 and json.loads(resp.body) == {"success": True}
    status = json.loads((await igloo.fetch("/api/auth/status", headers={"Cookie": cookie})).body)
    assert status["authenticated"] is False


async def test_onboarding_api_with_the_admin_secret(igloo: Igloo) -> None:
    status = json.loads((await igloo.fetch("/api/onboarding/status")).body)
    assert status == {"initialized": False, "hasAdminSecret": True, "headlessMode": False,
                      "skipAdminValidation": False}
    bearer = {**JSON, "Authorization": f"Bearer {ADMIN_SECRET}"}
    wrong = {**JSON, "Authorization": "Bearer no"}
    code, body, _ = await post(igloo, "/api/onboarding/validate-admin", {}, wrong)
    assert (code, body["error"]) == (401, "Authentication failed")
    code, body, _ = await post(igloo, "/api/onboarding/validate-admin", {}, bearer)
    assert (code, body) == (200, {"success": True, "message": "Admin secret validated"})
    short = {"username": "alice", "password": "short"}
    code, body, _ = await post(igloo, "/api/onboarding/setup", short, bearer)
    assert code == 400 and "too short" in body["message"]
    alice = {"username": "alice", "password": PASSWORD}
    code, body, _ = await post(igloo, "/api/onboarding/setup", alice, bearer)
    assert (code, body) == (200, {"success": True, "message": "Setup complete"})
    await igloo.login()  # the account logs in
    # Once an account exists, both answer as Igloo Server does: 401.
    assert (await post(igloo, "/api/onboarding/validate-admin", {}, bearer))[0] == 401
    eve = {"username": "eve", "password": PASSWORD}
    assert (await post(igloo, "/api/onboarding/setup", eve, bearer))[0] == 401
    assert json.loads((await igloo.fetch("/api/onboarding/status")).body)["initialized"] is True


@pytest.mark.parametrize("overrides", [{"ADMIN_SECRET": ""}])
async def test_onboarding_api_with_the_setup_token(igloo: Igloo) -> None:
    path = setup_token_path(igloo.config.data_dir)
    path.write_text("f00d" * 8)
    bearer = {**JSON, "Authorization": "Bearer " + "f00d" * 8}
    alice = {"username": "alice", "password": PASSWORD}
    code, _, _ = await post(igloo, "/api/onboarding/setup", alice, bearer)
    assert code == 200 and not path.exists()  # one use only


async def test_json_without_content_type_only_for_header_clients(igloo: Igloo) -> None:
    body = json.dumps({"type": "group", "credential": "bfgroup1nope"}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
    for credential in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        code, reply, _ = await post(igloo, "/api/recover/validate", None, {**form, **credential}, raw=body)
        assert code == 200 and reply["validation"]["isValid"] is False, credential
        # and with no Content-Type at all
        code, reply, _ = await post(igloo, "/api/recover/validate", None, credential, raw=body)
        assert code == 200, credential
    # A cookie client (with its XSRF token) must still say application/json: forms cannot.
    igloo.add_user()
    session_cookie, _ = await igloo.login()
    page = await igloo.fetch("/dashboard", headers={"Cookie": session_cookie})  # the session's XSRF token
    token, xsrf_cookie = xsrf_pair(page.headers)
    cookie = {"Cookie": f"{session_cookie}; {xsrf_cookie}", "X-XSRFToken": token}
    code, _, _ = await post(igloo, "/api/recover/validate", None, {**form, **cookie}, raw=body)
    assert code == 415
    code, _, _ = await post(igloo, "/api/recover/validate", None, {**JSON, **cookie}, raw=body)
    assert code == 200


@pytest.mark.parametrize("overrides", [{"BASIC_AUTH_USER": "ops", "BASIC_AUTH_PASS": "ops-password-1"}])
async def test_basic_clients_may_leave_the_content_type_out(igloo: Igloo) -> None:
    basic = "Basic " + base64.b64encode(b"ops:ops-password-1").decode()
    raw = json.dumps({"type": "share", "credential": "x"}).encode()
    code, _, _ = await post(igloo, "/api/recover/validate", None, {"Authorization": basic}, raw=raw)
    assert code == 200


async def test_no_credential_at_all_is_a_401_with_auth_methods(igloo: Igloo) -> None:
    code, body, _ = await post(igloo, "/api/sign", {"message": "11" * 32})
    assert code == 401 and body == {"code": "AUTH_REQUIRED", "error": "Authentication required",
                                    "authMethods": ["api-key", "session"]}
    code, body, _ = await post(igloo, "/api/env", {"RELAYS": []})
    assert code == 401 and "code" not in body  # codes are /api/sign's and the cipher routes'


async def test_env_post_with_nothing_to_apply_says_why(igloo: Igloo) -> None:
    code, body, _ = await post(igloo, "/api/env", {"GROUP_NAME": "x", "SESSION_TIMEOUT": "60", "BOGUS": 1},
                               {**JSON, "X-API-Key": API_KEY})
    assert code == 400 and body["success"] is False
    assert body["rejectedKeys"] == ["BOGUS", "GROUP_NAME", "SESSION_TIMEOUT"]
    assert "GROUP_NAME in the server's environment" in body["rejectedReasons"]["GROUP_NAME"]
    assert "restart" in body["rejectedReasons"]["SESSION_TIMEOUT"]


async def test_routes_that_would_reveal_secrets_say_so(igloo: Igloo) -> None:
    for method, path in (("POST", "/api/env/admin-secret"),):
        resp = await igloo.fetch(path, method=method, body="{}", headers={**JSON, "X-API-Key": API_KEY})
        assert resp.code == 403 and "never returns" in json.loads(resp.body)["error"]
