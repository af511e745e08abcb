"""Igloo's configuration: one table of variables, one frozen Settings object built from it.

Each field of ``Settings`` is a row of the table: its environment variable, the kind of value (type and
limits), its default, its section and its description, written once here. Parsing (``Settings.from_env``),
``config/igloo.env.example`` and ``docs/configuration.md`` all come from these rows (``python -m config``
writes the two files; a test fails when they are stale).

Parsing reads nothing but the mapping it is given. A bad value raises ``ConfigError`` whose one-line
message starts with the variable's name and never contains a secret. Files (the credentials key, the
cookie secret, ``.env``) are read or written by the explicit start-up steps in ``config/startup.py``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import igloo_server
from config.kinds import (
    SELF_ORIGIN,
    BaseUrl,
    BechCredential,
    Boolean,
    Choice,
    CredentialsKey,
    Directory,
    HexSecret,
    HostList,
    HostName,
    IglooServerSwitch,
    Integer,
    Kind,
    Milliseconds,
    Number,
    OriginList,
    PeerPolicies,
    PeerPolicySetting,
    RelayList,
    Secret,
    Text,
)

DAY = 86400


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable first."""


@dataclass(frozen=True)
class Variable:
    """One row of the configuration table."""

    name: str  # the environment variable
    kind: Kind
    default: Any
    section: str
    description: str
    aliases: tuple[str, ...] = ()  # other names read for the same field (Igloo Server's)
    secret: bool = False  # never in a repr, a log line or an error message
    inherit: str | None = None  # when unset, take the value of this variable
    example: str | None = None  # shown commented out in the example file when there is no default
    commented: bool = False  # commented out in the example file even with a default
    field: str = ""  # the Settings attribute; filled in from the dataclass

    def names(self) -> tuple[str, ...]:
        """The variable and its aliases."""
        return (self.name, *self.aliases)


def setting(name: str, kind: Kind, default: Any, section: str, description: str, **extra: Any) -> Any:
    """Declare a Settings field as a table row (the dataclass default is the row's default)."""
    row = Variable(name, kind, default, section, description, **extra)
    return dataclasses.field(default=default, metadata={"row": row})


SERVER, AUTH, LIMITS, STREAM, NODE, RELAY, NIP46 = (
    "Server", "Authentication", "Rate limits", "Event stream (/api/events)", "Signer (node)",
    "Embedded relay (ws://HOST:PORT/)", "NIP-46 remote signing (bunker)",
)
SECTIONS = (SERVER, AUTH, LIMITS, STREAM, NODE, RELAY, NIP46)

_NO_STRINGS: tuple[str, ...] = ()
_NO_POLICIES: tuple[PeerPolicySetting, ...] = ()
_COUNT = Integer(1, 1_000_000)
NO_TEST_MODE = "Igloo Server's test mode trusts X-Forwarded-For and invents an admin secret; Igloo has none"
_WINDOW = Integer(1, DAY, "seconds")


