"""Login, logout and first-admin onboarding: HTML pages and the /api/auth/* JSON endpoints."""

from __future__ import annotations

import base64
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handlers.base import ApiHandler, AuthMixin, BaseHandler, Principal, constant_time_equal
from handlers.openapi import BOOL, INT, STR, arr, obj, op
from handlers.roles import PUBLIC
from node import Clock
from relay import address_key
from store.users import User, UserError

SETUP_TOKEN_FILE = "setup-token"  # noqa: S105 - a file name, not a secret
LOCKED_MESSAGE = (
    "Onboarding is locked: set ADMIN_SECRET in the server's environment and restart Igloo, "
    "or create the account on the server with: igloo-server adduser NAME"
)


# What an attempt without a username guesses, counted like an account of its own per address (names cannot
# hold a NUL, so these never meet a real account's count).
API_KEY_SUBJECT = "\x00api-key"
ADMIN_SECRET_SUBJECT = "\x00admin-secret"  # noqa: S105 - a label, not a secret
ADDRESS_FACTOR = 10  # attempts per address across usernames, in units of RATE_LIMIT_LOGIN_MAX
MAX_KEYS = 20_000  # addresses and (address, username) pairs remembered at once


class LoginLimiter:
    """Login attempts per (address, username) and per address, in a sliding window of ``clock`` seconds.

    An attempt is counted when it *starts* (``begin``), so concurrent attempts cannot all slip in while the
    first ones wait for bcrypt; a successful one is withdrawn (``succeeded``). Keying on the username too
    means one address guessing one account cannot lock every user behind the same address out; the
    address-wide count (``ADDRESS_FACTOR`` times as many) still bounds spraying many usernames and the
    bcrypt work one address can cause. Memory: at most ``max_keys`` keys of at most ``max`` stamps each;
    when all are in use (a spray of addresses), a new key is refused until the oldest frees up.
    """

    def __init__(self, max_failures: int, window: float, clock: Clock = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._attempts)

    def _live(self, key: str, now: float) -> deque[float] | None:
        stamps = self._attempts.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._attempts[key]
            return None
        return stamps

    def _wait(self, stamps: deque[float] | None, limit: int, now: float) -> int:
        if stamps is None or len(stamps) < limit:
            return 0
        return max(1, math.ceil(stamps[-limit] + self.window - now))

    def _room_for(self, new_keys: int, now: float) -> int:
        """0 when ``new_keys`` more keys fit (after dropping expired ones), else seconds until one may."""
        while self._attempts and len(self._attempts) + new_keys > self.max_keys:
            oldest_key, oldest = next(iter(self._attempts.items()))
            if self._live(oldest_key, now) is not None:
                return max(1, math.ceil(oldest[0] + self.window - now))
        return 0

    @staticmethod
    def pair(address: str, username: str) -> str:
        """The key of one address trying one username (case-insensitive)."""
        return f"{address}|{username.strip().lower()[:64]}"

    def retry_after(self, address: str, username: str | None = None) -> int:
        """Seconds until ``address`` (trying ``username``) may try again; 0 = now."""
        now = self._clock()
        wait = self._wait(self._live(address, now), ADDRESS_FACTOR * self.max_failures, now)
        if username is not None:
            pair = self._live(self.pair(address, username), now)
            wait = max(wait, self._wait(pair, self.max_failures, now))
        return wait

    def begin(self, address: str, username: str | None = None) -> int:
        """Count an attempt now; return 0 when it may go ahead, else the seconds to wait (nothing counted)."""
        wait = self.retry_after(address, username)
        if wait:
            return wait
        now = self._clock()
        keys = [address] if username is None else [address, self.pair(address, username)]
        wait = self._room_for(sum(1 for key in keys if key not in self._attempts), now)
        if wait:
            return wait
        for key in keys:
            self._attempts.setdefault(key, deque()).append(now)
            self._attempts.move_to_end(key)
        return 0

    def succeeded(self, address: str, username: str | None = None) -> None:
        """Withdraw the attempt that just succeeded; a correct password also forgives its pair's failures."""
        if username is not None:
            self._attempts.pop(self.pair(address, username), None)
        self._drop_latest(address)

    def withdraw(self, address: str, username: str | None = None) -> None:
        """Take back an attempt that was refused before any guess was checked (nothing forgiven)."""
        self._drop_latest(address)
        if username is not None:
            self._drop_latest(self.pair(address, username))

    def _drop_latest(self, key: str) -> None:
        stamps = self._attempts.get(key)
        if stamps:
            stamps.pop()
            if not stamps:
                del self._attempts[key]


