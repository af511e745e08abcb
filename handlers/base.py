"""Base handlers: typed access to shared objects, authentication, HTML vs JSON errors, safe logging."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import sqlite3
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from urllib.parse import urlencode

import jinja2
import tornado.web
from markupsafe import Markup

from config.settings import Settings
from handlers.event_hub import EventHub
from node import NodeError, NodeTimeout, NodeUnavailable, PeerResponseError, RelayUnavailable
from store.db import Database
from store.sessions import SessionStore
from store.users import UserStore

log = logging.getLogger("igloo.http")

SESSION_COOKIE = "igloo_session"
CREDENTIAL_HEADERS = ("X-API-Key", "Authorization", "X-Session-ID")
# Principals proven by a header a cross-site form cannot send (they need no XSRF token or JSON Content-Type).
HEADER_CREDENTIAL_KINDS = frozenset({"api-key", "basic"})

# Igloo's version, looked up once here: pages, /api/status and the start-up log use it, and so should any
# other place that shows it.
try:
    VERSION = metadata.version("igloo")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.1.0"

# Node failures by kind: the one place that decides their HTTP status (the node knows nothing of HTTP).
NODE_ERROR_STATUS: tuple[tuple[type[NodeError], int], ...] = (
    (NodeUnavailable, 503),  # not running, not enough peers
    (NodeTimeout, 504),  # peers did not answer in time
    (PeerResponseError, 502),  # peers answered wrongly
    (RelayUnavailable, 502),  # no relay accepted the request
)


def node_error_status(exc: NodeError) -> int:
    """The HTTP status code for a node failure (500 for a kind not listed)."""
    for kind, status in NODE_ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


@dataclass(frozen=True)
class Principal:
    """Who made a request. ``session_hash`` is set for cookie/session logins (never the id itself)."""

    kind: str  # "session" | "api-key" | "basic" | "anonymous"
    username: str
    user_id: int | None = None
    session_hash: bytes | None = None
    expires_at: float | None = None


ANONYMOUS = Principal("anonymous", "anonymous")
STORAGE_ERROR_STATUS = 503


def storage_failure(exc: BaseException | None) -> str | None:
    """SQLite's reason ("database is locked", "database or disk is full") when ``exc`` is a storage fault.

    Those messages come from SQLite itself and carry no data, so they are safe to show and log.
    """
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return str(exc) or type(exc).__name__
    return None


def constant_time_equal(given: str, expected: str) -> bool:
    """Compare two secrets without leaking where they differ."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class AuthMixin(tornado.web.RequestHandler):
    """Shared-object properties and credential checks, for page, API and WebSocket handlers alike."""

    @property
    def config(self) -> Settings:
        """The validated configuration."""
        value: Settings = self.application.settings["config"]
        return value

    @property
    def db(self) -> Database:
        """The SQLite database."""
        value: Database = self.application.settings["db"]
        return value

    @property
    def events(self) -> EventHub:
        """The one event publisher."""
        hub: EventHub = self.application.settings["events"]
        return hub

    @property
    def node(self) -> Any:
        """The NodeService, or None when no node is running."""
        return self.application.settings.get("node")

    @property
    def users(self) -> UserStore:
        """Account storage."""
        value: UserStore = self.application.settings["users"]
        return value

    @property
    def sessions(self) -> SessionStore:
        """Session storage."""
        value: SessionStore = self.application.settings["sessions"]
        return value

    @property
    def templates(self) -> jinja2.Environment:
        """The Jinja2 environment (autoescape on)."""
        value: jinja2.Environment = self.application.settings["templates"]
        return value

    @property
    def principal(self) -> Principal | None:
        """The authenticated caller, set in ``prepare``."""
        value: Principal | None = self.current_user
        return value

    # --- credentials -------------------------------------------------------------------------------

    def session_from_cookie(self) -> str | None:
        """The session id in the signed cookie, if any."""
        raw = self.get_signed_cookie(SESSION_COOKIE, max_age_days=366)
        if raw is None:
            return None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return None

    def principal_for_session(self, session_id: str | None, touch: bool = True) -> Principal | None:
        """Resolve a session id to a Principal (renewing its idle timer)."""
        if not session_id:
            return None
        session = self.sessions.lookup(session_id, touch=touch)
        if session is None:
            return None
        return Principal("session", session.username, session.user_id, session.id_hash, session.expires_at)

    def principal_for_api_key(self, token: str | None) -> Principal | None:
        """Accept ``token`` when it equals API_KEY."""
        expected = self.config.api_key
        if not token or not expected:
            return None
        return Principal("api-key", "api-user") if constant_time_equal(token, expected) else None

    def principal_for_basic(self, header: str) -> Principal | None:
        """Accept an ``Authorization: Basic`` header matching BASIC_AUTH_USER / BASIC_AUTH_PASS."""
        user, password = self.config.basic_auth_user, self.config.basic_auth_pass
        if not user or not password:
            return None
        try:
            decoded = base64.b64decode(header.split(None, 1)[1], validate=True).decode("utf-8")
        except (IndexError, ValueError):  # ValueError also covers non-ASCII text and binascii.Error
            return None
        given_user, sep, given_pass = decoded.partition(":")
        # Evaluate both comparisons so timing does not tell which part was wrong.
        ok_user = constant_time_equal(given_user, user)
        ok_pass = constant_time_equal(given_pass, password)
        return Principal("basic", user) if sep and ok_user and ok_pass else None

    def authenticate_headers(self) -> Principal | None:
        """Check the cookie, then X-Session-ID, X-API-Key, Authorization (Bearer or Basic)."""
        if not self.config.auth_enabled:
            return ANONYMOUS
        principal = self.principal_for_session(self.session_from_cookie())
        if principal is not None:
            return principal
        headers = self.request.headers
        principal = self.principal_for_session(headers.get("X-Session-ID"))
        if principal is not None:
            return principal
        principal = self.principal_for_api_key(headers.get("X-API-Key"))
        if principal is not None:
            return principal
        authorization = headers.get("Authorization", "")
        scheme = authorization.split(None, 1)[0].lower() if authorization else ""
        if scheme == "bearer":
            return self.principal_for_api_key(authorization[len("bearer"):].strip())
        if scheme == "basic":
            return self.principal_for_basic(authorization)
        return None

    def auth_methods(self) -> list[str]:
        """Igloo Server's ``methods``/``authMethods`` list: what a client can authenticate with here."""
        config = self.config
        methods = ["api-key"] if config.api_key else []
        if config.basic_auth_user and config.basic_auth_pass:
            methods.append("basic-auth")
        methods.append("session")
        return methods

    def has_header_credentials(self) -> bool:
        """True when the request carries a credential header a cross-site form could not send."""
        return any(name in self.request.headers for name in CREDENTIAL_HEADERS)

    def set_session_cookie(self, session_id: str) -> None:
        """Send the signed, HttpOnly, SameSite=Strict session cookie (Secure over https or in production)."""
        self.set_signed_cookie(
            SESSION_COOKIE,
            session_id,
            expires_days=None,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https" or self.config.production,
            path="/",
        )

    def clear_session_cookie(self) -> None:
        """Remove the session cookie."""
        self.clear_cookie(SESSION_COOKIE, path="/")

    def end_session(self, principal: Principal | None) -> None:
        """Delete the caller's session row and close its open event sockets (4401)."""
        if principal is not None and principal.session_hash is not None:
            self.sessions.delete_hash(principal.session_hash)
            self.events.end_session(principal.session_hash)
        self.clear_session_cookie()

    def client_ip(self) -> str:
        """The client address (behind a trusted proxy, the one it appended: see handlers/proxy.py)."""
        return str(self.request.remote_ip or "unknown")

    # --- logging without secrets -----------------------------------------------------------------

    def _request_summary(self) -> str:
        # The query string may hold apiKey/sessionId: only the path is ever logged.
        return f"{self.request.method} {self.request.path} ({self.client_ip()})"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log errors without the request repr (which would include cookies and the query string)."""
        reason = storage_failure(value)
        if reason is not None:
            # A locked database or a full disk: the write is refused with 503 and reported once per request.
            log.warning("storage unavailable for %s: %s", self._request_summary(), reason)
            try:
                where = {"method": self.request.method, "path": self.request.path}
                self.events.publish("error", f"Storage unavailable: {reason}", {"reason": reason, **where})
            except Exception:  # noqa: BLE001 - reporting must not fail the error response
                log.debug("could not publish the storage error event")
            return
        if isinstance(value, tornado.web.HTTPError):
            if value.log_message:
                log.warning("%d %s: %s", value.status_code, self._request_summary(), value.log_message)
        else:
            log.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))


class BaseHandler(AuthMixin):
    """Pages: HTML errors, login redirects, Jinja rendering."""

    async def prepare(self) -> None:
        """Load the caller from the cookie or credential headers."""
        self.current_user = self.authenticate_headers()

    def get_login_url(self) -> str:
        """Where unauthenticated page requests go."""
        return "/login"

    def require_page_auth(self) -> bool:
        """Redirect to /login (keeping the path) unless authenticated; return True when allowed."""
        if self.current_user is not None:
            return True
        self.redirect("/login?" + urlencode({"next": self.request.path}))
        return False

    def render_page(self, name: str, **ctx: Any) -> None:
        """Render a template with the standard context and finish the response."""
        principal = self.principal
        user = None
        if principal is not None and principal.kind != "anonymous":
            user = {"username": principal.username}
        context: dict[str, Any] = {
            "current_user": user,
            "xsrf_form_html": lambda: Markup(self.xsrf_form_html()),  # noqa: S704 - tornado escapes it
            "static_url": self.static_url,
            "auth_enabled": self.config.auth_enabled,
            "version": VERSION,
            "request_path": self.request.path,
        }
        context.update(ctx)
        html = self.templates.get_template(name).render(**context)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.finish(html)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Show error.html (plain text if the template is unavailable)."""
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.reason:
            message = exc.reason
        reason = storage_failure(exc)
        if reason is not None:
            status_code = STORAGE_ERROR_STATUS
            self.set_status(status_code)
            message = f"Storage unavailable: {reason}. Try again later."
        try:
            self.render_page("error.html", status_code=status_code, message=message)
        except Exception:  # noqa: BLE001 - never fail while reporting a failure
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(f"{status_code}: {message}")


