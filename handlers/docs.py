"""The API documentation: the OpenAPI 3.1 document at ``/api/docs/openapi.json`` and a readable page at
``/api/docs``, both built from the route table on each request (``handlers.openapi``)."""

from __future__ import annotations

import json
from typing import Any

from handlers.base import VERSION, ApiHandler, BaseHandler
from handlers.openapi import ANY_OBJECT, build_document, op
from handlers.roles import PUBLIC


def document() -> dict[str, Any]:
    """The document for the application's own routes."""
    from handlers import routes  # the route table imports this module

    return build_document(routes.ROUTES, VERSION)


class OpenApiDocument(ApiHandler):
    """GET /api/docs/openapi.json."""

    access = PUBLIC
    openapi = {"get": op("This OpenAPI 3.1 document", ok=ANY_OBJECT)}

    def get(self) -> None:
        """The document."""
        self.write_json(document())


class ApiDocsPage(BaseHandler):
    """GET /api/docs: every operation, grouped, with its access level, parameters and schemas."""

    access = PUBLIC
    openapi = {"get": op("This documentation as a page (HTML)",
                         responses={200: ("The page (text/html)", None)})}

    def get(self) -> None:
        """The page."""
        doc = document()
        sections: dict[str, list[dict[str, Any]]] = {}
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                if method == "parameters":
                    continue
                body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                sections.setdefault(operation["tags"][0], []).append({
                    "method": method.upper(), "path": path, "id": operation["operationId"],
                    "summary": operation["summary"], "access": operation["x-igloo-access"],
                    "description": operation.get("description", "").split("\n\n**Access:**")[0],
                    "params": item.get("parameters", []) + operation.get("parameters", []),
                    "request": pretty(body["schema"]) if body else None,
                    "example": pretty(body["example"]) if "example" in body else None,
                    "responses": [(code, answer["description"],
                                   pretty(answer["content"]["application/json"]["schema"])
                                   if "content" in answer else None)
                                  for code, answer in operation["responses"].items()],
                })
        self.set_header("Cache-Control", "no-cache")
        self.render_page("api_docs.html", sections=sorted(sections.items()), info=doc["info"])


def pretty(value: Any) -> str:
    """JSON for reading."""
    return json.dumps(value, indent=2, ensure_ascii=False)


ROUTES: list[tuple[Any, ...]] = [(r"/api/docs/openapi.json", OpenApiDocument), (r"/api/docs", ApiDocsPage)]