@dataclass(frozen=True)
class LoginOutcome:
    """Result of a login attempt: a user, or an HTTP status with a message safe to show."""

    user: User | None
    status: int = 200
    error: str | None = None
    retry_after: int = 0


def safe_next(value: str | None) -> str:
    """Accept ``next`` only as a same-site absolute path; anything else becomes /dashboard."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/dashboard"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/dashboard"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/dashboard"
    return value


def announce_logout(handler: AuthMixin) -> None:
    """Publish a logout event for a session user (API-key callers have nothing to log out)."""
    principal = handler.principal
    if principal is not None and principal.kind == "session":
        handler.events.publish("info", "User logged out", {"username": principal.username})


def setup_token_path(data_dir: Path) -> Path:
    """Where the one-time onboarding token lives when ADMIN_SECRET is not set."""
    return data_dir / SETUP_TOKEN_FILE


def onboarding_secret(handler: AuthMixin) -> str | None:
    """ADMIN_SECRET, else the one-time setup token in DATA_DIR (written at start-up), else None."""
    if handler.config.admin_secret is not None:
        return handler.config.admin_secret
    try:
        return setup_token_path(handler.config.data_dir).read_text().strip() or None
    except OSError:
        return None


class LoginMixin(BaseHandler):
    """The login steps shared by the HTML form and the JSON endpoint."""

    access = PUBLIC  # login and onboarding are for callers who are not signed in

    @property
    def limiter(self) -> LoginLimiter:
        """The per-address failed-login limiter."""
        value: LoginLimiter = self.application.settings["login_limiter"]
        return value

    async def attempt_login(self, username: object, password: object) -> LoginOutcome:
        """Count the attempt (429 when over the limit), validate, verify with bcrypt (in an executor).

        The attempt is counted before the bcrypt wait, so concurrent guesses cannot all be evaluated. A
        failure is published with the address only: the typed name is often a password typed in the wrong
        field, and it is never stored or shown.
        """
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return LoginOutcome(None, 400, "Username and password are required")
        ip = address_key(self.client_ip())  # an IPv6 client counts by its /64
        wait = self.limiter.begin(ip, username)
        if wait:
            return LoginOutcome(None, 429, "Too many login attempts. Please try again later.", wait)
        try:
            user = await self.users.verify(username, password)
        except UserError as exc:
            self.limiter.withdraw(ip, username)  # refused unchecked (too long): no guess was made
            return LoginOutcome(None, 400, str(exc))
        if user is None:
            self.events.publish("warn", "Login failed", {"address": ip})
            return LoginOutcome(None, 401, "Invalid credentials")
        self.limiter.succeeded(ip, username)
        self.events.publish("info", "User logged in", {"username": user.username, "address": ip})
        return LoginOutcome(user)

    def start_session(self, user: User) -> str:
        """Create a session row and set the cookie; return the session id."""
        session_id = self.sessions.create(user.id, self.client_ip())
        self.set_session_cookie(session_id)
        return session_id


class LoginPage(LoginMixin):
    """GET/POST /login (HTML form, XSRF-protected)."""

    def get(self) -> None:
        """Show the form (or go on when already logged in / nothing to log in to)."""
        next_path = safe_next(self.get_argument("next", None))
        if not self.config.auth_enabled or (self.principal and self.principal.kind == "session"):
            self.redirect(next_path)
            return
        if self.users.count() == 0:
            self.redirect("/onboarding")
            return
        self.render_page("login.html", error=None, next=next_path, username="")

    async def post(self) -> None:
        """Check the password; on success set the cookie and redirect to ``next``."""
        next_path = safe_next(self.get_body_argument("next", None))
        username = self.get_body_argument("username", "")
        outcome = await self.attempt_login(username, self.get_body_argument("password", ""))
        if outcome.user is None:
            self.set_status(outcome.status)
            if outcome.retry_after:
                self.set_header("Retry-After", str(outcome.retry_after))
            self.render_page("login.html", error=outcome.error, next=next_path, username=username[:64])
            return
        self.start_session(outcome.user)
        self.redirect(next_path)


class LogoutPage(BaseHandler):
    """POST /logout (form with _xsrf): end the session everywhere, back to /login."""

    access = PUBLIC

    def post(self) -> None:
        """Log out."""
        announce_logout(self)
        self.end_session(self.principal)
        self.redirect("/login")


class OnboardingPage(LoginMixin):
    """GET/POST /onboarding: create the first administrator, guarded by ADMIN_SECRET."""

    def get(self) -> None:
        """Show the form, or instructions when ADMIN_SECRET is not set."""
        if self.users.count() > 0:
            self.redirect("/login")
            return
        self.render_onboarding(None)

    def expected_secret(self) -> str | None:
        """ADMIN_SECRET, else the one-time setup token in DATA_DIR (written at start-up), else None."""
        return onboarding_secret(self)

    def render_onboarding(self, error: str | None) -> None:
        """Render onboarding.html; ``needs_secret`` asks the form for ADMIN_SECRET or the setup token.

        With neither, the page is locked and ``error`` explains how to unlock it (or use adduser);
        ``secret_configured`` tells the template whether the form can succeed at all.
        """
        configured = self.expected_secret() is not None
        if not configured and error is None:
            error = LOCKED_MESSAGE
        uses_token = configured and self.config.admin_secret is None
        # Named, not spelled out: the absolute path tells an anonymous visitor where Igloo is installed (the
        # start-up log gives the operator the full path).
        self.render_page(
            "onboarding.html", error=error, needs_secret=configured, secret_configured=configured,
            setup_token_path=f"DATA_DIR/{SETUP_TOKEN_FILE}" if uses_token else None,
        )

    async def post(self) -> None:
        """Check the admin secret, create the account, log it in."""
        if self.users.count() > 0:
            self.redirect("/login")
            return
        expected = self.expected_secret()
        if expected is None:
            self.set_status(403)
            self.render_onboarding(LOCKED_MESSAGE)
            return
        ip = address_key(self.client_ip())
        wait = self.limiter.begin(ip, ADMIN_SECRET_SUBJECT)
        if wait:
            self.set_status(429)
            self.set_header("Retry-After", str(wait))
            self.render_onboarding("Too many attempts. Please try again later.")
            return
        if not constant_time_equal(self.get_body_argument("admin_secret", ""), expected):
            self.set_status(401)
            self.render_onboarding("The admin secret (or setup token) is not correct")
            return
        try:
            user = await self.users.create(
                self.get_body_argument("username", ""),
                self.get_body_argument("password", ""),
                only_if_first=True,
            )
        except UserError as exc:
            self.limiter.succeeded(ip, ADMIN_SECRET_SUBJECT)  # the secret was right, the account details not
            self.set_status(400)
            self.render_onboarding(str(exc))
            return
        self.limiter.succeeded(ip, ADMIN_SECRET_SUBJECT)
        setup_token_path(self.config.data_dir).unlink(missing_ok=True)  # one use only
        self.events.publish("info", "Administrator account created", {"username": user.username})
        self.start_session(user)
        self.redirect("/dashboard")


NO_SESSION_WARNING = (
    "No session is created for {what}: send it with every request "
    "(X-API-Key or Authorization: Bearer for a key, Authorization: Basic for Basic credentials)"
)


class LoginApi(ApiHandler, LoginMixin):
    """POST /api/auth/login, Igloo Server's shapes.

    ``{username, password}`` of an account → ``{success, userId, expiresIn, sessionId}`` plus the cookie
    (``expiresIn`` in milliseconds, as Igloo Server). ``{apiKey}``, or the BASIC_AUTH_USER/PASS pair, is
    checked like the headers are, but sessions belong to accounts here: the answer is Igloo Server's
    no-session shape ``{success, userId, warning}``, and the client keeps sending its credential.
    """

    openapi = {"post": op("Log in: a session cookie and its id", errors=(400, 401, 415, 429),
                          request=obj({"username": STR, "password": STR}, ["username", "password"]),
                          example={"username": "alice", "password": "correct horse battery"},
                          description="`{apiKey}` (or the Basic pair as username and password) is "
                                      "accepted too, without a session: `{success, userId, warning}`. "
                                      "`expiresIn` is in milliseconds.",
                          ok=obj({"success": BOOL, "userId": STR, "expiresIn": INT, "sessionId": STR,
                                  "warning": STR}, ["success"]))}

    public = True

    def check_xsrf_cookie(self) -> None:
        """No XSRF token here: ``read_json`` insists on application/json, which no cross-site form can send
        without a CORS preflight (and Igloo answers none)."""

    async def post(self) -> None:
        """Log in and set the session cookie (an address already over the limit is refused unparsed)."""
        wait = self.limiter.retry_after(address_key(self.client_ip()))
        if wait:
            self.set_header("Retry-After", str(wait))
            self.write_json({"success": False, "error": "Too many login attempts. Please try again later."},
                            status=429)
            return
        body = self.read_json()
        if not self.config.auth_enabled:
            self.write_json({"success": True, "userId": "anonymous", "expiresIn": 0})
            return
        api_key = body.get("apiKey")
        if isinstance(api_key, str) and api_key.strip():
            self.finish_without_session(self.attempt_key_login(api_key.strip()), "an API key")
            return
        username, password = body.get("username"), body.get("password")
        basic = self.basic_login(username, password)
        if basic is not None:
            self.finish_without_session(basic, "Basic credentials")
            return
        outcome = await self.attempt_login(username, password)
        if outcome.user is None:
            self.write_failure(outcome)
            return
        session_id = self.start_session(outcome.user)
        self.write_json(
            {
                "success": True,
                "userId": str(outcome.user.id),
                "expiresIn": self.config.session_timeout * 1000,
                "sessionId": session_id,
            }
        )

    def write_failure(self, outcome: LoginOutcome) -> None:
        """``{success: false, error}`` with the outcome's status (and Retry-After when limited)."""
        if outcome.retry_after:
            self.set_header("Retry-After", str(outcome.retry_after))
        self.write_json({"success": False, "error": outcome.error}, status=outcome.status)

    def attempt_key_login(self, token: str) -> LoginOutcome | Principal:
        """Check an API key as request headers are checked, counted by the login limiter when it starts."""
        ip = address_key(self.client_ip())
        wait = self.limiter.begin(ip, API_KEY_SUBJECT)
        if wait:
            return LoginOutcome(None, 429, "Too many login attempts. Please try again later.", wait)
        principal = self.principal_for_api_key(token)
        if principal is None:
            self.events.publish("warn", "Login failed", {"method": "api-key", "address": ip})
            return LoginOutcome(None, 401, "Invalid credentials")
        self.limiter.succeeded(ip, API_KEY_SUBJECT)
        return principal

    def basic_login(self, username: object, password: object) -> Principal | None:
        """The BASIC_AUTH_USER/BASIC_AUTH_PASS pair given as a login (accepted by Igloo Server too)."""
        if not isinstance(username, str) or not isinstance(password, str) or not self.config.basic_auth_user:
            return None
        if self.limiter.retry_after(address_key(self.client_ip()), username):
            return None  # the account path below answers 429
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return self.principal_for_basic(f"Basic {token}")

    def finish_without_session(self, result: LoginOutcome | Principal, what: str) -> None:
        """Answer a credential login: Igloo Server's no-session success, or the failure."""
        if isinstance(result, LoginOutcome):
            self.write_failure(result)
            return
        self.events.publish("info", "Login accepted without a session",
                            {"method": result.kind, "address": self.client_ip()})
        self.write_json({"success": True, "userId": result.username,
                         "warning": NO_SESSION_WARNING.format(what=what)})


