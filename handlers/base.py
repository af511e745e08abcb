"""Base handlers: typed access to shared objects, authentication, HTML vs JSON errors, safe logging."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar
from urllib.parse import urlencode

import jinja2
import tornado.web
from markupsafe import Markup

from config.settings import Settings
from handlers.event_hub import EventHub
from handlers.gate import MAX_BODY
from handlers.roles import ADMIN, PUBLIC, ROLE_ADMIN, ROLE_USER, SCOPE_FULL, allows, refusal, required_level
from handlers.throttle import API, CREDENTIALS, Throttles
from node import NodeError, NodeManager, NodeTimeout, NodeUnavailable, PeerResponseError, RelayUnavailable
from store.apikeys import ApiKeyStore
from store.db import Database
from store.sessions import SessionStore
from store.users import UserStore

log = logging.getLogger("igloo.http")

SESSION_COOKIE = "igloo_session"
CREDENTIAL_HEADERS = ("X-API-Key", "Authorization", "X-Session-ID")
XSRF_COOKIE = "_xsrf"  # over http (loopback): browsers refuse a __Host- cookie without Secure
XSRF_COOKIE_HTTPS = "__Host-xsrf"  # over https: Secure, Path=/, no Domain, so no other site can plant it
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of requests a page of this origin (or the user, typing a URL) made.
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
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
    """Who made a request. ``session_hash`` is set for cookie/session logins (never the id itself).

    ``role`` is "admin" or "user" (handlers/roles.py); ``scope`` is "full", or "read" for a read-only API
    key; ``api_key_id`` names the stored API key used, if any.
    """

    kind: str  # "session" | "api-key" | "basic" | "anonymous"
    username: str
    user_id: int | None = None
    session_hash: bytes | None = None
    expires_at: float | None = None
    role: str = ROLE_USER
    scope: str = SCOPE_FULL
    api_key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """True for an administrator."""
        return self.role == ROLE_ADMIN and self.scope == SCOPE_FULL


# With AUTH_ENABLED=false every route is open: the caller is whoever can reach the port.
ANONYMOUS = Principal("anonymous", "anonymous", role=ROLE_ADMIN)
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


class Throttled(tornado.web.HTTPError):
    """429: a per-client limit was reached; ``retry_after`` seconds until the next request may pass."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, reason="Too many requests. Please try again later.")
        self.retry_after = max(1, retry_after)


def retry_after_of(exc: BaseException | None) -> int | None:
    """The Retry-After seconds of a ``Throttled`` error (None for any other)."""
    return exc.retry_after if isinstance(exc, Throttled) else None


