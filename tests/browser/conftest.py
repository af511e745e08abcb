"""A real Igloo server (a ``python server.py`` subprocess) and the system's headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.igloo_process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOKED_SERVER = Path(__file__).resolve().parent / "hooked_server.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 20.0


class IglooProcess:
    """``python server.py`` on a loopback port with its own DATA_DIR; can be killed and started again."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "HOST_PORT": str(port),
            "HOST_NAME": "127.0.0.1",
            "ADMIN_SECRET": "browser-test-admin-secret",
            "API_KEY": "browser-test-api-key-0123456789abcdef",
            "SESSION_TIMEOUT": "3600",
            "PYTHONUNBUFFERED": "1",
        }
        for var in ("GROUP_CRED", "SHARE_CRED", "RELAYS"):
            self.env.pop(var, None)

    def adduser(self, username: str, password: str) -> None:
        """Create a user through the CLI, the way an operator would."""
        subprocess.run(
            [sys.executable, "server.py", "adduser", username, "--password-stdin"],
            input=(password + "\n").encode(),
            cwd=REPO_ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self) -> None:
        """Start the server and wait until /api/status answers."""
        log = self.log_path.open("ab")
        # The real server.py, wrapped only to add POST /__test__/publish (see hooked_server.py).
        self.proc = subprocess.Popen(
            [sys.executable, str(HOOKED_SERVER)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/api/status", timeout=1) as res:
                    if res.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {START_TIMEOUT} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """Stop the server abruptly (no goodbye frames), as a crash or power loss would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), falling back to kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log_tail(self, n: int = 40) -> str:
        """The last lines of the server's output (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def status(self) -> dict[str, Any]:
        """GET /api/status with the API key (without one it is only the health document)."""
        key = {"X-API-Key": self.env["API_KEY"]}
        request = urllib.request.Request(self.base + "/api/status", headers=key)
        with urllib.request.urlopen(request, timeout=5) as res:
            body: dict[str, Any] = json.loads(res.read())
        return body

    def api_login(self, username: str = USERNAME, password: str = PASSWORD) -> dict[str, Any]:
        """POST /api/auth/login (JSON); each login is an event on the stream."""
        req = urllib.request.Request(
            self.base + "/api/auth/login",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                body: dict[str, Any] = json.loads(res.read())
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
        return body

    def publish_event(self, type_: str = "info", message: str = "browser test", data: Any = None) -> int:
        """Publish one event through the server's EventHub; return its seq."""
        req = urllib.request.Request(
            self.base + "/__test__/publish",
            data=json.dumps({"type": type_, "message": message, "data": data}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            frame: dict[str, Any] = json.loads(res.read())
        return int(frame["seq"])


@pytest.fixture(scope="module")
def igloo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IglooProcess]:
    """One real server per test module, with one user."""
    if not (REPO_ROOT / "server.py").exists():
        pytest.skip("server.py is not there yet")
    server = IglooProcess(tmp_path_factory.mktemp("igloo-data"), free_port())
    server.adduser(USERNAME, PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system Chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: install Debian's 'chromium' package to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
