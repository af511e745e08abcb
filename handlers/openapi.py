"""The OpenAPI 3.1 document of the REST API, built from the route table so it cannot drift from it.

Each handler keeps its own operations next to its code, in the class attribute ``openapi``: a mapping from
HTTP method (lower case) to an operation made with ``op()``. Path parameters are named by ``path_params``
(one name per group of the route's pattern). Every ``/api/`` route of ``handlers/routes.py`` is in the
document; a method without an operation is listed as undocumented, which ``tests/server/test_openapi.py``
refuses. The access level of each operation (``handlers/roles.py``) is in ``x-igloo-access`` and its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tornado.web

from handlers.roles import ADMIN, PUBLIC, READ, USER, required_level

Schema = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch")
UNDOCUMENTED = "x-igloo-undocumented"

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
TIME: Schema = {"type": "string", "format": "date-time"}
HEX64: Schema = {"type": "string", "minLength": 64, "maxLength": 64,
                 "description": "64 lower-case hex characters (node/validate.py)"}


def obj(properties: Mapping[str, Schema], required: Sequence[str] = (), **extra: Any) -> Schema:
    """A JSON object schema."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def arr(items: Schema, **extra: Any) -> Schema:
    """A JSON array schema."""
    return {"type": "array", "items": items, **extra}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def enum(*values: str) -> Schema:
    """One of ``values``."""
    return {"type": "string", "enum": list(values)}


ERROR: Schema = obj({"error": STR}, ["error"])
ERROR_STATUS_TEXT = {
    400: "Invalid input (the message names the field)",
    401: "Authentication required",
    403: "The caller's role or key does not allow this",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request too large",
    415: "Content-Type must be application/json",
    429: "Too many requests (Retry-After says when to try again)",
    502: "Peers or relays answered wrongly",
    503: "Not available now (no node, not enough peers, storage)",
    504: "Peers did not answer in time",
}


def op(
    summary: str,
    *,
    description: str = "",
    request: Schema | None = None,
    example: Any = None,
    ok: Schema | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    responses: Mapping[int, tuple[str, Schema | None]] | None = None,
    query: Mapping[str, Schema] | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """One operation: ``request`` is the JSON body's schema (with ``example``), ``ok`` the success body's
    (status ``status``), ``errors`` the error statuses it answers with a JSON ``{error}``."""
    operation: dict[str, Any] = {"summary": summary}
    if description:
        operation["description"] = description
    if tags:
        operation["tags"] = list(tags)
    if query:
        operation["parameters"] = [{"name": name, "in": "query", "required": False, "schema": schema}
                                   for name, schema in query.items()]
    if request is not None:
        media: dict[str, Any] = {"schema": request}
        if example is not None:
            media["example"] = example
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    answers: dict[str, Any] = {}
    if ok is not None:
        answers[str(status)] = _json_response("Success", ok)
    for code, (text, schema) in (responses or {}).items():
        answers[str(code)] = _json_response(text, schema) if schema is not None else {"description": text}
    for code in errors:
        answers.setdefault(str(code), _json_response(ERROR_STATUS_TEXT.get(code, "Error"), ERROR))
    operation["responses"] = answers or {"default": {"description": "See the description"}}
    return operation


def _json_response(text: str, schema: Schema) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def implemented_methods(handler: type[Any]) -> list[str]:
    """The HTTP methods (lower case) ``handler`` implements."""
    base = tornado.web.RequestHandler
    return [m for m in METHODS if getattr(handler, m, None) is not getattr(base, m)]


def _split_groups(pattern: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level capturing group of ``pattern``."""
    spans, depth, start, escaped = [], 0, 0, False
    for i, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            if depth == 0:
                start = i
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


def path_template(pattern: str, names: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path of a route pattern and its path parameters (each group becomes ``{name}``)."""
    pattern = pattern.removeprefix("^").removesuffix("$")
    parts, params, last = [], [], 0
    for n, (start, end) in enumerate(_split_groups(pattern)):
        name = names[n] if n < len(names) else f"param{n + 1}"
        parts.append(pattern[last:start] + "{" + name + "}")
        group = pattern[start + 1:end - 1]
        params.append({"name": name, "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": f"^(?:{group})$"}})
        last = end
    parts.append(pattern[last:])
    return "".join(parts).replace("\\", ""), params


ACCESS_TEXT = {
    PUBLIC: "Anyone, signed in or not.",
    READ: "Any signed-in caller, read-only API keys included.",
    USER: "Accounts with the user or admin role, and full API keys (not read-only keys).",
    ADMIN: "Administrators only: admin accounts, API_KEY, ADMIN_SECRET as a Bearer token, Basic credentials.",
}
SECURITY_SCHEMES = {
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "API_KEY or a stored API key"},
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "API_KEY, a stored API key, or ADMIN_SECRET (an administrator)"},
    "basicAuth": {"type": "http", "scheme": "basic", "description": "BASIC_AUTH_USER / BASIC_AUTH_PASS"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "igloo_session",
                      "description": "The browser's login session (writes also need the X-XSRFToken header)"},
    "sessionHeader": {"type": "apiKey", "in": "header", "name": "X-Session-ID",
                      "description": "The sessionId POST /api/auth/login returned"},
}