class ApiHandler(AuthMixin):
    """JSON APIs: JSON errors; 401 unless authenticated (override ``public`` to allow anyone)."""

    public = False

    async def prepare(self) -> None:
        """Authenticate; refuse with 401 JSON when required and missing."""
        self.current_user = self.authenticate_headers()
        if self.current_user is None and not self.public:
            body = {"error": "Authentication required", "authMethods": self.auth_methods()}
            self.write_json(body, status=401)

    def check_xsrf_cookie(self) -> None:
        """Header credentials (API key, bearer, basic, session header) need no XSRF token, and neither does a
        request without the session cookie while auth is on: it has nothing to forge, and ``prepare`` answers
        401 (Igloo Server's AUTH_REQUIRED) instead of a 403."""
        if self.has_header_credentials():
            return
        if self.config.auth_enabled and self.get_cookie(SESSION_COOKIE) is None:
            return
        super().check_xsrf_cookie()

    def write_json(self, body: object, status: int = 200) -> None:
        """Send ``body`` as JSON with ``status`` and finish."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, separators=(",", ":")))

    def read_json(self) -> dict[str, Any]:
        """Parse a JSON object body (400 if malformed).

        Cookie and anonymous clients must send ``Content-Type: application/json`` (else 415): a cross-site
        form cannot, which keeps their writes safe. A client that authenticated with an API key or Basic
        credentials, headers no cross-site form can send, may leave it out, as on Igloo Server
        (``curl -d '{...}'``).
        """
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        principal = self.principal
        header_client = principal is not None and principal.kind in HEADER_CREDENTIAL_KINDS
        if content_type != "application/json" and not header_client:
            raise tornado.web.HTTPError(415, reason="Content-Type must be application/json")
        try:
            body = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
            raise tornado.web.HTTPError(400, reason="Invalid JSON body") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, reason="Expected a JSON object")
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON ``{error}``; a storage fault (locked database, full disk) is a 503 naming it."""
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.reason:
            message = exc.reason
        reason = storage_failure(exc)
        if reason is not None:
            self.set_status(STORAGE_ERROR_STATUS)
            self.set_header("Retry-After", "5")
            message = f"Storage unavailable: {reason}"
        elif status_code >= 500:
            message = "Internal server error"
        self.write_json({"error": message}, status=self.get_status())  # subclasses may add fields
