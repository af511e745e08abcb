"""The OpenAPI document: every REST route of ``handlers/routes.py`` in it with its own schemas, valid OpenAPI
3.1 by a real validator (openapi-spec-validator), served as JSON, readable at /api/docs, and true to what the
server actually answers (live responses checked against the documented schemas)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from handlers import routes
from handlers.docs import document
from handlers.openapi import implemented_methods, path_template, undocumented
from tests.server.callers import Callers, call, json_of, make_callers
from tests.server.conftest import Igloo

pytestmark = pytest.mark.timeout(60)


def rest_routes() -> list[tuple[str, str, type[Any]]]:
    """(OpenAPI path, method, handler) of every /api/ route and method in the table."""
    found = []
    for route in routes.ROUTES:
        pattern, handler = route[0], route[1]
        if pattern.startswith("/api/"):
            path, _ = path_template(pattern, getattr(handler, "path_params", ()))
            found.extend((path, m, handler) for m in implemented_methods(handler))
    return found


def test_every_rest_route_is_documented_with_its_own_schemas() -> None:
    doc = document()
    listed = {
        (path, method) for path, item in doc["paths"].items() for method in item if method != "parameters"
    }
    expected = {(path, method) for path, method, _ in rest_routes()}
    assert expected and listed == expected
    assert undocumented(doc) == [], "add an `openapi` entry next to these handlers"
    for path, method, handler in rest_routes():
        operation = doc["paths"][path][method]
        assert "{param" not in path, f"{handler.__name__}: name its path parameters in path_params"
        assert operation["responses"], path
        succeeds = any(code.startswith("2") for code in operation["responses"])
        if method in ("post", "put") and operation.get("x-igloo-access") != "public" and succeeds:
            has_body = "requestBody" in operation
            assert has_body or handler.__name__ in ("DemoApi", "BunkerApi", "TransportApi", "ApiDocsPage"), (
                f"{method.upper()} {path}: document its request body"
            )


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any error
    ids = [op["operationId"] for item in doc["paths"].values() for k, op in item.items() if k != "parameters"]
    assert len(ids) == len(set(ids))


async def test_served_as_json_and_as_a_page(igloo: Igloo) -> None:
    served = await igloo.fetch("/api/docs/openapi.json")  # no credentials needed
    assert served.code == 200 and json.loads(served.body) == json.loads(json.dumps(document()))
    page = await igloo.fetch("/api/docs")
    html = page.body.decode()
    assert page.code == 200 and "text/html" in page.headers["Content-Type"]
    for path, method, _ in rest_routes():
        assert f'data-op="{method.upper()} {path}"' in html, (method, path)
    assert 'data-access="admin"' in html and 'href="/api/docs/openapi.json"' in html


def schema_for(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    answer = doc["paths"][path][method]["responses"][str(status)]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


async def test_live_answers_match_the_documented_schemas(igloo: Igloo) -> None:
    doc = document()
    callers = await make_callers(igloo)
    admin = callers.admin.header()

    async def check(
        method: str, path: str, headers: dict[str, str], body: Any = None, template: str | None = None
    ) -> Any:
        resp = await call(igloo, method.upper(), path, headers, body)
        found = json_of(resp)
        schema = schema_for(doc, method, template or path, resp.code)
        jsonschema.Draft202012Validator(schema).validate(found)
        return found

    await check("get", "/api/status", {})
    await check("get", "/api/auth/status", admin)
    await check("get", "/api/admin/whoami", admin)
    await check("get", "/api/admin/users", admin)
    made = await check(
        "post", "/api/admin/users", admin, {"username": "carol", "password": "long enough", "role": "user"}
    )
    await check(
        "post", "/api/admin/users", admin, {"username": "carol", "password": "long enough", "role": "user"}
    )
    await check("post", "/api/admin/users/delete", admin, {"userId": made["user"]["id"]})
    key = await check("post", "/api/admin/api-keys", admin, {"label": "x", "scope": "read"})
    await check("get", "/api/admin/api-keys", admin)
    await check("post", "/api/admin/api-keys/revoke", admin, {"apiKeyId": key["apiKey"]["id"]})
    await check("post", "/api/admin/api-keys/revoke", admin, {"apiKeyId": key["apiKey"]["id"]})
    await check("post", "/api/keyset/validate", admin, {"group": "bfgroup1nope", "share": "nope"})
    await check("get", "/api/keyset/name", admin)
    await check("put", "/api/keyset/name", admin, {"name": "Personal"})
    await check(
        "post", "/api/user/password", callers.user.header(), {"currentPassword": "x", "newPassword": "y" * 9}
    )
    await check(
        "post",
        "/api/admin/users",
        callers.user.header(),
        {"username": "z", "password": "z" * 9, "role": "user"},
    )
    await check("get", "/api/admin/users", {})
    await check("get", "/api/peers", Callers.env_key())  # 503 without a node
