"""A process under measurement: `python server.py` (or any script) spawned as a user would, read via /proc.

Used by events_bench.py and soak.py. CPU is utime+stime from /proc/PID/stat, RSS is VmRSS from
/proc/PID/status, open fds are the entries of /proc/PID/fd.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import tornado.httpclient

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "bench-api-key-" + "b" * 26


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    return sum(proc_cpu_split(pid))


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def proc_fds(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class CpuMeter:
    """CPU% of one process over a window (100 % = one core busy)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.split0 = proc_cpu_split(pid)
        self.t0 = time.monotonic()

    def percent(self) -> float:
        """CPU% since construction."""
        return sum(self.split())

    def split(self) -> tuple[float, float]:
        """(user, system) CPU% since construction."""
        user, system = proc_cpu_split(self.pid)
        wall = max(1e-9, time.monotonic() - self.t0)
        return 100.0 * (user - self.split0[0]) / wall, 100.0 * (system - self.split0[1]) / wall


class ServerProc:
    """One `python <script>` process on a loopback port with an environment; /api/status polled for ready."""

    def __init__(
        self,
        port: int,
        env: dict[str, str],
        *,
        script: str = "server.py",
        args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.script = script
        self.args = args or []
        self.env = {k: v for k, v in os.environ.items() if k not in _IGLOO_VARS}
        self.env.update(env)
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=256)

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> None:
        """Start the process (stderr to ``log_path``)."""
        log = self.log_path.open("ab") if self.log_path is not None else asyncio.subprocess.DEVNULL
        self.spawned_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / self.script),
            *self.args,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        if not isinstance(log, int):
            log.close()

    async def wait_status(self, timeout: float = 20.0, *, ready: bool = False) -> float:
        """Poll /api/status until 200 (and the node ready, if asked); seconds since spawn."""
        deadline = time.monotonic() + timeout
        first: float | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.returncode is not None:
                raise RuntimeError(f"{self.script} exited: {self.log_tail()}")
            try:
                code, body = await self.request("GET", "/api/status", timeout=2.0)
            except OSError:
                code, body = 0, None
            if code == 200:
                first = first or time.monotonic() - self.spawned_at
                if not ready or (isinstance(body, dict) and body.get("ready")):
                    return first
            await asyncio.sleep(0.005 if first is None else 0.05)
        raise RuntimeError(f"{self.script} on port {self.port} not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the process's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-1500:]

    async def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> tuple[int, Any]:
        """An HTTP request with the API key: (status, parsed JSON or None)."""
        req = tornado.httpclient.HTTPRequest(
            self.base + path,
            method=method,
            request_timeout=timeout,
            connect_timeout=timeout,
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
        )
        resp = await self.client.fetch(req, raise_error=False)
        if resp.code == 599:
            raise OSError(str(resp.error))
        try:
            return resp.code, json.loads(resp.body) if resp.body else None
        except ValueError:
            return resp.code, None

    async def status(self) -> dict[str, Any]:
        """GET /api/status."""
        code, body = await self.request("GET", "/api/status")
        if code != 200 or not isinstance(body, dict):
            raise RuntimeError(f"/api/status answered {code}")
        return body

    def rss(self) -> int:
        """Current RSS in bytes."""
        return proc_rss_bytes(self.pid)

    def fds(self) -> int:
        """Open fds."""
        return proc_fds(self.pid)

    def cpu(self) -> CpuMeter:
        """A CPU meter starting now."""
        return CpuMeter(self.pid)

    async def stop(self, timeout: float = 8.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode

    async def kill(self) -> None:
        """SIGKILL (a crash)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()


_IGLOO_VARS = {
    "API_KEY",
    "ADMIN_SECRET",
    "AUTH_ENABLED",
    "BASIC_AUTH_USER",
    "BASIC_AUTH_PASS",
    "GROUP_CRED",
    "SHARE_CRED",
    "RELAYS",
    "HOST_PORT",
    "HOST_NAME",
    "DATA_DIR",
    "CREDENTIALS_KEY",
    "SIGN_BUDGET",
    "WS_MAX_PER_IP",
    "WS_MAX_BUFFER",
    "EVENT_BUFFER_SIZE",
    "LOG_LEVEL",
}


def free_port() -> int:
    """A free loopback TCP port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def igloo_env(port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a bench server: API key, loopback port, its own DATA_DIR, quiet logs."""
    env = {
        "HOST_PORT": str(port),
        "DATA_DIR": str(data_dir),
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        # One loopback address plays thousands of clients here: per-client limits would measure themselves.
        "RATE_LIMIT_ENABLED": "false",
        "HTTP_MAX_PER_IP": "1000000",
        "HTTP_MAX_CONNECTIONS": "1000000",
    }
    env.update(extra)
    return env
