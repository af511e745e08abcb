"""Igloo servers as real subprocesses (`python server.py`) for the fault, interop and leak tests.

```python
async with ServerProc(data_dir, env={"GROUP_CRED": ..., "SHARE_CRED": ..., "RELAYS": ""}) as igloo:
    status, body = await igloo.post("/api/sign", {"message": sighash})
```

Start (optionally until the node is ready), SIGKILL, SIGSTOP, restart on the same port and DATA_DIR,
JSON calls with the API key, event-stream clients. ``stop()`` is bounded and never hangs; the server's
output goes to ``log_path`` (DATA_DIR/server.log) so a failing test can show it and a leak test can
search it for secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.websocket

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-api-key-" + "f" * 24


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProc:
    """One `python server.py` on 127.0.0.1 (or ``host``) with its own DATA_DIR."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        netns: str | None = None,
        python_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.base = f"http://{host}:{self.port}"
        self.relay_url = f"ws://{host}:{self.port}/"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.netns = netns
        self.python_args = python_args or []  # e.g. ["-m", "cProfile", "-o", path] for the bench
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("API_KEY", "ADMIN_SECRET", "AUTH_", "BASIC_AUTH", "GROUP_CRED",
                                         "SHARE_", "RELAYS", "CREDENTIALS_KEY"))}
        self.env.update({
            "HOST_NAME": host,
            "HOST_PORT": str(self.port),
            "DATA_DIR": str(data_dir),
            "API_KEY": API_KEY,
            "WS_PING_INTERVAL": "0",
            "PEER_PING_INTERVAL": "3600",
            "LOG_LEVEL": "WARNING",
            "IGLOO_DEMO": "true",
            **(env or {}),
        })
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=32)

    async def start(self, timeout: float = 20.0, ready: bool = False) -> ServerProc:
        """Spawn; wait until /api/status answers (and, with ``ready``, the node is ready).

        When that does not happen the server is stopped and ``RuntimeError`` carries its log tail.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        argv = [sys.executable, *self.python_args, str(ROOT / "server.py")]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log, stderr=self._log,
        )
        try:
            await self.wait_status(lambda s: not ready or bool(s.get("ready")), timeout)
        except BaseException:
            await self.stop()
            raise
        return self

    async def wait_status(self, check: Any, timeout: float) -> dict[str, Any]:
        """Poll /api/status until ``check(status)`` holds; raise with the log tail otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                code, status = await self.call("GET", "/api/status", timeout=2.0)
                if code == 200 and check(status):
                    return status  # type: ignore[no-any-return]
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"status condition not met within {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the server's stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One request with the API key: (status, parsed JSON or text). OSError when unreachable."""
        request = tornado.httpclient.HTTPRequest(
            self.base + path, method=method,
            headers=headers if headers is not None else {"X-API-Key": API_KEY,
                                                         "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body), request_timeout=timeout,
            connect_timeout=min(timeout, 5.0),
        )
        try:
            response = await self.client.fetch(request, raise_error=False)
        except tornado.httpclient.HTTPClientError as exc:  # timeouts are raised even with raise_error=False
            raise OSError(str(exc)) from None
        if response.code == 599:
            raise OSError(str(response.error))
        text = response.body.decode() if response.body else ""
        try:
            return response.code, json.loads(text) if text else None
        except json.JSONDecodeError:
            return response.code, text

    async def get(self, path: str) -> tuple[int, Any]:
        """GET with the API key: (status, parsed JSON)."""
        return await self.call("GET", path)

    async def post(self, path: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
        """POST JSON with the API key: (status, parsed JSON)."""
        return await self.call("POST", path, body, timeout)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        """PUT JSON with the API key: (status, parsed JSON)."""
        return await self.call("PUT", path, body)

    async def events(self, since: int | None = None) -> tornado.websocket.WebSocketClientConnection:
        """An /api/events client authenticated with the API key."""
        query = "" if since is None else f"?since={since}"
        request = tornado.httpclient.HTTPRequest(
            f"ws://{self.host}:{self.port}/api/events{query}", headers={"X-API-Key": API_KEY},
            connect_timeout=5.0,
        )
        return await tornado.websocket.websocket_connect(request)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.proc.pid if self.proc is not None else None

    def signal(self, sig: int) -> None:
        """Send a signal to the server process."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
        self._close_log()

    async def stop(self) -> None:
        """SIGCONT + SIGTERM, kill after 8 s; bounded and idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 8)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> ServerProc:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self.client.close()


async def read_json(ws: tornado.websocket.WebSocketClientConnection, timeout: float = 5.0) -> Any:
    """The next frame as JSON, or None when the socket closed."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)
