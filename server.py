"""Igloo's composition root and command line: settings → store → event hub → (node) → Application.

``igloo-server [serve]`` runs the server; ``adduser``, ``keygen``, ``recover`` and ``import-igloo-server``
are one-shot commands.
``python server.py`` is the same as ``igloo-server serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import signal
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import jinja2
import tornado.web

from config import igloo_server
from config.settings import ConfigError, Settings
from config.startup import cookie_secret, load_environment, read_or_create_secret_file, with_credentials_key
from handlers import pages, routes
from handlers.auth import LoginLimiter, setup_token_path
from handlers.base import VERSION
from handlers.connections import build_http_server
from handlers.event_frames import CLOSE_GOING_AWAY
from handlers.event_hub import EventHub
from handlers.events import MAX_CLIENT_FRAME, EventStreamHandler
from handlers.form_tokens import FormTokens
from handlers.gate import IglooApplication
from handlers.keys import recovery_limiter
from handlers.throttle import Throttles
from node import Clock, NodeManager, NodeOptions, keytools, nip46, validate
from relay import RelayLimits, RelayState, WritePolicy
from store.activity import ActivityStore
from store.apikeys import ApiKeyStore
from store.credentials import CredentialStore
from store.db import Database
from store.events import EventRing
from store.keyset import KeysetNameStore
from store.nip46 import Nip46Store
from store.policies import SqliteBudgetLedger, SqlitePolicyStore
from store.relays import RelayListStore
from store.sessions import SessionStore
from store.users import ADMIN, BCRYPT_ROUNDS, ROLES, UserError, UserStore

ROOT = Path(__file__).resolve().parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
SHUTDOWN_GRACE = 3.0  # seconds allowed for sockets to finish their closing handshake

log = logging.getLogger("igloo")
access_log = logging.getLogger("igloo.access")


def open_state(config: Settings, clock: Clock = time.time) -> tuple[Database, EventHub]:
    """Open the database under DATA_DIR and the event hub over its persisted ring.

    ``clock`` (wall-clock seconds) times the login sessions; tests pass one they can move.
    """
    db = Database.open_in(config.data_dir)
    sessions = SessionStore(db, config.session_timeout, clock=clock)
    ring = EventRing(db, config.event_buffer_size)
    hub = EventHub(config, ring, sessions, open_sockets=EventStreamHandler.open_sockets)
    return db, hub


class RedactRelayUrls(logging.Filter):
    """Takes credentials out of relay URLs in every log line (``ws://user:pass@host/?auth=…``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with ``node.validate.redact_urls``; never drops a record."""
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = validate.redact_urls(message), None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add ``RedactRelayUrls`` to every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactRelayUrls) for f in handler.filters):
            handler.addFilter(RedactRelayUrls())


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log line: status, method, path (never the query string: it may hold credentials), time."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.1fms",
        status,
        request.method,
        request.path,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def build_application(
    config: Settings,
    db: Database,
    events: EventHub,
    node: Any | None = None,
    *,
    bunker: nip46.Bunker | None = None,
    bcrypt_rounds: int = BCRYPT_ROUNDS,
    extra_settings: dict[str, Any] | None = None,
) -> tornado.web.Application:
    """The Tornado Application with every shared object in its settings.

    ``node`` (a NodeService or None) is reached by handlers as ``self.node``; /api/status merges
    ``node.status()`` into its document.
    """
    sessions = events.sessions or SessionStore(db, config.session_timeout)
    # StrictUndefined: a template naming a variable or include that is not there fails (and its test
    # with it) instead of rendering an empty string.
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    settings: dict[str, Any] = {
        "db": db,
        "events": events,
        "node": node,
        "bunker": bunker,
        "users": UserStore(db, rounds=bcrypt_rounds),
        "api_keys": ApiKeyStore(db),
        "keyset_name": KeysetNameStore(db),
        "recovery_limiter": recovery_limiter(),
        "form_tokens": FormTokens(),
        "sessions": sessions,
        "templates": templates,
        "login_limiter": LoginLimiter(config.rate_limit_login_max, config.rate_limit_login_window),
        "throttles": Throttles.from_config(config),
        "started_at": time.monotonic(),
        "cookie_secret": cookie_secret(config),
        "xsrf_cookies": True,  # the token itself: AuthMixin.xsrf_token (bound to the login session)
        "static_path": str(STATIC_DIR),
        "static_url_prefix": "/static/",
        "log_function": log_request,
        "websocket_ping_interval": config.ws_ping_interval or None,
        "websocket_ping_timeout": config.ws_ping_timeout,
        "websocket_max_message_size": MAX_CLIENT_FRAME,
        "compress_response": False,
        "default_handler_class": pages.NotFoundPage,
        "relay": build_relay(config, node, bunker),
    }
    settings.update(extra_settings or {})
    return IglooApplication(routes.ROUTES, config, **settings)


