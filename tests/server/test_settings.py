"""config/settings.py: parsing, validation (one message naming the variable), redaction, key files."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from config.settings import ConfigError, Settings


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DATA_DIR": str(tmp_path / "data"), **extra}


def test_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(env(tmp_path))
    assert (s.host_name, s.host_port, s.session_timeout) == ("127.0.0.1", 8002, 3600)
    assert s.auth_enabled and s.event_buffer_size == 1000 and s.ws_max_buffer == 1 << 20
    assert (s.ws_max_per_ip, s.ws_max_connections, s.ws_ping_interval) == (50, 10000, 25.0)
    assert (s.rate_limit_login_max, s.rate_limit_login_window) == (5, 900)
    node = (s.sign_timeout, s.peer_ping_interval, s.sign_budget, s.sign_budget_window)
    assert node == (5.0, 30.0, 20, 3600)
    assert s.demo_enabled and not s.approval_mode and s.relays == ()
    assert s.effective_relays == ("ws://127.0.0.1:8002/",)


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
    assert Settings.from_env(env(tmp_path, RELAYS="wss://a, wss://b,")).relays == ("wss://a", "wss://b")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOST_PORT", "http"), ("HOST_PORT", "70000"), ("AUTH_ENABLED", "maybe"), ("SESSION_TIMEOUT", "-1"),
        ("RELAYS", "http://not-ws"), ("RELAYS", "[1, 2]"), ("ALLOWED_ORIGINS", "example.com"),
        ("API_KEY", "short"), ("WS_MAX_BUFFER", "10"), ("FROSTR_SIGN_TIMEOUT", "soon"),
        ("GROUP_CRED", "nope"), ("CREDENTIALS_KEY", "abcd"), ("LOG_LEVEL", "LOUD"),
        ("RELAY_MAX_EVENTS", "-5"), ("RELAY_MAX_AGE", "0"), ("RELAY_MAX_CONNECTIONS", "lots"),
    ],
)
def test_bad_value_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, **{name: value}))
    message = str(info.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    if name in {"API_KEY", "CREDENTIALS_KEY"}:
        assert value not in message  # secrets are never echoed


def test_basic_auth_needs_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^BASIC_AUTH_PASS: "):
        Settings.from_env(env(tmp_path, BASIC_AUTH_USER="admin"))


def test_repr_redacts_secrets(tmp_path: Path) -> None:
    secrets = {"API_KEY": "k" * 32, "ADMIN_SECRET": "admin-secret-1", "BASIC_AUTH_USER": "u",
               "BASIC_AUTH_PASS": "basic-pass-1", "GROUP_CRED": "bfgroup1secretgroup",
               "SHARE_CRED": "bfshare1secretshare"}
    s = Settings.from_env(env(tmp_path, **secrets))
    text = repr(s) + str(s)
    for name, value in secrets.items():
        if name != "BASIC_AUTH_USER":
            assert value not in text
    assert s.credentials_key is not None and s.credentials_key.hex() not in text
    assert "<redacted>" in text


def test_credentials_key_file_created_once_with_0600(tmp_path: Path) -> None:
    first = Settings.from_env(env(tmp_path)).credentials_key
    path = tmp_path / "data" / "credentials.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first is not None and len(first) == 32
    assert Settings.from_env(env(tmp_path)).credentials_key == first


def test_credentials_key_sources(tmp_path: Path) -> None:
    key = bytes(range(32))
    assert Settings.from_env(env(tmp_path, CREDENTIALS_KEY=key.hex())).credentials_key == key
    creddir = tmp_path / "creds"
    creddir.mkdir()
    (creddir / "igloo-credentials-key").write_text(bytes(32 * [7]).hex() + "\n")
    got = Settings.from_env(env(tmp_path, CREDENTIALS_DIRECTORY=str(creddir))).credentials_key
    assert got == bytes(32 * [7])
    assert not (tmp_path / "data" / "credentials.key").exists()


def test_env_example_documents_every_variable(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    source = (root / "config" / "settings.py").read_text()
    example = (root / "config" / "igloo.env.example").read_text()
    names = set(re.findall(r'env\.(?:get|raw)\("([A-Z_]+)"', source)) - {"CREDENTIALS_DIRECTORY"}
    assert len(names) > 30
    documented = set(re.findall(r"^#?([A-Z_]+)=", example, re.MULTILINE))
    assert names <= documented, names - documented
    # The uncommented values are the defaults and must load.
    values = dict(line.split("=", 1) for line in example.splitlines() if re.match(r"^[A-Z_]+=", line))
    values["DATA_DIR"] = str(tmp_path)
    assert Settings.from_env(values) == Settings.from_env({"DATA_DIR": str(tmp_path)})
