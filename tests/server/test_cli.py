"""The igloo-server command line and a real server process: start, config errors, adduser, keygen,
recover, and a graceful SIGTERM (sockets closed with 1001, event log flushed, exit 0)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.testing
import tornado.websocket

from tests.server.conftest import API_KEY

ROOT = Path(__file__).resolve().parents[2]


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEY", "ADMIN_SECRET", "AUTH_"))}
    env.update({"DATA_DIR": str(data_dir), "API_KEY": API_KEY, "WS_PING_INTERVAL": "0", **extra})
    return env


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def free_port() -> int:
    sock, port = tornado.testing.bind_unused_port()
    sock.close()
    return port


def test_bad_config_one_line_exit_2(tmp_path: Path) -> None:
    result = run_cli("serve", env=server_env(tmp_path, HOST_PORT="eighty"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HOST_PORT" in lines[0]


def test_adduser_from_stdin(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    ok = run_cli("adduser", "admin", "--password-stdin", env=env, stdin="a long passphrase\n")
    assert ok.returncode == 0, ok.stderr
    again = run_cli("adduser", "admin", "--password-stdin", env=env, stdin="a long passphrase\n")
    assert again.returncode == 1 and "already taken" in again.stderr
    too_long = run_cli("adduser", "bob", "--password-stdin", env=env, stdin="x" * 80 + "\n")
    assert too_long.returncode == 1 and "72 bytes" in too_long.stderr
    with sqlite3.connect(tmp_path / "igloo.db") as db:
        rows = db.execute("SELECT username, password_hash FROM users").fetchall()
    assert [r[0] for r in rows] == ["admin"] and b"a long passphrase" not in rows[0][1]


def test_keygen_and_recover(tmp_path: Path) -> None:
    pytest.importorskip("node.keytools")
    env = server_env(tmp_path)
    made = run_cli("keygen", "--threshold", "2", "--total", "3", env=env)
    assert made.returncode == 0, made.stderr
    keyset = json.loads(made.stdout)
    assert keyset["group"].startswith("bfgroup1") and len(keyset["shares"]) == 3
    back = run_cli("recover", "--group", keyset["group"], "--share", keyset["shares"][0],
                   "--share", keyset["shares"][2], env=env)
    assert back.returncode == 0 and back.stdout.strip().startswith("nsec1"), back.stderr
    bad = run_cli("keygen", "--threshold", "4", "--total", "3", env=env)
    assert bad.returncode == 1 and "threshold" in bad.stderr


async def wait_ready(port: int, proc: subprocess.Popen[Any]) -> None:
    client = tornado.httpclient.AsyncHTTPClient()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            await client.fetch(f"http://127.0.0.1:{port}/api/status")
            return
        except (OSError, tornado.httpclient.HTTPClientError):
            await asyncio.sleep(0.1)
    raise AssertionError("server did not start")


async def test_sigterm_closes_sockets_1001_and_flushes(io_loop: Any, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, HOST_PORT=str(port))
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await wait_ready(port, proc)
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/api/events?since=0",
                                                 headers={"X-API-Key": API_KEY})
        ws = await tornado.websocket.websocket_connect(request)
        relay_client = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/")
        hello = json.loads(await asyncio.wait_for(ws.read_message(), 5))
        started = json.loads(await asyncio.wait_for(ws.read_message(), 5))
        assert hello["message"] == "Connected to event stream"
        # the start-up event reaches a client that connects later
        assert started["message"] == "Igloo server started" and started["seq"] == 1
        seqs = [started["seq"]]
        while True:  # the node's start-up event (no credentials in this environment) goes out too
            event = json.loads(await asyncio.wait_for(ws.read_message(), 5))
            seqs.append(event["seq"])
            if event["message"].startswith("No credentials yet"):
                break
        proc.send_signal(signal.SIGTERM)
        while (message := await asyncio.wait_for(ws.read_message(), 5)) is not None:
            seqs.append(json.loads(message)["seq"])
        assert ws.close_code == 1001
        assert await asyncio.wait_for(relay_client.read_message(), 5) is None
        assert relay_client.close_code == 1001
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, proc.wait, 10)
        assert code == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        assert API_KEY not in stderr
        # no account and no ADMIN_SECRET: a one-time setup token, named in the log but never printed
        token_file = tmp_path / "setup-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert str(token_file) in stderr and token_file.read_text() not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    with sqlite3.connect(tmp_path / "igloo.db") as db:
        # everything published before the shutdown is on disk
        assert db.execute("SELECT MAX(seq) FROM events").fetchone()[0] >= max(s for s in seqs if s)


def test_console_script_installed() -> None:
    script = Path(sys.executable).parent / "igloo-server"
    if not script.exists():
        pytest.skip("igloo-server is not installed in this environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "adduser" in result.stdout and "keygen" in result.stdout