class GroupMembers:
    """The running group's member pubkeys (this node's share key and its peers), for the relay's policy.

    ``node`` is a NodeManager (its ``service`` changes with credentials and the demo), a NodeService, or
    None. Called once per relay EVENT, so the set is rebuilt only when the service changes.
    """

    def __init__(self, node: Any | None) -> None:
        self._node = node
        self._service: Any = None
        self._members: frozenset[str] = frozenset()

    def __call__(self) -> Collection[str]:
        node = self._node
        service = getattr(node, "service", node) if node is not None else None
        if service is not self._service:
            self._service = service
            pubkey, peers = getattr(service, "pubkey", None), getattr(service, "peers", ())
            self._members = frozenset([pubkey, *peers]) if pubkey else frozenset()
        return self._members


def build_relay(config: Settings, node: Any | None = None, bunker: Any | None = None) -> RelayState:
    """The embedded relay's state from the RELAY_* settings.

    In ``signer`` mode it takes what this signer needs: events of the node's current group, and NIP-46
    traffic to or from the bunker's current transport key (read per event, so a rotated key applies at once).
    """

    def transport_keys() -> Collection[str]:
        pubkey = getattr(bunker, "pubkey", None)
        return (pubkey,) if pubkey else ()

    limits = RelayLimits(**config.relay_limits())
    policy = WritePolicy(config.relay_write, members=GroupMembers(node), nip46_keys=transport_keys)
    return RelayState(limits, policy)


def startup_warnings(config: Settings) -> list[str]:
    """Loud warnings about risky configurations (no secret values)."""
    warnings = []
    if not config.auth_enabled:
        if config.is_loopback:
            warnings.append("AUTH_ENABLED=false: every route is open to anyone who can reach this machine")
        else:
            warnings.append(
                f"!!! AUTH_ENABLED=false while listening on {config.host_name}: EVERY ROUTE IS OPEN TO THE "
                "NETWORK, including signing. Set AUTH_ENABLED=true or HOST_NAME=127.0.0.1 !!!"
            )
    return warnings


# Seconds after a node starts before it pings its peers for the first time.
FIRST_PING_DELAY = 2.0


def build_node(config: Settings, db: Database, hub: EventHub) -> NodeManager:
    """The signing node's manager, wired to the one event publisher and the stores."""
    options = NodeOptions(
        sign_timeout=config.sign_timeout,
        ping_interval=config.peer_ping_interval,
        first_ping_delay=min(FIRST_PING_DELAY, config.peer_ping_interval),
        sign_budget=config.sign_budget,
        sign_budget_window=config.sign_budget_window,
        approval_mode=config.approval_mode,
    )
    credentials = CredentialStore(db, config.credentials_key) if config.credentials_key else None
    return NodeManager(
        emit=hub.publish,
        options=options,
        default_relays=list(config.effective_relays),
        env_group=config.group_cred,
        env_share=config.share_cred,
        credential_store=credentials,
        policy_store=SqlitePolicyStore(db),
        budget_ledger=SqliteBudgetLedger(db, keep=config.sign_budget_window),
        demo_enabled=config.demo_enabled,
        peer_policies=config.peer_policies,
        relay_store=RelayListStore(db),
        relays_from_env=bool(config.relays),
        exposed=not config.is_loopback,
        activity=ActivityStore(db),
    )


def build_bunker(config: Settings, db: Database, hub: EventHub, node: NodeManager) -> nip46.Bunker | None:
    """The NIP-46 bunker on the node (None when NIP46_ENABLED=false or there is no credentials key)."""
    if not config.nip46_enabled or config.credentials_key is None:
        return None
    options = nip46.BunkerOptions(
        relays=config.nip46_relays,
        secret_ttl=float(config.nip46_secret_ttl),
        request_ttl=float(config.nip46_request_ttl),
        retention_days=config.nip46_retention_days,
        max_pending=config.nip46_max_pending,
        client_rate=float(config.nip46_client_rate),
        client_burst=10.0 * config.nip46_client_rate,
        stranger_rate=float(config.nip46_stranger_rate),
        clock_skew=config.nip46_clock_skew,
        auth_url=config.nip46_auth_url,
        session_limit=config.nip46_session_rate_limit_max,
        session_window=float(config.nip46_session_rate_limit_window),
    )
    return nip46.Bunker(nip46.NodeSigner(node), Nip46Store(db, config.credentials_key), emit=hub.publish,
                        options=options)


