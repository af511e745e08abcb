"""A running Igloo for the compatibility suite: three `python server.py` processes of one 2-of-3 group on
127.0.0.1 (the first is the one under test; the other two are its co-signers on its embedded relay), an
account, an API key and Basic credentials, so Igloo Server's documented requests can run as they are."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.keytools import keygen
from tests.igloo_process import ROOT, free_port

FIXTURES = Path(__file__).resolve().parent / "fixtures"
API_KEY = "compat-api-key-" + "c" * 24
ADMIN_SECRET = "compat-admin-secret-0123"
BASIC = ("admin", "basic-pass-for-compat")
USER = ("alice", "Tundra-Fox-42!")
GROUP_NAME = "compat group"


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Reply:
    """One HTTP answer: status, parsed JSON (or text), headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Member:
    """One server process."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def relay(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def log(self) -> str:
        try:
            return (self.data_dir / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def member_env(member: Member, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("API_KEY", "ADMIN_SECRET", "AUTH_", "BASIC_AUTH", "GROUP_", "SHARE_",
                                "RELAYS", "CREDENTIALS_KEY", "TRUST_PROXY"))}
    env.update({"HOST_NAME": "127.0.0.1", "HOST_PORT": str(member.port), "DATA_DIR": str(member.data_dir),
                "API_KEY": API_KEY, "WS_PING_INTERVAL": "0", "PEER_PING_INTERVAL": "3600",
                "LOG_LEVEL": "WARNING", "IGLOO_DEMO": "false", "SIGN_BUDGET": "10000",
                "FROSTR_SIGN_TIMEOUT": "5000",
                # Every documented operation runs from one address, some with deliberately wrong Bearer
                # tokens: the per-client limits (tests/server/test_throttling.py) are not checked here.
                "RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_LOGIN_MAX": "1000000", **extra})
    return env


class Igloo:
    """The server under test and its two co-signers."""

    def __init__(self, tmp: Path) -> None:
        self.keys = keygen(threshold=2, total=3)
        self.target = Member(free_port(), tmp / "target")
        self.peers = [Member(free_port(), tmp / f"peer{n}") for n in (1, 2)]
        self.session_id: str | None = None

    def peer_pubkeys(self) -> list[str]:
        """The target's co-signers (x-only hex)."""
        from node.crypto.credentials import decode_group, decode_share

        own = decode_share(self.keys["shares"][0]).idx
        return [c.pubkey[1:].hex() for c in decode_group(self.keys["group"]).commits if c.idx != own]

    # --- processes -------------------------------------------------------------------------------

    def start(self) -> None:
        target_env = member_env(self.target, {"ADMIN_SECRET": ADMIN_SECRET, "BASIC_AUTH_USER": BASIC[0],
                                              "BASIC_AUTH_PASS": BASIC[1], "GROUP_NAME": GROUP_NAME})
        self.target.data_dir.mkdir(parents=True)
        created = subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "adduser", USER[0], "--password-stdin"],
            input=USER[1] + "\n", env=target_env, capture_output=True, text=True, timeout=60,
            cwd=self.target.data_dir)
        assert created.returncode == 0, created.stderr
        self.spawn(self.target, target_env)
        for index, peer in enumerate(self.peers, start=1):
            peer.data_dir.mkdir(parents=True)
            self.spawn(peer, member_env(peer, {"GROUP_CRED": self.keys["group"],
                                               "SHARE_CRED": self.keys["shares"][index],
                                               "RELAYS": self.target.relay}))
        for member in (self.target, *self.peers):
            self.wait(member, lambda status: True)
        # The credentials go in through Igloo Server's own documented request (POST /api/env).
        credentials = {"GROUP_CRED": self.keys["group"], "SHARE_CRED": self.keys["shares"][0]}
        reply = self.call("POST", "/api/env", credentials)
        assert reply.status == 200, reply.body
        self.wait_ready()

    def spawn(self, member: Member, env: dict[str, str]) -> None:
        with (member.data_dir / "server.log").open("ab") as log:
            member.process = subprocess.Popen([sys.executable, str(ROOT / "server.py")], env=env,
                                              cwd=member.data_dir, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=log)

    def wait(self, member: Member, check: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert member.process is not None and member.process.poll() is None, member.log()
            try:
                reply = self.call("GET", "/api/status", base=member.base, timeout=2.0)
                if reply.status == 200 and check(reply.body):
                    return reply.body  # type: ignore[no-any-return]
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"status condition not met: {member.log()}")

    def wait_ready(self) -> None:
        """The target's node runs, is subscribed, and both co-signers answer a ping."""
        self.wait(self.target, lambda s: bool(s.get("ready")))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self.call("POST", "/api/peers/ping", {"target": "all"})
            if reply.status == 200 and all(r["success"] for r in reply.body["results"]):
                return
            time.sleep(0.2)
        raise AssertionError(f"co-signers do not answer: {self.target.log()}")

    def stop(self) -> None:
        for member in (self.target, *self.peers):
            if member.process is not None and member.process.poll() is None:
                member.process.terminate()
        for member in (self.target, *self.peers):
            if member.process is not None:
                try:
                    member.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    member.process.kill()
                    member.process.wait()

    # --- requests --------------------------------------------------------------------------------

    def auth_headers(self, auth: str) -> dict[str, str]:
        """Headers for one of the ways Igloo Server documents to authenticate."""
        if auth == "api-key":
            return {"X-API-Key": API_KEY}
        if auth == "bearer":
            return {"Authorization": f"Bearer {API_KEY}"}
        if auth == "basic":
            return {"Authorization": "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()}
        if auth == "admin-bearer":
            return {"Authorization": f"Bearer {ADMIN_SECRET}"}
        if auth == "session":
            return {"X-Session-ID": self.session()}
        if auth == "own-session":  # a session of its own (a logout must not end the shared one)
            return {"X-Session-ID": self.new_session()}
        assert auth == "none", auth
        return {}

    def session(self) -> str:
        if self.session_id is None:
            self.session_id = self.new_session()
        return self.session_id

    def new_session(self) -> str:
        login = {"username": USER[0], "password": USER[1]}
        reply = self.call("POST", "/api/auth/login", login, auth="none")
        assert reply.status == 200, reply.body
        return str(reply.body["sessionId"])

    def call(self, method: str, path: str, body: Any = None, *, auth: str = "api-key",
             headers: dict[str, str] | None = None, raw: bytes | None = None, base: str | None = None,
             timeout: float = 30.0) -> Reply:
        """One request; JSON body unless ``raw`` is given (then exactly those bytes and ``headers``)."""
        all_headers = self.auth_headers(auth)
        data = raw
        if raw is None and body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        elif raw is None and method in ("POST", "PUT"):
            data = b""
        all_headers.update(headers or {})
        request = urllib.request.Request((base or self.target.base) + path, data=data, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text, got = response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, text, got = exc.code, exc.read().decode(), dict(exc.headers)
        try:
            parsed: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return Reply(status, parsed, got)


@pytest.fixture(scope="module")
def igloo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Igloo]:
    running = Igloo(tmp_path_factory.mktemp("compat"))
    try:
        running.start()
        yield running
    finally:
        running.stop()
