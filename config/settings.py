"""Igloo's configuration: one frozen Settings object built from the environment.

Every variable is parsed and validated here, once, at start-up. A bad value raises ``ConfigError`` whose
message starts with the variable's name, so the server can stop with one readable line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

CREDENTIAL_FILE_NAME = "igloo-credentials-key"
KEY_FILE_NAME = "credentials.key"

# Field names whose values never appear in a repr or a log line.
SECRET_FIELDS = frozenset(
    {"api_key", "basic_auth_pass", "admin_secret", "group_cred", "share_cred", "credentials_key"}
)


_NO_STRINGS: tuple[str, ...] = ()


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable first."""


@dataclass(frozen=True, repr=False)
class Settings:
    """Validated, immutable configuration of one Igloo process."""

    host_name: str = "127.0.0.1"
    host_port: int = 8002
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    trust_proxy: bool = False
    # Authentication
    auth_enabled: bool = True
    api_key: str | None = None
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = None
    admin_secret: str | None = None
    session_timeout: int = 3600
    rate_limit_login_max: int = 5
    rate_limit_login_window: int = 900
    allowed_origins: tuple[str, ...] = ()
    # Event stream
    event_buffer_size: int = 1000
    ws_ping_interval: float = 25.0
    ws_ping_timeout: float = 20.0
    ws_max_buffer: int = 1024 * 1024
    ws_max_per_ip: int = 50
    ws_max_connections: int = 10000
    ws_compression: bool = False
    ws_client_rate: int = 20
    ws_coalesce_ms: float = 3.0
    # Node
    group_cred: str | None = None
    share_cred: str | None = None
    relays: tuple[str, ...] = ()
    sign_timeout: float = 5.0
    peer_ping_interval: float = 30.0
    sign_budget: int = 20
    sign_budget_window: int = 3600
    approval_mode: bool = False
    credentials_key: bytes | None = None
    demo_enabled: bool = True
    # Embedded relay
    relay_max_events: int = 10_000
    relay_max_age: int = 3600
    relay_max_connections: int = 1000
    relay_event_rate: int = 100
    relay_write: str = "signer"
    relay_max_per_ip: int = 10
    relay_local_reserved: int = 20
    relay_max_bytes: int = 64 * 1024 * 1024
    relay_address_quota: int = 8 * 1024 * 1024
    relay_author_quota: int = 8 * 1024 * 1024
    relay_max_event_bytes: int = 100 * 1024
    relay_max_tags: int = 2000
    relay_max_tag_strings: int = 64
    relay_max_filter_values: int = 2000
    relay_max_query_work: int = 50_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from ``environ`` (default ``os.environ``); raise ConfigError on a bad value.

        When neither CREDENTIALS_KEY nor a systemd credential provides the credentials key, a random key
        is generated once in ``DATA_DIR/credentials.key`` (mode 0600) and reused afterwards.
        """
        env = _Env(os.environ if environ is None else environ)
        host_name = env.get("HOST_NAME", "127.0.0.1", _host)
        host_port = env.get("HOST_PORT", 8002, _int_range(1, 65535))
        data_dir = env.get("DATA_DIR", Path("data"), _path)
        values: dict[str, Any] = {
            "host_name": host_name,
            "host_port": host_port,
            "data_dir": data_dir,
            "log_level": env.get("LOG_LEVEL", "INFO", _log_level),
            "trust_proxy": env.get("TRUST_PROXY", False, _bool),
            "auth_enabled": env.get("AUTH_ENABLED", True, _bool),
            "api_key": env.get("API_KEY", None, _secret(16)),
            "basic_auth_user": env.get("BASIC_AUTH_USER", None, _nonempty),
            "basic_auth_pass": env.get("BASIC_AUTH_PASS", None, _secret(8)),
            "admin_secret": env.get("ADMIN_SECRET", None, _secret(8)),
            "session_timeout": env.get("SESSION_TIMEOUT", 3600, _int_range(1, 365 * 86400)),
            "rate_limit_login_max": env.get("RATE_LIMIT_LOGIN_MAX", 5, _int_range(1, 1_000_000)),
            "rate_limit_login_window": env.get("RATE_LIMIT_LOGIN_WINDOW", 900, _int_range(1, 86400)),
            "allowed_origins": env.get("ALLOWED_ORIGINS", _NO_STRINGS, _origins),
            "event_buffer_size": env.get("EVENT_BUFFER_SIZE", 1000, _int_range(1, 1_000_000)),
            "ws_ping_interval": env.get("WS_PING_INTERVAL", 25.0, _float_range(0, 3600)),
            "ws_ping_timeout": env.get("WS_PING_TIMEOUT", 20.0, _float_range(0.1, 3600)),
            "ws_max_buffer": env.get("WS_MAX_BUFFER", 1024 * 1024, _int_range(4096, 1 << 30)),
            "ws_max_per_ip": env.get("WS_MAX_PER_IP", 50, _int_range(1, 1_000_000)),
            "ws_max_connections": env.get("WS_MAX_CONNECTIONS", 10000, _int_range(1, 10_000_000)),
            "ws_compression": env.get("WS_COMPRESSION", False, _bool),
            "ws_client_rate": env.get("WS_CLIENT_RATE", 20, _int_range(1, 10000)),
            "ws_coalesce_ms": env.get("WS_COALESCE_MS", 3.0, _float_range(0, 1000)),
            "group_cred": env.get("GROUP_CRED", None, _prefixed("bfgroup")),
            "share_cred": env.get("SHARE_CRED", None, _prefixed("bfshare")),
            "relays": env.get("RELAYS", _NO_STRINGS, _relays),
            "sign_timeout": env.get("FROSTR_SIGN_TIMEOUT", 5.0, _float_range(0.1, 600)),
            "peer_ping_interval": env.get("PEER_PING_INTERVAL", 30.0, _float_range(1, 86400)),
            "sign_budget": env.get("SIGN_BUDGET", 20, _int_range(0, 1_000_000)),
            "sign_budget_window": env.get("SIGN_BUDGET_WINDOW", 3600, _int_range(1, 30 * 86400)),
            "approval_mode": env.get("SIGN_APPROVAL", False, _bool),
            "demo_enabled": env.get("IGLOO_DEMO", True, _bool),
            "relay_max_events": env.get("RELAY_MAX_EVENTS", 10_000, _int_range(0, 10_000_000)),
            "relay_max_age": env.get("RELAY_MAX_AGE", 3600, _int_range(1, 365 * 86400)),
            "relay_max_connections": env.get("RELAY_MAX_CONNECTIONS", 1000, _int_range(1, 1_000_000)),
            "relay_event_rate": env.get("RELAY_EVENT_RATE", 100, _int_range(1, 1_000_000)),
            "relay_write": env.get("RELAY_WRITE", "signer", _choice("signer", "all")),
            "relay_max_per_ip": env.get("RELAY_MAX_PER_IP", 10, _int_range(1, 1_000_000)),
            "relay_local_reserved": env.get("RELAY_LOCAL_RESERVED", 20, _int_range(0, 1_000_000)),
            "relay_max_bytes": env.get("RELAY_MAX_BYTES", 64 * 1024 * 1024, _int_range(1 << 20, 1 << 40)),
            "relay_address_quota": env.get("RELAY_ADDRESS_QUOTA", 8 * 1024 * 1024,
                                           _int_range(1 << 16, 1 << 40)),
            "relay_author_quota": env.get("RELAY_AUTHOR_QUOTA", 8 * 1024 * 1024,
                                          _int_range(1 << 16, 1 << 40)),
            "relay_max_event_bytes": env.get("RELAY_MAX_EVENT_BYTES", 100 * 1024,
                                             _int_range(1024, 128 * 1024)),
            "relay_max_tags": env.get("RELAY_MAX_TAGS", 2000, _int_range(1, 100_000)),
            "relay_max_tag_strings": env.get("RELAY_MAX_TAG_STRINGS", 64, _int_range(2, 100_000)),
            "relay_max_filter_values": env.get("RELAY_MAX_FILTER_VALUES", 2000, _int_range(10, 10_000_000)),
            "relay_max_query_work": env.get("RELAY_MAX_QUERY_WORK", 50_000, _int_range(1000, 1_000_000_000)),
        }
        if values["relay_local_reserved"] >= values["relay_max_connections"]:
            raise ConfigError("RELAY_LOCAL_RESERVED: must be less than RELAY_MAX_CONNECTIONS")
        if (values["basic_auth_user"] is None) != (values["basic_auth_pass"] is None):
            raise ConfigError("BASIC_AUTH_PASS: BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together")
        values["credentials_key"] = _credentials_key(env, data_dir)
        return cls(**values)

    @property
    def effective_relays(self) -> tuple[str, ...]:
        """The relays the node uses: RELAYS, or the embedded relay on this server's port."""
        return self.relays or (f"ws://127.0.0.1:{self.host_port}/",)

    @property
    def is_loopback(self) -> bool:
        """True when the server listens on a loopback address only."""
        if self.host_name == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host_name).is_loopback
        except ValueError:
            return False

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "<redacted>" if f.name in SECRET_FIELDS and value is not None else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


