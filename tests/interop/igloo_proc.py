"""Igloo's own server as a real subprocess (`python server.py`) for interop tests and the signing bench.

```python
async with IglooServer(group, share, data_dir, relays=[]) as igloo:   # [] = the embedded relay
    igloo.relay_url                      # ws://127.0.0.1:<port>/ (its embedded relay)
    status, body = await igloo.post("/api/sign", {"message": sighash})
```

`start()` waits until `/api/status` says the node is ready (its subscription got an EOSE). `stop()` sends
SIGTERM, then kills after a bound; it never hangs. stderr goes to `log_path` (DATA_DIR/server.log) so a
failing test can show it, and so a secret that leaked into a log line can be searched for.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.websocket

from tests.interop.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "interop-api-key-" + "k" * 24


class IglooServer:
    """`python server.py` on a free loopback port with GROUP_CRED/SHARE_CRED from the environment."""

    def __init__(
        self,
        group: str,
        share: str,
        data_dir: Path,
        *,
        relays: list[str] | None = None,
        sign_timeout: float = 5.0,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        python_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.relay_url = f"ws://127.0.0.1:{self.port}/"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self._env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("API_KEY", "ADMIN_SECRET", "AUTH_", "BASIC_AUTH", "GROUP_CRED", "SHARE_"))
        }
        self._env.update({
            "GROUP_CRED": group,
            "SHARE_CRED": share,
            "RELAYS": ",".join(relays or []),
            "HOST_PORT": str(self.port),
            "DATA_DIR": str(data_dir),
            "API_KEY": API_KEY,
            "FROSTR_SIGN_TIMEOUT": str(sign_timeout),
            "WS_PING_INTERVAL": "0",
            "PEER_PING_INTERVAL": "3600",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        })
        self._python_args = python_args or []  # e.g. ["-m", "cProfile", "-o", path] for the bench
        self._proc: asyncio.subprocess.Process | None = None
        self._log: Any = None
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=64)

    async def start(self, timeout: float = 20.0) -> IglooServer:
        """Spawn the server and wait until its node is ready (raises with the log tail otherwise)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, *self._python_args, str(ROOT / "server.py"), cwd=ROOT, env=self._env,
            stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(f"igloo server exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                status = await self.get("/api/status")
                if status[0] == 200 and status[1].get("ready"):
                    return self
            except OSError:
                pass
            await asyncio.sleep(0.05)
        await self.stop()
        raise RuntimeError(f"igloo server did not become ready: {self.log_tail()}")

    def log_tail(self) -> str:
        """The last lines of the server's stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def headers(self) -> dict[str, str]:
        """API-key authentication headers."""
        return {"X-API-Key": API_KEY, "Content-Type": "application/json"}

    async def _fetch(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> tuple[int, Any]:
        request = tornado.httpclient.HTTPRequest(
            self.base + path, method=method, headers=self.headers(),
            body=None if body is None else json.dumps(body), request_timeout=timeout,
        )
        response = await self.client.fetch(request, raise_error=False)
        if response.code == 599:
            raise OSError(str(response.error))
        text = response.body.decode() if response.body else ""
        try:
            return response.code, json.loads(text) if text else None
        except json.JSONDecodeError:
            return response.code, text

    async def get(self, path: str) -> tuple[int, Any]:
        """GET with the API key: (status, parsed JSON)."""
        return await self._fetch("GET", path)

    async def post(self, path: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
        """POST JSON with the API key: (status, parsed JSON)."""
        return await self._fetch("POST", path, body, timeout)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        """PUT JSON with the API key: (status, parsed JSON)."""
        return await self._fetch("PUT", path, body)

    async def events_socket(self, since: int | None = None) -> tornado.websocket.WebSocketClientConnection:
        """A websocket client on /api/events, authenticated with the API key."""
        query = "" if since is None else f"?since={since}"
        request = tornado.httpclient.HTTPRequest(
            f"ws://127.0.0.1:{self.port}/api/events{query}", headers={"X-API-Key": API_KEY}
        )
        return await tornado.websocket.websocket_connect(request)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def stop(self) -> None:
        """SIGTERM, then kill after 8 s; bounded."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 8)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.client.close()

    async def __aenter__(self) -> IglooServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
