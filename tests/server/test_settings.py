"""config/settings.py: parsing, validation (one message naming the variable), redaction, no file I/O."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
import tornado.websocket

from config.settings import ConfigError, Settings
from tests.server.conftest import PASSWORD, Igloo, read_frame, read_until_closed


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DATA_DIR": str(tmp_path / "data"), **extra}


def error_for(tmp_path: Path, **extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, **extra))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(env(tmp_path))
    assert (s.host_name, s.host_port, s.session_timeout) == ("127.0.0.1", 8002, 3600)
    assert s.auth_enabled and s.event_buffer_size == 1000 and s.ws_max_buffer == 1 << 20
    assert (s.ws_max_per_ip, s.ws_max_connections, s.ws_ping_interval) == (50, 10000, 25.0)
    assert (s.ws_client_rate, s.ws_client_burst) == (20, 40)
    assert (s.rate_limit_login_max, s.rate_limit_login_window) == (5, 900)
    assert (s.rate_limit_enabled, s.rate_limit_window, s.rate_limit_max) == (True, 900, 600)
    node = (s.sign_timeout, s.peer_ping_interval, s.sign_budget, s.sign_budget_window)
    assert node == (5.0, 30.0, 1200, 3600)
    assert s.demo_enabled and not s.approval_mode and s.relays == () and s.peer_policies == ()
    assert s.effective_relays == ("ws://127.0.0.1:8002/",)
    assert s.credentials_key is None and s.session_secret is None and not s.production


def test_parses_values(tmp_path: Path) -> None:
    s = Settings.from_env(env(
        tmp_path, HOST_NAME="0.0.0.0", HOST_PORT="9000", AUTH_ENABLED="false", SESSION_TIMEOUT="60",
        RELAYS='["wss://a.example", "wss://b.example"]', ALLOWED_ORIGINS="https://X.example, http://y:8",
        SIGN_APPROVAL="yes", IGLOO_DEMO="0", WS_COMPRESSION="on",
    ))
    assert (s.host_name, s.host_port, s.auth_enabled, s.session_timeout) == ("0.0.0.0", 9000, False, 60)
    assert s.relays == ("wss://a.example", "wss://b.example")
    assert s.allowed_origins == ("https://x.example", "http://y:8")
    assert s.approval_mode and not s.demo_enabled and s.ws_compression and not s.is_loopback


@pytest.mark.parametrize("value", [
    "wss://a, wss://b,", "wss://a wss://b", " wss://a,\twss://b ", '["wss://a", "wss://b", "wss://a"]',
])
def test_relays_in_every_igloo_server_form(tmp_path: Path, value: str) -> None:
    assert Settings.from_env(env(tmp_path, RELAYS=value)).relays == ("wss://a", "wss://b")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOST_PORT", "http"), ("HOST_PORT", "70000"), ("AUTH_ENABLED", "maybe"), ("SESSION_TIMEOUT", "-1"),
        ("RELAYS", "http://not-ws"), ("RELAYS", "[1, 2]"), ("RELAYS", "[\"wss://a\""),
        ("ALLOWED_ORIGINS", "example.com"), ("API_KEY", "short"), ("WS_MAX_BUFFER", "10"),
        ("FROSTR_SIGN_TIMEOUT", "soon"), ("FROSTR_SIGN_TIMEOUT", "5.5"), ("GROUP_CRED", "nope"),
        ("CREDENTIALS_KEY", "abcd"), ("LOG_LEVEL", "LOUD"), ("RELAY_MAX_EVENTS", "-5"),
        ("RELAY_MAX_AGE", "0"),
        ("RELAY_MAX_CONNECTIONS", "lots"), ("RATE_LIMIT_MAX", "0"), ("RATE_LIMIT_WINDOW", "x"),
        ("NIP46_SESSION_RATE_LIMIT_MAX", "-1"), ("WS_MSG_BURST", "many"), ("SESSION_SECRET", "ab" * 31),
        ("NODE_ENV", "staging"), ("GROUP_NAME", "x" * 101), ("PEER_POLICIES", "{"),
    ],
)
def test_bad_value_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    message = error_for(tmp_path, **{name: value})
    assert message.startswith(f"{name}: ")
    if name in {"API_KEY", "CREDENTIALS_KEY", "SESSION_SECRET"}:
        assert value not in message  # secrets are never echoed


def test_relays_are_capped(tmp_path: Path) -> None:
    many = ",".join(f"wss://r{i}.example" for i in range(33))
    assert error_for(tmp_path, RELAYS=many) == "RELAYS: at most 32 relays"


def test_sign_timeout_is_milliseconds_as_in_igloo_server(tmp_path: Path) -> None:
    assert Settings.from_env(env(tmp_path, FROSTR_SIGN_TIMEOUT="30000")).sign_timeout == 30.0
    assert Settings.from_env(env(tmp_path, FROSTR_SIGN_TIMEOUT="250")).sign_timeout == 0.25
    assert Settings.from_env(env(tmp_path, SIGN_TIMEOUT_MS="12000")).sign_timeout == 12.0
    message = error_for(tmp_path, FROSTR_SIGN_TIMEOUT="30")
    assert message.startswith("FROSTR_SIGN_TIMEOUT: milliseconds") and "write 30000" in message
    assert "write 5000" in error_for(tmp_path, SIGN_TIMEOUT_MS="5")
    assert error_for(tmp_path, FROSTR_SIGN_TIMEOUT="700000").startswith("FROSTR_SIGN_TIMEOUT: expected milli")
    both = error_for(tmp_path, FROSTR_SIGN_TIMEOUT="3000", SIGN_TIMEOUT_MS="4000")
    assert both.startswith("SIGN_TIMEOUT_MS: set to a different value than FROSTR_SIGN_TIMEOUT")
    same = Settings.from_env(env(tmp_path, FROSTR_SIGN_TIMEOUT="3000", SIGN_TIMEOUT_MS="3000"))
    assert same.sign_timeout == 3.0


@pytest.mark.parametrize(("value", "enabled"),
                         [("false", False), ("true", True), ("1", True), ("TRUE", True)])
def test_auth_enabled_is_off_only_for_false(tmp_path: Path, value: str, enabled: bool) -> None:
    assert Settings.from_env(env(tmp_path, AUTH_ENABLED=value)).auth_enabled is enabled


@pytest.mark.parametrize("name", ["AUTH_ENABLED", "RATE_LIMIT_ENABLED"])
@pytest.mark.parametrize("value", ["0", "no", "off", "False", "FALSE"])
def test_words_igloo_server_reads_as_on_are_refused(tmp_path: Path, name: str, value: str) -> None:
    message = error_for(tmp_path, **{name: value})
    assert message.startswith(f"{name}: Igloo Server reads every value except the exact word false as on")


@pytest.mark.parametrize(("value", "trusted"), [("true", True), ("false", False), ("0", False)])
def test_trust_proxy_is_on_only_for_true(tmp_path: Path, value: str, trusted: bool) -> None:
    assert Settings.from_env(env(tmp_path, TRUST_PROXY=value)).trust_proxy is trusted


@pytest.mark.parametrize("value", ["1", "yes", "True", "on"])
def test_words_igloo_server_reads_as_off_are_refused(tmp_path: Path, value: str) -> None:
    assert error_for(tmp_path, TRUST_PROXY=value).startswith("TRUST_PROXY: Igloo Server reads every value")


def test_admin_secret_placeholder_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, ADMIN_SECRET="REQUIRED_ADMIN_SECRET_NOT_SET")
    assert message.startswith("ADMIN_SECRET: Igloo Server's placeholder, not a secret")
    assert "setup-token" in message


@pytest.mark.parametrize("name", ["ADMIN_SECRET", "API_KEY", "BASIC_AUTH_PASS", "SESSION_SECRET"])
@pytest.mark.parametrize("value", ["your-secure-api-key-here", "your-secure-password-here",
                                   "your-random-session-secret-here", "VerySecurePassword456!"])
def test_published_example_secrets_are_refused(tmp_path: Path, name: str, value: str) -> None:
    extra = {"BASIC_AUTH_USER": "admin"} if name == "BASIC_AUTH_PASS" else {}
    message = error_for(tmp_path, **{name: value}, **extra)
    assert message.startswith(f"{name}: an example value from Igloo Server's env.example")
    assert value not in message


def test_session_secret_is_64_hex(tmp_path: Path) -> None:
    secret = secrets.token_hex(32).upper()
    assert Settings.from_env(env(tmp_path, SESSION_SECRET=secret)).session_secret == secret.lower()
    assert "64 hex characters" in error_for(tmp_path, SESSION_SECRET="g" * 64)


def test_credentials_key_must_be_32_random_bytes(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    for text in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(),
                 base64.urlsafe_b64encode(key).decode().rstrip("=")):
        assert Settings.from_env(env(tmp_path, CREDENTIALS_KEY=text)).credentials_key == key
    for bad in ("x" * 32, key.hex()[:62], base64.b64encode(key[:31]).decode(), "z" * 64):
        message = error_for(tmp_path, CREDENTIALS_KEY=bad)
        assert message.startswith("CREDENTIALS_KEY: expected 32 random bytes as 64 hex")
        assert bad not in message
    message = error_for(tmp_path, CREDENTIALS_KEY="ab" * 32)
    assert message.startswith("CREDENTIALS_KEY: does not look random") and "ab" * 32 not in message


def test_origins_self_and_production(tmp_path: Path) -> None:
    s = Settings.from_env(env(tmp_path, ALLOWED_ORIGINS="@self, https://a.example", NODE_ENV="production"))
    assert s.allowed_origins == ("@self", "https://a.example") and s.production
    assert Settings.from_env(env(tmp_path, ALLOWED_ORIGINS="*")).allowed_origins == ("*",)
    message = error_for(tmp_path, ALLOWED_ORIGINS="*", NODE_ENV="production")
    assert message.startswith("ALLOWED_ORIGINS: * is refused with NODE_ENV=production")
    assert "Igloo has none" in error_for(tmp_path, NODE_ENV="test")


def test_db_path_is_refused_with_what_to_write(tmp_path: Path) -> None:
    message = error_for(tmp_path, DB_PATH="/srv/igloo/data/igloo.db")
    assert message.startswith("DB_PATH: ") and "DATA_DIR=" in message


def test_igloo_server_aliases_and_burst(tmp_path: Path) -> None:
    s = Settings.from_env(env(tmp_path, WS_MAX_CONNECTIONS_PER_IP="5", WS_MSG_RATE="10"))
    assert (s.ws_max_per_ip, s.ws_client_rate, s.ws_client_burst) == (5, 10, 20)
    s = Settings.from_env(env(tmp_path, WS_CLIENT_RATE="10", WS_MSG_BURST="3"))
    assert s.ws_client_burst == 10  # never below the rate, as in Igloo Server
    assert Settings.from_env(env(tmp_path, WS_MSG_BURST="100")).ws_client_burst == 100
    assert error_for(tmp_path, WS_MAX_PER_IP="4", WS_MAX_CONNECTIONS_PER_IP="5").startswith(
        "WS_MAX_CONNECTIONS_PER_IP: set to a different value than WS_MAX_PER_IP")


def test_rate_limit_windows_inherit_the_general_window(tmp_path: Path) -> None:
    s = Settings.from_env(env(tmp_path, RATE_LIMIT_WINDOW="60", RATE_LIMIT_RECOVERY_WINDOW="30"))
    assert (s.rate_limit_env_write_window, s.rate_limit_ws_upgrade_window) == (60, 60)
    assert s.rate_limit_recovery_window == 30 and s.nip46_session_rate_limit_window == 3600


def test_basic_auth_needs_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^BASIC_AUTH_PASS: "):
        Settings.from_env(env(tmp_path, BASIC_AUTH_USER="admin"))


def test_repr_redacts_secrets(tmp_path: Path) -> None:
    values = {"API_KEY": "k" * 32, "ADMIN_SECRET": "admin-secret-1", "BASIC_AUTH_USER": "u",
              "BASIC_AUTH_PASS": "basic-pass-1", "GROUP_CRED": "bfgroup1secretgroup",
              "SHARE_CRED": "bfshare1secretshare", "SESSION_SECRET": secrets.token_hex(32),
              "CREDENTIALS_KEY": secrets.token_hex(32)}
    s = Settings.from_env(env(tmp_path, **values))
    text = repr(s) + str(s)
    for name, value in values.items():
        if name != "BASIC_AUTH_USER":
            assert value not in text and value.lower() not in text
    assert s.credentials_key is not None and s.credentials_key.hex() not in text
    assert repr(s).count("<redacted>") == len(values) - 1
    with pytest.raises(AttributeError):
        s.api_key = "other"  # type: ignore[misc]


def test_parsing_touches_no_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    s = Settings.from_env(env(tmp_path, CREDENTIALS_DIRECTORY=str(creds)))
    assert s.credentials_directory == creds and s.credentials_key is None
    assert list(tmp_path.iterdir()) == []  # neither DATA_DIR nor a key file was created


# --- What the Igloo Server variables do in a running server (real app on a loopback port) ---------------


@pytest.mark.parametrize("overrides", [{"NODE_ENV": "production"}])
async def test_production_session_cookie_is_secure_over_http(igloo: Igloo) -> None:
    igloo.add_user()
    resp = await igloo.fetch("/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
                             body=json.dumps({"username": "alice", "password": PASSWORD}))
    session_cookie = next(c for c in resp.headers.get_list("Set-Cookie") if c.startswith("igloo_session="))
    assert resp.code == 200 and "Secure" in session_cookie


@pytest.mark.parametrize("overrides", [{"WS_MSG_RATE": "1", "WS_MSG_BURST": "6"}])
async def test_ws_msg_burst_sets_how_many_frames_go_at_once(igloo: Igloo) -> None:
    ws = await igloo.ws_key()
    await read_frame(ws)
    for _ in range(6):  # the whole burst is answered
        await ws.write_message('{"type":"ping"}')
        assert (await read_frame(ws))["type"] == "pong"  # type: ignore[index]
    for _ in range(5):  # the next frames (well within a second) overflow the bucket of 6 at 1/s
        try:
            await ws.write_message('{"type":"ping"}')
        except tornado.websocket.WebSocketClosedError:
            break
    await read_until_closed(ws)
    assert ws.close_code == 1008
