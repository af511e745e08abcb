"""The start-up steps that touch files, kept out of parsing: ``.env``, the credentials key, secret files.

``server.py`` calls them in order: ``load_environment`` → ``Settings.from_env`` → ``with_credentials_key``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from config.kinds import parse_key
from config.settings import ConfigError, Settings

ENV_FILE_NAME = ".env"
CREDENTIAL_FILE_NAME = "igloo-credentials-key"
KEY_FILE_NAME = "credentials.key"
COOKIE_SECRET_FILE = "cookie_secret"  # noqa: S105 - a file name, not a secret


def load_environment(
    env_file: Path | None = None, process_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment over the variables of ``env_file`` (default ``./.env``) when it exists.

    The process environment wins, so a service's EnvironmentFile or an exported variable overrides a
    copied Igloo Server ``.env``. The file is parsed by python-dotenv (quotes, ``export``, comments).
    """
    path = Path(ENV_FILE_NAME) if env_file is None else env_file
    process = dict(os.environ if process_env is None else process_env)
    if not path.is_file():
        return process
    try:
        from_file = {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{ENV_FILE_NAME}: cannot read {path}: {exc.__class__.__name__}") from None
    return {**from_file, **process}


def with_credentials_key(config: Settings) -> Settings:
    """``config`` with its credentials key: CREDENTIALS_KEY, else the systemd credential, else the key file.

    The key file ``DATA_DIR/credentials.key`` (64 hex characters, mode 0600) is created once with a random
    key and reused; files written by earlier versions are read the same way.
    """
    if config.credentials_key is not None:
        return config
    if config.credentials_directory is not None:
        path = config.credentials_directory / CREDENTIAL_FILE_NAME
        if path.exists():
            try:
                key = parse_key(path.read_bytes().decode("ascii"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                reason = "not ASCII" if isinstance(exc, UnicodeDecodeError) else str(exc)
                raise ConfigError(
                    f"CREDENTIALS_KEY: systemd credential {CREDENTIAL_FILE_NAME}: {reason}"
                ) from None
            return dataclasses.replace(config, credentials_key=key)
    path = config.data_dir / KEY_FILE_NAME
    try:
        key = parse_key(read_or_create_secret_file(path, 32, hex_text=True).decode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = "not ASCII" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ConfigError(f"DATA_DIR: cannot use {path}: {reason}") from None
    return dataclasses.replace(config, credentials_key=key)


def cookie_secret(config: Settings) -> str:
    """SESSION_SECRET, else the secret kept in ``DATA_DIR/cookie_secret`` (created once, mode 0600)."""
    if config.session_secret is not None:
        return config.session_secret
    return read_or_create_secret_file(config.data_dir / COOKIE_SECRET_FILE, 32, hex_text=True).decode("ascii")


def read_or_create_secret_file(path: Path, nbytes: int, hex_text: bool = False) -> bytes:
    """Return the secret stored at ``path``, creating it with ``nbytes`` random bytes and mode 0600."""
    if path.exists():
        return path.read_bytes().strip() if hex_text else path.read_bytes()
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
