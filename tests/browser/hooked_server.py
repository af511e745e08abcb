"""Run the real ``server.py`` with one test-only route: ``POST /__test__/publish`` → ``EventHub.publish``.

The browser tests need events on demand, of any type; the server itself publishes few (start-up, and what
the node emits), so this wrapper adds the one publisher call the tests drive. Everything else is the real
server. Never used outside tests/browser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import tornado.routing
import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import server


class PublishHook(tornado.web.RequestHandler):
    """POST JSON ``{type, message, data}``; answers the published frame."""

    def initialize(self, hub: Any) -> None:
        """Keep the hub."""
        self.hub = hub

    def check_xsrf_cookie(self) -> None:
        """Test-only endpoint driven by the test process, not by a page."""

    def post(self) -> None:
        """Publish one event."""
        body = json.loads(self.request.body)
        self.finish(self.hub.publish(body["type"], body["message"], body.get("data")))


_build_application = server.build_application


def build_application(config: Any, db: Any, events: Any, node: Any = None, **kwargs: Any) -> Any:
    """The real application plus the publish hook."""
    app = _build_application(config, db, events, node, **kwargs)
    path = tornado.routing.PathMatches(r"/__test__/publish")
    hook = tornado.routing.Rule(path, PublishHook, {"hub": events})
    app.wildcard_router.rules.insert(0, hook)
    return app


server.build_application = build_application

if __name__ == "__main__":
    sys.exit(server.main(sys.argv[1:]))
