"""config/startup.py: `.env` loading, the credentials key (file, systemd credential), the cookie secret."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from config.settings import ConfigError, Settings
from config.startup import cookie_secret, load_environment, with_credentials_key


def settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings.from_env({"DATA_DIR": str(tmp_path / "data"), **extra})


def test_key_file_created_once_with_0600_and_reused(tmp_path: Path) -> None:
    config = settings(tmp_path)
    first = with_credentials_key(config).credentials_key
    path = tmp_path / "data" / "credentials.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first is not None and len(first) == 32 and path.read_text() == first.hex()
    assert with_credentials_key(config).credentials_key == first
    assert config.credentials_key is None  # Settings stay frozen: a new object carries the key


def test_key_file_of_an_earlier_version_is_read(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "credentials.key").write_text(key.hex())
    assert with_credentials_key(settings(tmp_path)).credentials_key == key


def test_a_key_file_that_is_not_a_key_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "credentials.key").write_text("x" * 32)
    with pytest.raises(ConfigError, match=r"^DATA_DIR: cannot use .*credentials.key: expected 32 random"):
        with_credentials_key(settings(tmp_path))


def test_environment_key_and_systemd_credential_come_first(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    assert with_credentials_key(settings(tmp_path, CREDENTIALS_KEY=key.hex())).credentials_key == key
    creddir = tmp_path / "creds"
    creddir.mkdir()
    (creddir / "igloo-credentials-key").write_text(key.hex() + "\n")
    assert with_credentials_key(settings(tmp_path, CREDENTIALS_DIRECTORY=str(creddir))).credentials_key == key
    assert not (tmp_path / "data" / "credentials.key").exists()
    (creddir / "igloo-credentials-key").write_text("a" * 32)  # 32 characters were once taken as raw bytes
    with pytest.raises(ConfigError) as info:
        with_credentials_key(settings(tmp_path, CREDENTIALS_DIRECTORY=str(creddir)))
    assert str(info.value).startswith("CREDENTIALS_KEY: systemd credential igloo-credentials-key: expected")
    assert "a" * 32 not in str(info.value)


def test_credentials_directory_without_the_file_falls_back_to_the_key_file(tmp_path: Path) -> None:
    config = settings(tmp_path, CREDENTIALS_DIRECTORY=str(tmp_path / "empty"))
    assert with_credentials_key(config).credentials_key is not None
    assert (tmp_path / "data" / "credentials.key").exists()


def test_dotenv_is_read_and_the_process_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# copied from Igloo Server\n"
        'RELAYS=["wss://a.example","wss://b.example"]\n'
        "export HOST_PORT=9001\n"
        "SESSION_TIMEOUT=7200  # two hours\n"
        "API_KEY='quoted key with spaces'\n"
        "EMPTY=\n"
    )
    values = load_environment(env_file, {"HOST_PORT": "9002", "PATH": "/bin"})
    assert values["HOST_PORT"] == "9002" and values["PATH"] == "/bin"
    assert values["SESSION_TIMEOUT"] == "7200" and values["API_KEY"] == "quoted key with spaces"
    s = Settings.from_env(values)
    assert s.relays == ("wss://a.example", "wss://b.example") and s.session_timeout == 7200
    assert load_environment(tmp_path / "missing.env", {"A": "1"}) == {"A": "1"}


def test_cookie_secret_is_session_secret_or_a_file(tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    assert cookie_secret(settings(tmp_path, SESSION_SECRET=secret)) == secret
    assert not (tmp_path / "data").exists()
    made = cookie_secret(settings(tmp_path))
    assert len(made) == 64 and cookie_secret(settings(tmp_path)) == made
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "cookie_secret").st_mode) == 0o600