class _Env:
    """Reads one variable at a time and turns a parse failure into a ConfigError naming it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("expected an integer") from None
        if not low <= number <= high:
            raise ValueError(f"expected an integer between {low} and {high}")
        return number

    return parse


def _float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError("expected a number") from None
        if not low <= number <= high:
            raise ValueError(f"expected a number between {low:g} and {high:g}")
        return number

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.lower()
        if lowered not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return lowered

    return parse


def _host(value: str) -> str:
    if any(c.isspace() for c in value) or "/" in value:
        raise ValueError("expected a host name or IP address")
    return value


def _path(value: str) -> Path:
    return Path(value)


def _log_level(value: str) -> str:
    upper = value.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return upper


def _nonempty(value: str) -> str:
    return value


def _secret(min_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) < min_length:
            # The value itself is never echoed.
            raise ValueError(f"must be at least {min_length} characters")
        return value

    return parse


def _prefixed(prefix: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.startswith(prefix + "1"):
            raise ValueError(f"expected a {prefix}1... credential")
        return value

    return parse


def _origins(value: str) -> tuple[str, ...]:
    origins = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item == "*":
            origins.append(item)
            continue
        parsed = urlsplit(item)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.path not in {"", "/"}:
            raise ValueError(f"expected comma-separated origins like https://example.com, got {item!r}")
        origins.append(f"{parsed.scheme}://{parsed.netloc.lower()}")
    return tuple(origins)


def _relays(value: str) -> tuple[str, ...]:
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("expected a JSON array of relay URLs") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("expected a JSON array of relay URLs")
    else:
        items = value.split(",")
    relays: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parsed = urlsplit(item)
        if parsed.scheme not in {"ws", "wss"} or not parsed.netloc:
            raise ValueError(f"expected ws:// or wss:// URLs, got {item!r}")
        if item not in relays:
            relays.append(item)
    return tuple(relays)


def _parse_key(text: bytes) -> bytes:
    """A 32-byte key given as raw bytes or 64 hex characters."""
    stripped = text.strip()
    if len(stripped) == 64:
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(text) == 32:
        return text
    raise ValueError("expected 32 bytes as 64 hex characters")


def _credentials_key(env: _Env, data_dir: Path) -> bytes:
    value = env.raw("CREDENTIALS_KEY")
    if value is not None:
        try:
            return _parse_key(value.encode())
        except ValueError as exc:
            raise ConfigError(f"CREDENTIALS_KEY: {exc}") from None
    cred_dir = env.raw("CREDENTIALS_DIRECTORY")
    if cred_dir is not None:
        path = Path(cred_dir) / CREDENTIAL_FILE_NAME
        if path.exists():
            try:
                return _parse_key(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"CREDENTIALS_KEY: systemd credential {CREDENTIAL_FILE_NAME}: {exc}"
                ) from None
    try:
        return _parse_key(read_or_create_secret_file(data_dir / KEY_FILE_NAME, 32, hex_text=True))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"DATA_DIR: cannot use {data_dir / KEY_FILE_NAME}: {exc}") from None


def read_or_create_secret_file(path: Path, nbytes: int, hex_text: bool = False) -> bytes:
    """Return the secret stored at ``path``, creating it with ``nbytes`` random bytes and mode 0600."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_bytes(nbytes)
    content = secret.hex().encode() if hex_text else secret
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return content