class AuthMixin(tornado.web.RequestHandler):
    """Shared-object properties and credential checks, for page, API and WebSocket handlers alike."""

    # HTTP method → the per-client limit (handlers.throttle) a request to this handler spends from.
    rate_limits: ClassVar[dict[str, str]] = {}

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
        """The NodeManager, or None when the server runs without one."""
        return self.application.settings.get("node")

    @property
    def manager(self) -> NodeManager:
        """The NodeManager, or a 503 when there is none."""
        manager: NodeManager | None = self.node
        if manager is None:
            raise tornado.web.HTTPError(503, reason="Node not available")
        return manager

    @property
    def users(self) -> UserStore:
        """Account storage."""
        value: UserStore = self.application.settings["users"]
        return value

    @property
    def api_keys(self) -> ApiKeyStore | None:
        """Stored API keys (None in an application built without them)."""
        value: ApiKeyStore | None = self.application.settings.get("api_keys")
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
    def throttles(self) -> Throttles:
        """The per-client request limits."""
        value: Throttles = self.application.settings["throttles"]
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
        return Principal("session", session.username, session.user_id, session.id_hash, session.expires_at,
                         role=session.role)

    def principal_for_api_key(self, token: str | None, bearer: bool = False) -> Principal | None:
        """API_KEY (an administrator), a stored API key (a user, full or read-only), or, sent as a Bearer
        token (``bearer``), ADMIN_SECRET (an administrator, as on Igloo Server)."""
        if not token:
            return None
        expected = self.config.api_key
        if expected and constant_time_equal(token, expected):
            return Principal("api-key", "api-user", role=ROLE_ADMIN)
        secret = self.config.admin_secret
        if bearer and secret and constant_time_equal(token, secret):
            return Principal("api-key", "admin-secret", role=ROLE_ADMIN)
        store = self.api_keys
        key = store.verify(token, self.client_ip()) if store is not None else None
        if key is None:
            return None
        return Principal("api-key", f"api-key:{key.prefix}", role=ROLE_USER, scope=key.scope,
                         api_key_id=key.id)

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
        return Principal("basic", user, role=ROLE_ADMIN) if sep and ok_user and ok_pass else None

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
            return self.principal_for_api_key(authorization[len("bearer"):].strip(), bearer=True)
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

    # --- roles (handlers/roles.py) -----------------------------------------------------------------

    def check_access(self) -> None:
        """403 when the signed-in caller lacks this route's level for this method (a caller who is not
        signed in is left to the handler: 401 for APIs, the login page for pages)."""
        principal = self.current_user
        level = required_level(type(self), self.request.method or "GET")
        if principal is not None and not allows(principal, level):
            raise tornado.web.HTTPError(403, reason=refusal(principal, level))

    def require_admin(self) -> None:
        """403 unless the caller is an administrator: for checks that depend on what a request asks, not
        only on its route and method (for those, set ``access`` on the handler)."""
        principal = self.current_user
        if not allows(principal, ADMIN):
            raise tornado.web.HTTPError(403, reason=refusal(principal, ADMIN) if principal else "Forbidden")

    @property
    def can_admin(self) -> bool:
        """True when the caller is an administrator."""
        return allows(self.current_user, ADMIN)

    def has_header_credentials(self) -> bool:
        """True when the request carries a credential header a cross-site form could not send."""
        return any(name in self.request.headers for name in CREDENTIAL_HEADERS)

    def carries_guessable_credentials(self) -> bool:
        """True when the request brings an API key, Bearer token or Basic password (a guess, if wrong).

        Session ids (cookie, X-Session-ID) are 256 random bits and expire in normal use: they are not
        counted, so a program with an expired session is not locked out.
        """
        headers = self.request.headers
        if "X-API-Key" in headers:
            return True
        scheme = headers.get("Authorization", "").split(None, 1)[:1]
        return bool(scheme) and scheme[0].lower() in ("bearer", "basic")

    def get_current_user(self) -> Principal | None:
        """Tornado's ``current_user``: computed once per request, on first use (the XSRF check may come
        before ``prepare``)."""
        return self.authenticate()

    def authenticate(self) -> Principal | None:
        """``authenticate_headers`` behind the failed-credential limit (429 before any guess is checked).

        A request that brings an API key, Bearer token or Basic password and comes out unauthenticated
        spends one token of its address's ``credentials`` limit (RATE_LIMIT_LOGIN_MAX per
        RATE_LIMIT_LOGIN_WINDOW); with none left, such requests are refused before they are checked.
        """
        if not self.config.auth_enabled:
            return self.authenticate_headers()
        guessing = self.carries_guessable_credentials()
        if guessing:
            self.refuse_when_exhausted(CREDENTIALS)
        principal = self.authenticate_headers()
        if guessing and principal is None:
            self.charge_failure(CREDENTIALS)
        return principal

    def refuse_when_exhausted(self, limit: str) -> None:
        """Raise ``Throttled`` when the client has nothing left of ``limit`` (spends nothing)."""
        throttle = self.throttles.get(limit)
        if throttle is not None:
            wait = throttle.retry_after(self.client_ip())
            if wait:
                self.report_throttled(limit, wait)
                raise Throttled(wait)

    def charge_failure(self, limit: str) -> None:
        """Spend one token of ``limit`` for a failure (the next request is refused if none is left)."""
        throttle = self.throttles.get(limit)
        if throttle is not None:
            throttle.take(self.client_ip())

    def apply_rate_limit(self, limit: str) -> None:
        """Spend one token of ``limit``, or raise ``Throttled`` when there is none."""
        throttle = self.throttles.get(limit)
        if throttle is None:
            return
        wait = throttle.take(self.client_ip())
        if wait:
            self.report_throttled(limit, wait)
            raise Throttled(wait)

    def apply_route_limits(self) -> None:
        """The general API limit (for an authenticated /api caller) and this route's own, if any."""
        if self.current_user is not None and self.request.path.startswith("/api/"):
            self.apply_rate_limit(API)
        limit = self.rate_limits.get(self.request.method or "")
        if limit is not None:
            self.apply_rate_limit(limit)

    def report_throttled(self, limit: str, wait: int) -> None:
        """One log line and one event per client, limit and window (not one per refused request)."""
        throttle = self.throttles.get(limit)
        ip = self.client_ip()
        if throttle is None or not throttle.first_refusal(ip):
            return
        log.warning("rate limit %r reached by %s: refusing for %d s", limit, ip, wait)
        self.events.publish("warn", f"Rate limit reached: {limit}",
                            {"limit": limit, "address": ip, "retryAfter": wait})

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

    # --- XSRF: a token bound to the login session -----------------------------------------------------

    def xsrf_cookie_name(self) -> str:
        """``__Host-xsrf`` over https, ``_xsrf`` over http (a __Host- cookie needs Secure)."""
        return XSRF_COOKIE_HTTPS if self.request.protocol == "https" else XSRF_COOKIE

    def _xsrf_mac(self, purpose: str, value: str) -> str:
        secret = self.application.settings["cookie_secret"]
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        return hmac.new(key, f"igloo-xsrf|{purpose}|{value}".encode(), hashlib.sha256).hexdigest()[:40]

    def _session_xsrf_token(self) -> str | None:
        """The token of the caller's login session (None without one)."""
        principal = self.principal
        if principal is None or principal.session_hash is None:
            return None
        return "s." + self._xsrf_mac("session", principal.session_hash.hex())

    def _valid_anonymous_token(self, token: str | None) -> bool:
        if not token or not token.startswith("a.") or token.count(".") != 2:
            return False
        _, seed, mac = token.split(".")
        return len(seed) == 32 and hmac.compare_digest(mac, self._xsrf_mac("anonymous", seed))

    @property
    def xsrf_token(self) -> bytes:
        """The XSRF token for this caller, also set as the XSRF cookie (which page scripts read).

        With a login session it is an HMAC of the session, so a planted cookie is worth nothing and a
        token dies with its session. Before login (login and onboarding forms, or AUTH_ENABLED=false) it is
        a random seed with its HMAC, checked against the cookie (a signed double submit).
        """
        cached: bytes | None = getattr(self, "_igloo_xsrf_token", None)
        if cached is not None:
            return cached
        name = self.xsrf_cookie_name()
        current = self.get_cookie(name)
        token = self._session_xsrf_token()
        if token is None:
            token = current if self._valid_anonymous_token(current) else None
            if token is None:
                seed = secrets.token_hex(16)
                token = f"a.{seed}.{self._xsrf_mac('anonymous', seed)}"
        if current != token:
            https = self.request.protocol == "https"
            self.set_cookie(name, token, path="/", samesite="Strict", secure=https, expires_days=None)
        self._igloo_xsrf_token: bytes = token.encode("ascii")
        return self._igloo_xsrf_token

    def refuse_cross_site(self) -> None:
        """403 for a state-changing request a browser made from another site (``Sec-Fetch-Site``).

        Browsers send the header on every request and pages cannot forge it; programs do not send it. It
        stops cross-site forms that ride on credentials a browser adds by itself (a cached Basic login).
        """
        fetch_site = self.request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCH:
            raise tornado.web.HTTPError(403, reason="Cross-site request refused")

    def check_xsrf_cookie(self) -> None:
        """Refuse cross-site requests; require the caller's XSRF token in ``_xsrf`` or X-XSRFToken."""
        self.refuse_cross_site()
        given = (self.get_argument("_xsrf", None) or self.request.headers.get("X-Xsrftoken")
                 or self.request.headers.get("X-Csrftoken"))
        if not given:
            raise tornado.web.HTTPError(403, "XSRF token missing")
        expected = self._session_xsrf_token()
        if expected is not None:
            ok = hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))
        else:
            cookie = self.get_cookie(self.xsrf_cookie_name())
            ok = (cookie is not None and self._valid_anonymous_token(given)
                  and hmac.compare_digest(given.encode("ascii", "replace"),
                                          cookie.encode("ascii", "replace")))
        if not ok:
            raise tornado.web.HTTPError(403, "XSRF token does not match this session")

    def cookie_authenticates(self) -> bool:
        """True when the session cookie alone identifies a live session (a browser is calling)."""
        session_id = self.session_from_cookie()
        return session_id is not None and self.principal_for_session(session_id, touch=False) is not None

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
        """Load the caller (cookie or credential headers, behind the failed-credential limit); 403 without
        this page's role; apply this page's request limit."""
        self.check_access()
        if self.current_user is not None:
            self.apply_route_limits()

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
            user = {"username": principal.username, "role": principal.role}
        context: dict[str, Any] = {
            "current_user": user,
            "can_admin": self.can_admin,
            "xsrf_form_html": lambda: Markup(self.xsrf_form_html()),  # noqa: S704 - tornado escapes it
            "static_url": self.static_url,
            "auth_enabled": self.config.auth_enabled,
            "version": VERSION,
            "request_path": self.request.path,
        }
        context.update(ctx)
        html = self.templates.get_template(name).render(**context)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)  # security headers (CSP, frame, referrer): handlers.gate.SecurityHeaders

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Show error.html (plain text if the template is unavailable)."""
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.reason:
            message = exc.reason
        reason = storage_failure(exc)
        retry_after = retry_after_of(exc)
        if retry_after is not None:
            self.set_header("Retry-After", str(retry_after))
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
    """JSON APIs: JSON errors; 401 unless authenticated (``public = True`` or ``access = "public"`` allows
    anyone)."""

    public = False
    max_body = MAX_BODY
    """Bytes a route's JSON body may have (the gate's limit; routes that take only small bodies set less)."""

    async def prepare(self) -> None:
        """Authenticate; refuse with 401 JSON when required and missing, 403 without the route's role; apply
        the request limits."""
        principal = self.current_user
        if principal is None and required_level(type(self), self.request.method or "GET") != PUBLIC:
            body = {"error": "Authentication required", "authMethods": self.auth_methods()}
            self.write_json(body, status=401)
            return
        self.check_access()
        if principal is not None and principal.session_hash is not None:
            expected = self._session_xsrf_token()
            if self.get_cookie(self.xsrf_cookie_name()) != expected:
                self.xsrf_token  # noqa: B018 - sets the cookie: a script's next POST needs the session's token
        self.apply_route_limits()

    def check_xsrf_cookie(self) -> None:
        """Header credentials (API key, Bearer, Basic, X-Session-ID) need no XSRF token, unless the session
        cookie authenticates the request on its own: then a browser is calling, and a wrong or extra header
        does not excuse it. Nor does a request without the session cookie while auth is on: it has nothing to
        forge, and ``prepare`` answers 401 (Igloo Server's AUTH_REQUIRED) instead of a 403."""
        self.refuse_cross_site()
        if self.has_header_credentials() and not self.cookie_authenticates():
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

    def body(self) -> dict[str, Any]:
        """The JSON object body (413 when larger than ``max_body``)."""
        if len(self.request.body or b"") > self.max_body:
            raise tornado.web.HTTPError(413, reason="Request too large")
        return self.read_json()

    def fail(self, status: int, message: str, **extra: Any) -> None:
        """Finish with ``{error, ...}``."""
        self.write_json({"error": message, **extra}, status=status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON ``{error}``; a storage fault (locked database, full disk) is a 503 naming it."""
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.reason:
            message = exc.reason
        reason = storage_failure(exc)
        retry_after = retry_after_of(exc)
        if retry_after is not None:
            self.set_header("Retry-After", str(retry_after))
        if reason is not None:
            self.set_status(STORAGE_ERROR_STATUS)
            self.set_header("Retry-After", "5")
            message = f"Storage unavailable: {reason}"
        elif status_code >= 500:
            message = "Internal server error"
        self.write_json({"error": message}, status=self.get_status())  # subclasses may add fields
