"""An Igloo Server user's environment: its env.example as a .env, every variable set.

Tried as an Igloo Server user would: copy their `.env` next to Igloo and start it. The fixture is Igloo
Server's own env.example (see fixtures/README.md); its placeholders must be refused one by one with a
message naming the variable, and with real secrets in their place every variable must mean what it meant.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import stat
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket

from config import igloo_server
from config.settings import BY_NAME, ConfigError, Settings
from config.startup import load_environment
from tests.config.serverproc import clean_environment, free_port, launch, run_to_exit

pytestmark = pytest.mark.timeout(90)
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = FIXTURES / "igloo-server.env.example"
ROOT = Path(__file__).resolve().parents[2]
REAL = {
    "ADMIN_SECRET": secrets.token_hex(32),
    "API_KEY": secrets.token_hex(32),
    "BASIC_AUTH_PASS": "correct horse battery staple",
    "SESSION_SECRET": secrets.token_hex(32),
}


def example_values() -> dict[str, str]:
    """The example as Igloo reads a `.env` (no process environment)."""
    return load_environment(EXAMPLE, {})


def example_names() -> set[str]:
    return set(re.findall(r"^([A-Z_0-9]+)=", EXAMPLE.read_text(), re.MULTILINE))


def filled_example(replace: dict[str, str]) -> str:
    """The example file with some lines' values replaced (comments kept as they are)."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={replace[name]}" if "=" in line and name in replace else line)
    return "\n".join(lines) + "\n"


def test_every_variable_of_the_example_is_set() -> None:
    values = example_values()
    assert set(values) == example_names() and len(values) == 22  # all but DB_PATH, commented out there
    assert values["SESSION_TIMEOUT"] == "3600"  # the trailing "# ..." comment is not part of the value


def test_placeholders_are_refused_one_by_one_naming_the_variable() -> None:
    values = example_values()
    refused = []
    for _ in range(len(REAL) + 1):
        try:
            Settings.from_env(values)
            break
        except ConfigError as exc:
            name, _, message = str(exc).partition(": ")
            assert name in REAL, str(exc)
            assert values[name] not in message
            refused.append(name)
            values[name] = REAL[name]
    assert refused == ["ADMIN_SECRET", "API_KEY", "BASIC_AUTH_PASS", "SESSION_SECRET"]


def test_with_real_secrets_every_variable_means_what_it_meant() -> None:
    values = {**example_values(), **REAL}
    s = Settings.from_env(values)
    assert (s.host_name, s.host_port, s.is_loopback) == ("localhost", 8002, True)
    assert s.relays == ("wss://relay.primal.net",)
    assert s.auth_enabled and s.node_env == "development" and not s.production
    assert s.allowed_origins == ("http://localhost:3000", "http://localhost:8002")
    assert (s.api_key, s.basic_auth_user) == (REAL["API_KEY"], "admin")
    assert s.basic_auth_pass == REAL["BASIC_AUTH_PASS"]
    assert s.admin_secret == REAL["ADMIN_SECRET"] and s.session_secret == REAL["SESSION_SECRET"]
    assert s.session_timeout == 3600
    assert (s.rate_limit_enabled, s.rate_limit_window, s.rate_limit_max) == (True, 900, 600)
    assert (s.nip46_session_rate_limit_window, s.nip46_session_rate_limit_max) == (3600, 120)
    assert s.group_cred is None and s.share_cred is None and s.group_name is None and s.peer_policies == ()
    # Every variable of the example is either a setting here or named as having no effect.
    assert igloo_server.unused_variables(values) == ["HEADLESS"]
    assert example_names() <= set(BY_NAME) | set(igloo_server.NO_EFFECT) | {"DB_PATH"}


def test_db_path_from_the_example_is_refused() -> None:
    values = {**example_values(), **REAL, "DB_PATH": "/path/to/database"}
    with pytest.raises(ConfigError, match=r"^DB_PATH: .*DATA_DIR="):
        Settings.from_env(values)


def test_migrating_table_covers_every_igloo_server_variable() -> None:
    """Every variable Igloo Server reads is a row of docs/MIGRATING.md and is handled by config/."""
    names = set((FIXTURES / "igloo-server-variables.txt").read_text().split()) | example_names()
    assert len(names) >= 60
    table = (ROOT / "docs" / "MIGRATING.md").read_text()
    rows = {name for line in table.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z_0-9]+)`", line.split("|")[1])}
    assert names <= rows, sorted(names - rows)
    handled = set(BY_NAME) | set(igloo_server.NO_EFFECT) | set(igloo_server.REFUSED) | {"CI"}
    assert names <= handled, sorted(names - handled)


async def test_server_refuses_the_verbatim_example_with_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(EXAMPLE.read_bytes())
    code, stderr = await run_to_exit(tmp_path, clean_environment())
    assert code == 2
    assert stderr.splitlines() == [stderr.strip()]  # one line, no traceback
    assert stderr.startswith("igloo-server: configuration error: ADMIN_SECRET: Igloo Server's placeholder")
    assert not (tmp_path / "data").exists()  # nothing written before the configuration was accepted


async def test_server_starts_on_the_example_with_real_secrets(tmp_path: Path) -> None:
    port = free_port()
    relay = f"ws://127.0.0.1:{port}/"  # the example's public relay is replaced: tests stay on loopback
    (tmp_path / ".env").write_text(filled_example({**REAL, "RELAYS": json.dumps([relay])}))
    # HOST_PORT=8002 in .env; the process environment wins.
    server = await launch(tmp_path, clean_environment(HOST_PORT=str(port), HOST_NAME="127.0.0.1"), port)
    client = tornado.httpclient.AsyncHTTPClient()
    try:
        async def get(path: str, headers: dict[str, str]) -> tornado.httpclient.HTTPResponse:
            return await client.fetch(server.base + path, headers=headers, raise_error=False)

        env = await get("/api/env", {"X-API-Key": REAL["API_KEY"]})
        assert env.code == 200 and json.loads(env.body)["RELAYS"] == [relay]
        basic = base64.b64encode(f"admin:{REAL['BASIC_AUTH_PASS']}".encode()).decode()
        assert (await get("/api/env", {"Authorization": f"Basic {basic}"})).code == 200
        assert (await get("/api/env", {})).code == 401
        assert (await get("/api/env", {"X-API-Key": "your-secure-api-key-here"})).code == 401

        for origin, allowed in (("http://localhost:3000", True), ("https://evil.example", False)):
            request = tornado.httpclient.HTTPRequest(
                f"ws://127.0.0.1:{port}/api/events", headers={"X-API-Key": REAL["API_KEY"], "Origin": origin})
            ws = await tornado.websocket.websocket_connect(request)
            first = await ws.read_message()
            assert (first is not None) is allowed, origin
            if allowed:
                assert json.loads(first)["type"] == "system"
                ws.close()
            else:
                assert ws.close_code == 1008
    finally:
        await server.stop()
    assert server.proc.returncode == 0
    log = server.log()
    assert "Igloo Server settings with no effect here (see docs/MIGRATING.md): HEADLESS" in log
    for secret in REAL.values():
        assert secret not in log
    # SESSION_SECRET signs the cookies, so no cookie secret file; the credentials key was made at start-up.
    assert not (tmp_path / "data" / "cookie_secret").exists()
    key_file = tmp_path / "data" / "credentials.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text()) == 64
