"""Multi-host: three servers of one 2-of-3 group and a relay, each in a network namespace this test makes
(a bridge in the relay's namespace, one veth per member; addresses 10.213.0.0/24 exist only inside these
namespaces and are never routed anywhere else). One member's link goes down: signing continues with the
other two, the cut-off peer shows offline, and it is online again once its link is back. Namespaces are
deleted at the end, even on failure. Skipped unless root with a working ``ip netns``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.crypto import curve
from node.keytools import keygen
from tests.igloo_process import API_KEY, ROOT

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]
PREFIX = f"igl{os.getpid() % 100000}"
RELAY_IP = "10.213.0.1"
PORT = 8002
SIGN_TIMEOUT = 2.0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def netns_usable() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None or shutil.which("curl") is None:
        return "needs iproute2 and curl"
    probe = f"{PREFIX}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns is not permitted: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


@pytest.fixture
def topology() -> Iterator[dict[str, Any]]:
    """The relay namespace with a bridge, three member namespaces each with a veth into it."""
    reason = netns_usable()
    if reason:
        pytest.skip(reason)
    relay_ns = f"{PREFIX}-relay"
    members = [f"{PREFIX}-m{n}" for n in range(3)]
    try:
        ip("netns", "add", relay_ns)
        ip("-n", relay_ns, "link", "set", "lo", "up")
        ip("-n", relay_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", relay_ns, "addr", "add", f"{RELAY_IP}/24", "dev", "br0")
        ip("-n", relay_ns, "link", "set", "br0", "up")
        addresses = []
        for n, ns in enumerate(members):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"port{n}", "netns", relay_ns)
            ip("-n", relay_ns, "link", "set", f"port{n}", "master", "br0", "up")
            address = f"10.213.0.{11 + n}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            addresses.append(address)
        yield {"relay": relay_ns, "members": members, "addresses": addresses}
    finally:
        for ns in [*members, relay_ns]:
            ip("netns", "del", ns, check=False)


class NsServer:
    """`python server.py` inside a namespace, reached with curl run in the same namespace."""

    def __init__(self, ns: str, host: str, data_dir: Path, env: dict[str, str]) -> None:
        self.ns, self.host, self.data_dir = ns, host, data_dir
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("API_KEY", "GROUP_CRED", "SHARE_CRED", "RELAYS"))}
        self.env.update({"HOST_NAME": host, "HOST_PORT": str(PORT), "DATA_DIR": str(data_dir),
                         "API_KEY": API_KEY, "WS_PING_INTERVAL": "0", "LOG_LEVEL": "WARNING",
                         "IGLOO_DEMO": "false", **env})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, str(ROOT / "server.py")],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()

    async def call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        argv = ["ip", "netns", "exec", self.ns, "curl", "-s", "-m", str(timeout), "-X", method,
                "-H", f"X-API-Key: {API_KEY}", "-H", "Content-Type: application/json", "-w", "\n%{http_code}"]
        if body is not None:
            argv += ["--data-binary", json.dumps(body)]
        argv.append(f"http://{self.host}:{PORT}{path}")
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 5)
        text, _, code = out.decode().rpartition("\n")
        try:
            return int(code), json.loads(text) if text else None
        except ValueError:
            return int(code or 0), text

    async def wait(self, check: Any, timeout: float, path: str = "/api/status") -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            code, body = await self.call("GET", path, timeout=2)
            if code == 200 and check(body):
                return body
            await asyncio.sleep(0.1)
        tail = (self.data_dir / "server.log").read_text(errors="replace")[-1500:]
        raise AssertionError(f"{self.ns}: {path} condition not met in {timeout}s\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def test_partitioned_member(topology: dict[str, Any], tmp_path: Path) -> None:
    keys = keygen(2, 3)
    relay_url = f"ws://{RELAY_IP}:{PORT}/"
    relay = NsServer(topology["relay"], RELAY_IP, tmp_path / "relay", {"RELAY_WRITE": "all"})
    members = [
        NsServer(ns, addr, tmp_path / f"m{n}", {
            "GROUP_CRED": keys["group"], "SHARE_CRED": keys["shares"][n], "RELAYS": relay_url,
            "FROSTR_SIGN_TIMEOUT": str(round(SIGN_TIMEOUT * 1000)), "PEER_PING_INTERVAL": "1",
            "SIGN_BUDGET": "1000"})
        for n, (ns, addr) in enumerate(zip(topology["members"], topology["addresses"], strict=True))
    ]
    servers = [relay, *members]
    try:
        for server in servers:
            server.start()
        await relay.wait(lambda s: True, 20)
        await asyncio.gather(*(m.wait(lambda s: bool(s.get("ready")), 20) for m in members))
        a, _, c = members
        c_pubkey = (await c.call("GET", "/api/peers/self"))[1]["pubkey"]

        async def sign_ok() -> float:
            message = secrets.token_hex(32)
            started = time.monotonic()
            code, body = await a.call("POST", "/api/sign", {"message": message})
            took = time.monotonic() - started
            assert code == 200, body
            assert curve.schnorr_verify(bytes.fromhex(keys["group_pubkey"]), bytes.fromhex(message),
                                        bytes.fromhex(body["signature"]))
            return took

        def c_online(value: bool) -> Any:
            return lambda body: {p["pubkey"]: p["online"] for p in body["peers"]}[c_pubkey] is value

        await a.wait(c_online(True), 10, "/api/peers")
        await sign_ok()
        ip("-n", c.ns, "link", "set", "eth0", "down")  # cut the host off
        for _ in range(4):
            assert await sign_ok() < SIGN_TIMEOUT + 0.5  # curl and namespace entry add a little
        await a.wait(c_online(False), 10, "/api/peers")
        ip("-n", c.ns, "link", "set", "eth0", "up")
        await a.wait(c_online(True), 25, "/api/peers")
        await sign_ok()
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