async def serve(config: Settings, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; return the exit code."""
    db, hub = open_state(config)
    node = build_node(config, db, hub)
    bunker = build_bunker(config, db, hub, node)
    app = build_application(config, db, hub, node, bunker=bunker)
    server = build_http_server(app, config)
    server.listen(config.host_port, config.host_name)
    hub.start()
    purged = hub.sessions.purge_expired() if hub.sessions else 0
    for warning in startup_warnings(config):
        log.warning("%s", warning)
    if config.admin_secret is None and app.settings["users"].count() == 0:
        token_file = setup_token_path(config.data_dir)
        read_or_create_secret_file(token_file, 16, hex_text=True)
        log.warning("No account yet: open http://%s:%d/onboarding and enter the setup token stored in %s "
                    "(or run: igloo-server adduser NAME)", config.host_name, config.host_port, token_file)
    log.info("Igloo %s listening on http://%s:%d/ (data in %s)", VERSION, config.host_name,
             config.host_port, config.data_dir)
    hub.publish("system", "Igloo server started", {"version": VERSION, "expiredSessionsRemoved": purged})
    await node.boot()
    if bunker is not None:
        # Listens whenever the node runs (from now on), following credential and relay changes by itself.
        await bunker.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()

    log.info("shutting down")
    server.stop()
    if bunker is not None:
        await bunker.stop()
    await node.stop()
    closed = hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
    app.settings["relay"].close_all()
    deadline = loop.time() + SHUTDOWN_GRACE
    while hub.sockets_pending_close() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=SHUTDOWN_GRACE)
    except TimeoutError:
        log.warning("some HTTP connections did not close in time")
    hub.stop()
    db.close()
    log.info("stopped (%d event sockets closed)", closed)
    return 0


def read_new_password(from_stdin: bool) -> str:
    """The password for ``adduser``: one line from stdin, or typed twice at a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("Passwords do not match")
    return first


def cmd_adduser(config: Settings, name: str, from_stdin: bool, role: str | None = None) -> int:
    """Create an account in DATA_DIR's database: an administrator when it is the first one or ``role`` says
    so, else a user."""
    db = Database.open_in(config.data_dir)
    try:
        users = UserStore(db)
        first = users.count() == 0
        if first and role not in (None, ADMIN):
            raise UserError("the first account is an administrator: leave out --role or use --role admin")
        user = users.create_sync(name, read_new_password(from_stdin), role or ("admin" if first else "user"))
    except UserError as exc:
        print(f"igloo-server: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    # The one-time onboarding token has nothing left to unlock once an account exists.
    setup_token_path(config.data_dir).unlink(missing_ok=True)
    print(f"Created {'administrator' if user.is_admin else 'user'} {user.username!r}")
    return 0


def cmd_keygen(threshold: int, total: int, nsec: str | None) -> int:
    """Print what node.keytools.keygen returns, as JSON."""
    try:
        secret = sys.stdin.readline().strip() if nsec == "-" else nsec
        result = keytools.keygen(threshold=threshold, total=total, secret=secret)
    except ValueError as exc:
        print(f"igloo-server: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def cmd_recover(group: str, shares: list[str]) -> int:
    """Print what node.keytools.recover returns."""
    try:
        result = keytools.recover(group=group, shares=shares)
    except ValueError as exc:
        print(f"igloo-server: {exc}", file=sys.stderr)
        return 1
    print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="igloo-server", description="Igloo: an always-on FROSTR signer")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    add = sub.add_parser("adduser", help="create a login account")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--role", choices=ROLES, default=None,
                     help="admin or user (default: admin for the first account, user after it)")
    keygen = sub.add_parser("keygen", help="generate a k-of-n share set")
    keygen.add_argument("--threshold", type=int, required=True)
    keygen.add_argument("--total", type=int, required=True)
    keygen.add_argument(
        "--nsec", default=None, help="split this existing key (nsec or hex; '-' reads it from stdin)"
    )
    imp = sub.add_parser("import-igloo-server",
                         help="import credentials, relays and peer policies from Igloo Server")
    imp.add_argument("path", type=Path, help="Igloo Server's directory, its data/igloo.db or its .env")
    imp.add_argument("--user", default=None, help="the database user whose credentials to import")
    imp.add_argument("--password-stdin", action="store_true", help="read that user's password from stdin")
    imp.add_argument("--replace", action="store_true", help="overwrite credentials Igloo already stores")
    recover = sub.add_parser("recover", help="recover the secret key from threshold shares")
    recover.add_argument("--group", required=True)
    recover.add_argument("--share", action="append", required=True, dest="shares")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``igloo-server`` and ``python server.py``."""
    args = parse_args(argv)
    command = args.command or "serve"
    if command == "keygen":
        return cmd_keygen(args.threshold, args.total, args.nsec)
    if command == "recover":
        return cmd_recover(args.group, args.shares)
    try:
        environ = load_environment()
        config = Settings.from_env(environ)
        if command == "serve":
            config = with_credentials_key(config)
    except ConfigError as exc:
        print(f"igloo-server: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    install_log_redaction()
    if command == "adduser":
        return cmd_adduser(config, args.name, args.password_stdin, args.role)
    if command == "import-igloo-server":
        try:
            config = with_credentials_key(config)
        except ConfigError as exc:
            print(f"igloo-server: configuration error: {exc}", file=sys.stderr)
            return 2
        from tools import import_igloo_server  # a one-shot command: not loaded by every start of the server

        return import_igloo_server.run(config, args.path, username=args.user, replace=args.replace,
                                       read_password=import_igloo_server.password_reader(args.password_stdin))
    unused = igloo_server.unused_variables(environ)
    if unused:
        log.info("Igloo Server settings with no effect here (see docs/MIGRATING.md): %s", ", ".join(unused))
    try:
        return asyncio.run(serve(config))
    except OSError as exc:
        print(f"igloo-server: cannot listen on {config.host_name}:{config.host_port}: {exc.strerror}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