def _tag(path: str) -> str:
    section = path.split("/")[2] if path.count("/") >= 2 else "api"
    return {"nip46": "NIP-46", "nip44": "Encryption", "nip04": "Encryption", "env": "Credentials",
            "keyset": "Credentials", "recover": "Keys", "docs": "Documentation", "user": "Accounts",
            "admin": "Admin"}.get(section, section.capitalize())


def operation_for(handler: type[Any], method: str, path: str) -> dict[str, Any]:
    """The handler's operation for ``method``, with its access level, tag and the usual auth errors."""
    declared: Mapping[str, Any] = getattr(handler, "openapi", {}) or {}
    operation = dict(declared.get(method) or {})
    if not operation:
        operation = {"summary": (handler.__doc__ or handler.__name__).strip().splitlines()[0],
                     UNDOCUMENTED: True, "responses": {"default": {"description": "Not documented"}}}
    level = required_level(handler, method.upper())
    operation["x-igloo-access"] = level
    access = f"**Access:** {ACCESS_TEXT[level]}"
    operation["description"] = f"{operation.get('description', '')}\n\n{access}".strip()
    operation.setdefault("tags", [_tag(path)])
    operation["operationId"] = f"{method}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}"
    responses = operation["responses"] = dict(operation["responses"])
    if level == PUBLIC:
        operation["security"] = [{}]
    else:
        responses.setdefault("401", _json_response(ERROR_STATUS_TEXT[401], ERROR))
        # Every authenticated request spends from the per-client limits (handlers/throttle.py).
        responses.setdefault("429", _json_response(ERROR_STATUS_TEXT[429], ERROR))
        if level != READ:
            responses.setdefault("403", _json_response(ERROR_STATUS_TEXT[403], ERROR))
    return operation


def build_document(routes: Iterable[Sequence[Any]], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``/api/`` route in ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        pattern, handler = route[0], route[1]
        if not isinstance(pattern, str) or not pattern.startswith("/api/"):
            continue
        path, params = path_template(pattern, getattr(handler, "path_params", ()))
        item = paths.setdefault(path, {})
        if params:
            item["parameters"] = params
        for method in implemented_methods(handler):
            item[method] = operation_for(handler, method, path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Igloo API",
            "version": version,
            "description": "The REST API of Igloo, an always-on FROSTR threshold signer for Nostr. Paths and "
                           "shapes follow Igloo Server's where it has them. The live event stream is the "
                           "WebSocket at /api/events (docs/events.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{name: []} for name in SECURITY_SCHEMES],
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": {"Error": ERROR}},
    }


def undocumented(document: Mapping[str, Any]) -> list[str]:
    """``METHOD path`` of every operation without its own ``openapi`` entry."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get(UNDOCUMENTED):
                found.append(f"{method.upper()} {path}")
    return found