class LogoutApi(ApiHandler):
    """POST (or GET, as Igloo Server) /api/auth/logout: end the session (cookie POSTs send X-XSRFToken)."""

    openapi = {m: op("Log out (the session and its event sockets end)",
                     ok=obj({"success": BOOL}, ["success"])) for m in ("post", "get")}

    public = True

    def post(self) -> None:
        """Log out (succeeds even when not logged in)."""
        announce_logout(self)
        self.end_session(self.principal)
        self.write_json({"success": True})

    def get(self) -> None:
        """Igloo Server answers logout on any method. A GET carries the SameSite=Strict cookie only from this
        site's own pages, so another site cannot log a user out with it."""
        self.post()


class AuthStatusApi(ApiHandler):
    """GET /api/auth/status: Igloo Server's ``{enabled, methods, rateLimiting, sessionTimeout}`` and Igloo's
    ``{authenticated, authEnabled, username?, expiresIn?}`` (``expiresIn``: milliseconds left)."""

    openapi = {"get": op("Who the caller is, and how one may authenticate",
                         ok=obj({"enabled": BOOL, "methods": arr(STR), "rateLimiting": BOOL,
                                 "sessionTimeout": INT, "authenticated": BOOL, "authEnabled": BOOL,
                                 "username": STR, "expiresIn": INT}, ["authenticated", "authEnabled"]))}

    public = True

    def get(self) -> None:
        """Report the authentication setup and who the caller is."""
        principal: Principal | None = self.principal
        config = self.config
        body: dict[str, object] = {
            "enabled": config.auth_enabled,
            "methods": self.auth_methods(),
            "rateLimiting": config.rate_limit_enabled,
            "sessionTimeout": config.session_timeout,
            "authenticated": principal is not None,
            "authEnabled": config.auth_enabled,
        }
        if principal is not None:
            body["username"] = principal.username
            if principal.expires_at is not None:
                body["expiresIn"] = max(0, int((principal.expires_at - self.sessions.clock()) * 1000))
        self.write_json(body)