@dataclass(frozen=True, repr=False)
class Settings:
    """Validated, immutable configuration of one Igloo process (the configuration table)."""

    # --- Server
    host_name: str = setting(
        "HOST_NAME", HostName(), "127.0.0.1", SERVER,
        "Address to listen on. Keep 127.0.0.1 behind a reverse proxy (recommended); 0.0.0.0 exposes it.")
    host_port: int = setting(
        "HOST_PORT", Integer(1, 65535), 8002, SERVER, "TCP port of the dashboard, API and relay.")
    data_dir: Path = setting(
        "DATA_DIR", Directory(), Path("data"), SERVER,
        "Where the SQLite database (igloo.db) and generated secrets live, all mode 0600. The service sets "
        "/var/lib/igloo: leave this line commented out in /etc/igloo/igloo.env.", commented=True)
    log_level: str = setting(
        "LOG_LEVEL", Choice(("DEBUG", "INFO", "WARNING", "ERROR"), upper=True), "INFO", SERVER,
        "DEBUG, INFO, WARNING or ERROR. No level logs secrets or query strings.")
    trust_proxy: bool = setting(
        "TRUST_PROXY", IglooServerSwitch("true", default_state=False), False, SERVER,
        "true only behind a reverse proxy you control (docs/DEPLOY.md; keep HOST_NAME=127.0.0.1 then): the "
        "X-Forwarded-For entry the proxy appended gives the client address (rate limits, caps; X-Real-Ip is "
        "ignored), X-Forwarded-Proto=https makes cookies Secure, and X-Forwarded-Host is the host that "
        "ALLOWED_HOSTS and the origin check expect.")
    allowed_hosts: tuple[str, ...] = setting(
        "ALLOWED_HOSTS", HostList(), _NO_STRINGS, SERVER,
        "Host names the server answers to besides HOST_NAME, localhost and IP addresses (which are always "
        "allowed), and the hosts of ALLOWED_ORIGINS and NIP46_AUTH_URL: comma-separated, name or name:port. "
        "Any other Host (X-Forwarded-Host with TRUST_PROXY=true) gets 421, which stops DNS rebinding; the "
        "relay at / answers every name. Behind a proxy, list its public name here. * allows any host.",
        example="igloo.example.com")
    http_header_timeout: float = setting(
        "HTTP_HEADER_TIMEOUT", Number(0.5, 3600, "seconds"), 15.0, SERVER,
        "Seconds a connection may take to send a request's headers, counted from when it opens or its "
        "previous response ends (so also how long an idle keep-alive connection stays open).")
    http_body_timeout: float = setting(
        "HTTP_BODY_TIMEOUT", Number(0.5, 3600, "seconds"), 30.0, SERVER,
        "Seconds a request may take to send its body (at most 64 KiB) once its headers are in.")
    http_max_per_ip: int = setting(
        "HTTP_MAX_PER_IP", Integer(1, 1_000_000), 32, SERVER,
        "Open HTTP connections per client address (IPv6 by /64), upgraded WebSockets not counted; beyond, a "
        "new connection gets 429 and is closed. A TRUST_PROXY=true proxy on loopback is not capped.")
    http_max_connections: int = setting(
        "HTTP_MAX_CONNECTIONS", Integer(1, 10_000_000), 1024, SERVER,
        "Open HTTP connections in total, upgraded WebSockets not counted (503 and closed beyond).")
    node_env: str = setting(
        "NODE_ENV", Choice(("development", "production"), hint=NO_TEST_MODE),
        "development", SERVER,
        "production (as in Igloo Server): session cookies are always Secure, and ALLOWED_ORIGINS=* is "
        "refused.")
    # --- Authentication
    auth_enabled: bool = setting(
        "AUTH_ENABLED", IglooServerSwitch("false", default_state=True), True, AUTH,
        "false turns authentication off for EVERY route (a loud warning is logged when not on loopback).")
    admin_secret: str | None = setting(
        "ADMIN_SECRET", Secret(8), None, AUTH,
        "Guards the one-time /onboarding page that creates the first administrator. Unset: a one-time setup "
        "token is written to DATA_DIR/setup-token instead (its path is logged at start). Igloo Server's "
        "placeholder REQUIRED_ADMIN_SECRET_NOT_SET is refused. Generate one with `openssl rand -hex 32`; or "
        "create the first account with `igloo-server adduser NAME`.",
        secret=True, example="")
    api_key: str | None = setting(
        "API_KEY", Secret(16), None, AUTH,
        "Key for programmatic clients: header X-API-Key or Authorization: Bearer. Generate one with "
        "`openssl rand -hex 32`.",
        secret=True, example="")
    basic_auth_user: str | None = setting(
        "BASIC_AUTH_USER", Text(200), None, AUTH, "Optional HTTP Basic user name (set with BASIC_AUTH_PASS).",
        example="admin")
    basic_auth_pass: str | None = setting(
        "BASIC_AUTH_PASS", Secret(8), None, AUTH, "Optional HTTP Basic password (set with BASIC_AUTH_USER).",
        secret=True, example="")
    session_secret: str | None = setting(
        "SESSION_SECRET", HexSecret(), None, AUTH,
        "Signs session and XSRF cookies: 64 hex characters (`openssl rand -hex 32`). Unset: generated once "
        "in DATA_DIR/cookie_secret.",
        secret=True, example="")
    session_timeout: int = setting(
        "SESSION_TIMEOUT", Integer(1, 365 * DAY, "seconds"), 3600, AUTH,
        "Idle timeout of a login session, in seconds (sliding: each request renews it).")
    allowed_origins: tuple[str, ...] = setting(
        "ALLOWED_ORIGINS", OriginList(), _NO_STRINGS, AUTH,
        f"Extra browser origins allowed to open the event stream, comma-separated. The server's own host is "
        f"always allowed ({SELF_ORIGIN} names it explicitly); * allows any.",
        example="https://igloo.example.com")
    # --- Rate limits
    rate_limit_login_max: int = setting(
        "RATE_LIMIT_LOGIN_MAX", _COUNT, 5, LIMITS,
        "Login attempts allowed per client address and username per RATE_LIMIT_LOGIN_WINDOW, counted when "
        "they start and forgiven when they succeed (ten times as many per address across usernames); also "
        "failed API keys, Bearer tokens and Basic credentials per address. Beyond: 429 with Retry-After.")
    rate_limit_login_window: int = setting(
        "RATE_LIMIT_LOGIN_WINDOW", _WINDOW, 900, LIMITS, "Window of RATE_LIMIT_LOGIN_MAX, in seconds.")
    rate_limit_enabled: bool = setting(
        "RATE_LIMIT_ENABLED", IglooServerSwitch("false", default_state=True), True, LIMITS,
        "false turns off the per-client request limits below (the login limit above stays on).")
    rate_limit_window: int = setting(
        "RATE_LIMIT_WINDOW", _WINDOW, 900, LIMITS,
        "Window of RATE_LIMIT_MAX in seconds, and of the limits below that have no window of their own.")
    rate_limit_max: int = setting(
        "RATE_LIMIT_MAX", _COUNT, 600, LIMITS,
        "Authenticated API requests per client address per window (Igloo Server's general limiter; "
        "sign and NIP-44/NIP-04 requests have their own budget of the same size).")
    rate_limit_env_write_window: int = setting(
        "RATE_LIMIT_ENV_WRITE_WINDOW", _WINDOW, 900, LIMITS,
        "Window of RATE_LIMIT_ENV_WRITE_MAX, in seconds.", inherit="RATE_LIMIT_WINDOW")
    rate_limit_env_write_max: int = setting(
        "RATE_LIMIT_ENV_WRITE_MAX", _COUNT, 10, LIMITS, "POST /api/env writes per client address per window.")
    rate_limit_recovery_window: int = setting(
        "RATE_LIMIT_RECOVERY_WINDOW", _WINDOW, 900, LIMITS, "Window of RATE_LIMIT_RECOVERY_MAX, in seconds.",
        inherit="RATE_LIMIT_WINDOW")
    rate_limit_recovery_max: int = setting(
        "RATE_LIMIT_RECOVERY_MAX", _COUNT, 3, LIMITS,
        "Key recoveries (/api/recover) per client address per window.")
    rate_limit_ws_upgrade_window: int = setting(
        "RATE_LIMIT_WS_UPGRADE_WINDOW", _WINDOW, 900, LIMITS,
        "Window of RATE_LIMIT_WS_UPGRADE_MAX, in seconds.", inherit="RATE_LIMIT_WINDOW")
    rate_limit_ws_upgrade_max: int = setting(
        "RATE_LIMIT_WS_UPGRADE_MAX", _COUNT, 30, LIMITS,
        "Event-stream WebSocket upgrades per client address per window.")
    nip46_session_rate_limit_window: int = setting(
        "NIP46_SESSION_RATE_LIMIT_WINDOW", _WINDOW, 3600, LIMITS,
        "Window of NIP46_SESSION_RATE_LIMIT_MAX, in seconds.")
    nip46_session_rate_limit_max: int = setting(
        "NIP46_SESSION_RATE_LIMIT_MAX", _COUNT, 120, LIMITS,
        "New NIP-46 sessions (bunker:// connects and nostrconnect:// pairings together) on this signer per "
        "window; over it a connect gets an error reply (its secret stays usable) and a pairing HTTP 429.")
    # --- Event stream
    event_buffer_size: int = setting(
        "EVENT_BUFFER_SIZE", _COUNT, 1000, STREAM, "Events kept in memory and SQLite for resume.")
    ws_ping_interval: float = setting(
        "WS_PING_INTERVAL", Number(0, 3600, "seconds"), 25.0, STREAM,
        "Protocol ping interval, seconds (0 disables pings).")
    ws_ping_timeout: float = setting(
        "WS_PING_TIMEOUT", Number(0.1, 3600, "seconds"), 20.0, STREAM, "Pong timeout, seconds.")
    ws_max_buffer: int = setting(
        "WS_MAX_BUFFER", Integer(4096, 1 << 30, "bytes"), 1024 * 1024, STREAM,
        "Bytes allowed to wait unsent for one client before it is closed with 1013.")
    ws_max_per_ip: int = setting(
        "WS_MAX_PER_IP", _COUNT, 50, STREAM, "Open event sockets per client address (429 beyond).",
        aliases=("WS_MAX_CONNECTIONS_PER_IP",))
    ws_max_connections: int = setting(
        "WS_MAX_CONNECTIONS", Integer(1, 10_000_000), 10000, STREAM,
        "Open event sockets in total (503 beyond).")
    ws_compression: bool = setting(
        "WS_COMPRESSION", Boolean(), False, STREAM,
        "Offer permessage-deflate (costs one compression per compressed client per event).")
    ws_client_rate: int = setting(
        "WS_CLIENT_RATE", Integer(1, 10000, "frames/s"), 20, STREAM,
        "Client frames per second per socket before a 1008 close.", aliases=("WS_MSG_RATE",))
    ws_client_burst: int = setting(
        "WS_MSG_BURST", Integer(0, 20000, "frames"), 0, STREAM,
        "Client frames one socket may send at once; 0 means twice WS_CLIENT_RATE, and a burst below the rate "
        "is raised to the rate (as in Igloo Server).")
    ws_coalesce_ms: float = setting(
        "WS_COALESCE_MS", Number(0, 1000, "ms"), 3.0, STREAM,
        "With at least 64 stream clients, events published within this many milliseconds go to each client "
        "in one write (one system call per client instead of one per event). 0 sends every IOLoop turn.")
    # --- Signer (node)
    group_cred: str | None = setting(
        "GROUP_CRED", BechCredential("bfgroup"), None, NODE,
        "The group credential. Optional: credentials can also be entered on /configure, where they are "
        "stored encrypted with the credentials key.", secret=True, example="bfgroup1...")
    share_cred: str | None = setting(
        "SHARE_CRED", BechCredential("bfshare"), None, NODE, "This member's share credential.",
        secret=True, example="bfshare1...")
    group_name: str | None = setting(
        "GROUP_NAME", Text(100), None, NODE, "Display name of the signing group.", example="My signing group")
    relays: tuple[str, ...] = setting(
        "RELAYS", RelayList(), _NO_STRINGS, NODE,
        "Relays of the signer: JSON array, or ws(s):// URLs separated by commas or spaces. Empty: the "
        "embedded relay ws://127.0.0.1:HOST_PORT/.", example='["wss://relay.example.com"]')
    peer_policies: tuple[PeerPolicySetting, ...] = setting(
        "PEER_POLICIES", PeerPolicies(), _NO_POLICIES, NODE,
        "Explicit peer policies applied when the signer starts, as in Igloo Server: allowSend=false stops "
        "asking that peer, allowReceive=false stops answering it. Changes on the dashboard last until "
        "restart.",
        example='[{"pubkey":"<64 hex>","allowReceive":false}]')
    sign_timeout: float = setting(
        "FROSTR_SIGN_TIMEOUT", Milliseconds(100, 600_000), 5.0, NODE,
        "Milliseconds to wait for peers' signature shares and ECDH answers (Igloo Server's unit).",
        aliases=("SIGN_TIMEOUT_MS",))
    peer_ping_interval: float = setting(
        "PEER_PING_INTERVAL", Number(1, DAY, "seconds"), 30.0, NODE, "Seconds between pings to each peer.")
    sign_budget: int = setting(
        "SIGN_BUDGET", Integer(0, 1_000_000), 1200, NODE,
        "Partial signatures and ECDH shares each peer may obtain per SIGN_BUDGET_WINDOW. A limit on abuse (a "
        "stolen or runaway device signing or decrypting en masse as you), not a defence against the share "
        "leak: three partial signatures already leak a share. The default is twice a heavy hour of normal "
        "use (bench/sign_budget_session.py); 0 refuses every request.")
    sign_budget_window: int = setting(
        "SIGN_BUDGET_WINDOW", Integer(1, 30 * DAY, "seconds"), 3600, NODE,
        "Window of SIGN_BUDGET, in seconds.")
    approval_mode: bool = setting(
        "SIGN_APPROVAL", Boolean(), False, NODE,
        "true = every incoming sign/ECDH request waits for approval on the dashboard.")
    credentials_key: bytes | None = setting(
        "CREDENTIALS_KEY", CredentialsKey(), None, NODE,
        "32 random bytes (64 hex characters, or base64) that encrypt stored credentials. The service passes "
        "it as the systemd credential igloo-credentials-key instead; without either, a key is generated once "
        "in DATA_DIR/credentials.key. Generate one with `openssl rand -hex 32`.", secret=True, example="")
    credentials_directory: Path | None = setting(
        "CREDENTIALS_DIRECTORY", Directory(), None, NODE,
        "Set by systemd (LoadCredential=): the directory holding igloo-credentials-key. Not set by hand.")
    demo_enabled: bool = setting(
        "IGLOO_DEMO", Boolean(), True, NODE, "Offer the built-in demo group on the dashboard.")
    # --- Embedded relay
    relay_write: str = setting(
        "RELAY_WRITE", Choice(("signer", "all")), "signer", RELAY,
        "Who may write: signer takes only events of this signer's group members and NIP-46 traffic to or "
        "from its transport key (the rest: OK false \"restricted\"); all is a public relay. signer is what a "
        "VPS wants: the relay is then no free storage and fan-out for strangers (docs/relay.md).")
    relay_max_events: int = setting(
        "RELAY_MAX_EVENTS", Integer(0, 10_000_000), 10_000, RELAY,
        "Regular events kept in memory (kind 20004 signer traffic is ephemeral and never stored).")
    relay_max_age: int = setting(
        "RELAY_MAX_AGE", Integer(1, 365 * DAY, "seconds"), 3600, RELAY, "Age after which stored events go.")
    relay_max_connections: int = setting(
        "RELAY_MAX_CONNECTIONS", _COUNT, 1000, RELAY, "Open relay connections (503 beyond).")
    relay_event_rate: int = setting(
        "RELAY_EVENT_RATE", _COUNT, 100, RELAY,
        "Tokens per second for one local relay connection, or for all connections of one outside address "
        "together (bursts of twice that). An EVENT or REQ costs one, each 16 KiB of a frame one more, a REQ "
        "also one per 200 units of search work; without tokens, EVENT and REQ are refused with "
        "\"rate-limited\", and a client in debt is not read until it is paid. A node publishes one event per "
        "request it sends or answers.")
    relay_max_bytes: int = setting(
        "RELAY_MAX_BYTES", Integer(1 << 20, 1 << 40, "bytes"), 64 << 20, RELAY,
        "Memory stored events may take, as the relay accounts it (JSON plus per-event and per-tag overhead); "
        "the oldest received go first.")
    relay_address_quota: int = setting(
        "RELAY_ADDRESS_QUOTA", Integer(1 << 16, 1 << 40, "bytes"), 8 << 20, RELAY,
        "Accounted bytes of stored events one client address may hold (beyond: OK false \"rate-limited\").")
    relay_author_quota: int = setting(
        "RELAY_AUTHOR_QUOTA", Integer(1 << 16, 1 << 40, "bytes"), 8 << 20, RELAY,
        "Accounted bytes of stored events one author may hold (beyond: OK false \"rate-limited\").")
    relay_max_event_bytes: int = setting(
        "RELAY_MAX_EVENT_BYTES", Integer(1024, 128 * 1024, "bytes"), 100 * 1024, RELAY,
        "Bytes of one event's JSON (beyond: OK false \"invalid\").")
    relay_max_tags: int = setting(
        "RELAY_MAX_TAGS", Integer(1, 100_000), 2000, RELAY,
        "Tags of one event (beyond: OK false \"invalid\").")
    relay_max_tag_strings: int = setting(
        "RELAY_MAX_TAG_STRINGS", Integer(2, 100_000), 64, RELAY,
        "Strings in one tag, its name included (beyond: OK false \"invalid\").")
    relay_local_reserved: int = setting(
        "RELAY_LOCAL_RESERVED", Integer(0, 1_000_000), 20, RELAY,
        "Relay connections only direct ones from 127.0.0.1 or ::1 may take (the node's own; a reverse "
        "proxy's requests carry X-Forwarded-For and do not count). Less than RELAY_MAX_CONNECTIONS.")
    relay_max_per_ip: int = setting(
        "RELAY_MAX_PER_IP", _COUNT, 10, RELAY,
        "Relay connections of one outside address (429 beyond; IPv6 counted by /64).")
    relay_max_query_work: int = setting(
        "RELAY_MAX_QUERY_WORK", Integer(1000, 1_000_000_000), 50_000, RELAY,
        "Search work one REQ may do on stored events, about one unit per candidate event (beyond: CLOSED "
        "\"rate-limited\").")
    relay_max_filter_values: int = setting(
        "RELAY_MAX_FILTER_VALUES", Integer(10, 10_000_000), 2000, RELAY,
        "Filter values (ids, authors, kinds, tag values) all subscriptions of one relay connection may hold.")

    # --- NIP-46 remote signing
    nip46_enabled: bool = setting(
        "NIP46_ENABLED", Boolean(), True, NIP46,
        "Answer NIP-46 apps (Nostr clients that sign through Igloo).")
    nip46_relays: tuple[str, ...] = setting(
        "NIP46_RELAYS", RelayList(), _NO_STRINGS, NIP46,
        "Relays the bunker listens on and puts in its links. Empty: the signer's relays. An edit on the "
        "NIP-46 page (or PUT /api/nip46/relays) is stored and wins over this.")
    nip46_secret_ttl: int = setting(
        "NIP46_SECRET_TTL", Integer(30, 7 * DAY, "seconds"), 600, NIP46,
        "Seconds a bunker:// link's single-use secret stays valid.")
    nip46_request_ttl: int = setting(
        "NIP46_REQUEST_TTL", Integer(5, 3600, "seconds"), 120, NIP46,
        "Seconds a request waits for approval before the app gets an error.")
    nip46_retention_days: int = setting(
        "NIP46_RETENTION_DAYS", Integer(1, 3650, "days"), 30, NIP46, "Days finished requests are kept.")
    nip46_max_pending: int = setting(
        "NIP46_MAX_PENDING", Integer(1, 1000), 50, NIP46, "Requests one app may have waiting for approval.")
    nip46_client_rate: int = setting(
        "NIP46_CLIENT_RATE", Integer(1, 10_000, "requests/s"), 50, NIP46,
        "Requests per second one paired app may send (bursts of ten times that).")
    nip46_stranger_rate: int = setting(
        "NIP46_STRANGER_RATE", Integer(1, 1000, "events/s"), 5, NIP46,
        "Events per second answered (with an error) from all unpaired keys together.")
    nip46_clock_skew: int = setting(
        "NIP46_CLOCK_SKEW", Integer(10, 3600, "seconds"), 300, NIP46,
        "Clock difference tolerated on requests; also how far back the listener's subscription reaches.")
    nip46_auth_url: str | None = setting(
        "NIP46_AUTH_URL", BaseUrl(), None, NIP46,
        "This server's public base URL. Set: requests that need approval are answered with an auth_url to "
        "the approval page (NIP-46 auth challenge), which clients show to the user.",
        example="https://igloo.example.com")

    def __post_init__(self) -> None:
        burst = self.ws_client_burst or 2 * self.ws_client_rate
        object.__setattr__(self, "ws_client_burst", max(burst, self.ws_client_rate))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from ``environ`` (default ``os.environ``); raise ConfigError on a bad value.

        Pure: reads nothing but ``environ``. The credentials key is completed by
        ``config.startup.with_credentials_key`` when neither CREDENTIALS_KEY nor a credential directory
        gives it.
        """
        env = os.environ if environ is None else environ
        refused = igloo_server.refused_variable(env)
        if refused is not None:
            raise ConfigError(f"{refused[0]}: {refused[1]}")
        values = {row.field: _read(row, env) for row in TABLE}
        _check_together(values)
        return cls(**values)

    @property
    def effective_relays(self) -> tuple[str, ...]:
        """The relays the node uses: RELAYS, or the embedded relay on this server's port."""
        return self.relays or (f"ws://127.0.0.1:{self.host_port}/",)

    @property
    def production(self) -> bool:
        """NODE_ENV=production."""
        return self.node_env == "production"

    @property
    def is_loopback(self) -> bool:
        """True when the server listens on a loopback address only."""
        if self.host_name == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host_name).is_loopback
        except ValueError:
            return False

    def relay_limits(self) -> dict[str, Any]:
        """The embedded relay's configurable bounds, by the field names of ``relay.RelayLimits``."""
        return {
            "max_events": self.relay_max_events,
            "max_bytes": self.relay_max_bytes,
            "max_age": float(self.relay_max_age),
            "address_quota": self.relay_address_quota,
            "author_quota": self.relay_author_quota,
            "max_event_bytes": self.relay_max_event_bytes,
            "max_event_tags": self.relay_max_tags,
            "max_tag_strings": self.relay_max_tag_strings,
            "max_filter_values": self.relay_max_filter_values,
            "max_query_work": self.relay_max_query_work,
            "max_connections": self.relay_max_connections,
            "max_connections_per_address": self.relay_max_per_ip,
            "local_reserved": self.relay_local_reserved,
            "event_rate": float(self.relay_event_rate),  # per local connection or outside address
            "event_burst": 2.0 * self.relay_event_rate,
        }

    def __repr__(self) -> str:
        parts = []
        for row in TABLE:
            value = getattr(self, row.field)
            shown = "<redacted>" if row.secret and value is not None else repr(value)
            parts.append(f"{row.field}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


def _rows() -> tuple[Variable, ...]:
    rows = []
    for f in dataclasses.fields(Settings):
        row: Variable = f.metadata["row"]
        rows.append(dataclasses.replace(row, field=f.name))
    return tuple(rows)


TABLE: tuple[Variable, ...] = _rows()
BY_NAME: dict[str, Variable] = {name: row for row in TABLE for name in row.names()}
SECRET_FIELDS = frozenset(row.field for row in TABLE if row.secret)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _read(row: Variable, env: Mapping[str, str]) -> Any:
    """The parsed value of one row: its variable, else an alias, else the inherited variable, else default."""
    given = [(name, text) for name in row.names() if (text := _raw(env, name)) is not None]
    if not given:
        if row.inherit is not None:
            return _read(BY_NAME[row.inherit], env)
        return row.default
    name, text = given[0]
    value = _parse(row, name, text)
    for other, other_text in given[1:]:
        if _parse(row, other, other_text) != value:
            raise ConfigError(
                f"{other}: set to a different value than {name}, which means the same; keep one"
            )
    return value


def _parse(row: Variable, name: str, text: str) -> Any:
    try:
        return row.kind.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _check_together(values: dict[str, Any]) -> None:
    """Rules across variables."""
    if (values["basic_auth_user"] is None) != (values["basic_auth_pass"] is None):
        raise ConfigError("BASIC_AUTH_PASS: BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together")
    if values["relay_local_reserved"] >= values["relay_max_connections"]:
        raise ConfigError("RELAY_LOCAL_RESERVED: must be less than RELAY_MAX_CONNECTIONS")
    if not values["auth_enabled"] and "*" in values["allowed_hosts"]:
        raise ConfigError(
            "ALLOWED_HOSTS: * is refused with AUTH_ENABLED=false: any web page could then drive this server "
            "through DNS rebinding; list the host names instead"
        )
    if values["node_env"] == "production" and "*" in values["allowed_origins"]:
        raise ConfigError(
            "ALLOWED_ORIGINS: * is refused with NODE_ENV=production (as in Igloo Server): list the origins, "
            f"or {SELF_ORIGIN} for this server's own host"
        )