ONBOARDING_REFUSED = {"error": "Authentication failed"}  # Igloo Server's uniform answer


class OnboardingStatusApi(ApiHandler):
    """GET /api/onboarding/status (Igloo Server's shape)."""

    openapi = {"get": op("Whether the first account exists (Igloo Server's onboarding)",
                         ok=obj({"initialized": BOOL, "hasAdminSecret": BOOL, "headlessMode": BOOL,
                                 "skipAdminValidation": BOOL}, ["initialized", "hasAdminSecret"]))}

    public = True

    def get(self) -> None:
        """``{initialized, hasAdminSecret, headlessMode, skipAdminValidation}``; the setup token counts as
        the admin secret (it is what /onboarding asks for when ADMIN_SECRET is not set)."""
        self.write_json({
            "initialized": self.users.count() > 0,
            "hasAdminSecret": onboarding_secret(self) is not None,
            "headlessMode": False,
            "skipAdminValidation": False,
        })


class OnboardingSecretApi(ApiHandler, LoginMixin):
    """POST /api/onboarding/validate-admin and /api/onboarding/setup with ``Authorization: Bearer <secret>``
    (ADMIN_SECRET or the setup token), as on Igloo Server: check the secret, and for setup create the first
    account ``{username, password}`` (no session: log in afterwards)."""

    openapi = {"post": op(
        "Onboarding with Authorization: Bearer <ADMIN_SECRET or setup token>",
        description="`/api/onboarding/validate-admin` checks the secret; `/api/onboarding/setup` also "
                    "creates the first account (an administrator) from `{username, password}`.",
        request=obj({"username": STR, "password": STR}),
        example={"username": "alice", "password": "a long passphrase"},
        ok=obj({"success": BOOL, "message": STR}, ["success"]),
        responses={401: ("Authentication failed", obj({"error": STR, "authMethods": arr(STR)}, ["error"])),
                   409: ("An account already exists", obj({"error": STR, "message": STR}, ["error"]))},
        errors=(400, 429),
    )}

    public = True

    def initialize(self, mode: str) -> None:
        """``mode``: ``validate`` or ``setup``."""
        self.mode = mode

    def carries_guessable_credentials(self) -> bool:
        """``Authorization: Bearer`` carries the admin secret here, counted by the login limiter in ``post``,
        not an API key to count as a failed one."""
        scheme = self.request.headers.get("Authorization", "").split(None, 1)[:1]
        if scheme and scheme[0].lower() == "bearer" and "X-API-Key" not in self.request.headers:
            return False
        return super().carries_guessable_credentials()

    async def post(self) -> None:
        """Check the bearer secret (counted by the login limiter when it starts, compared in constant time),
        then validate or create the account."""
        ip = address_key(self.client_ip())
        wait = self.limiter.begin(ip, ADMIN_SECRET_SUBJECT)
        if wait:
            self.set_header("Retry-After", str(wait))
            self.write_json({"error": "Too many attempts. Please try again later."}, status=429)
            return
        expected = onboarding_secret(self)
        header = self.request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if self.users.count() > 0 or expected is None or not constant_time_equal(given, expected):
            self.write_json({**ONBOARDING_REFUSED, "authMethods": ["bearer"]}, status=401)
            return
        self.limiter.succeeded(ip, ADMIN_SECRET_SUBJECT)  # the secret was right
        if self.mode == "validate":
            self.write_json({"success": True, "message": "Admin secret validated"})
            return
        body = self.read_json()
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            self.write_json({"error": "invalid_input", "message": "Username and password must be strings"},
                            status=400)
            return
        try:
            user = await self.users.create(username.strip(), password, only_if_first=True)
        except UserError as exc:
            status = 409 if "taken" in str(exc) or "already exists" in str(exc) else 400
            self.write_json({"error": "invalid_input", "message": str(exc)}, status=status)
            return
        setup_token_path(self.config.data_dir).unlink(missing_ok=True)  # one use only
        self.events.publish("info", "Administrator account created", {"username": user.username})
        self.write_json({"success": True, "message": "Setup complete"})


ROUTES: list[tuple[Any, ...]] = [
    (r"/login", LoginPage),
    (r"/logout", LogoutPage),
    (r"/onboarding", OnboardingPage),
    (r"/api/auth/login", LoginApi),
    (r"/api/auth/logout", LogoutApi),
    (r"/api/auth/status", AuthStatusApi),
    (r"/api/onboarding/status", OnboardingStatusApi),
    (r"/api/onboarding/validate-admin", OnboardingSecretApi, {"mode": "validate"}),
    (r"/api/onboarding/setup", OnboardingSecretApi, {"mode": "setup"}),
]
