"""A NIP-46 client from npm (nostr-tools 2.25.2's ``BunkerSigner``) in a node subprocess, for the bunker's
interop tests. ``await client.command(op, **args)`` returns ``{"id", "ok", "data"|"err", "ms"}``; the ops are
listed at the top of ``js/nip46_client.mjs``. Every call is bounded on both sides."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from tests.interop.conftest import JS_DIR, _read_json_line, node_binary


class JsBunkerClient:
    """One ``BunkerSigner`` (one client key at a time) driven with JSON lines."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 15.0) -> JsBunkerClient:
        """Spawn node and wait for ``{"ready": true}``."""
        node = node_binary()
        if node is None:
            raise RuntimeError("`node` is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / "nip46_client.mjs"), cwd=JS_DIR, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        assert self._proc.stdout is not None
        ready = await _read_json_line(self._proc.stdout, timeout)
        if not ready.get("ready"):
            raise RuntimeError(f"nip46 client did not start: {ready}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            future = self._pending.pop(msg.get("id", -1), None) if isinstance(msg, dict) else None
            if future is not None and not future.done():
                future.set_result(msg)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(EOFError("the nip46 client exited"))

    async def command(self, op: str, *, timeout: float = 20.0, **args: Any) -> dict[str, Any]:
        """Send one op and wait (bounded) for its reply."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("nip46 client is not running")
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        js_timeout = int(max(1.0, timeout - 1.0) * 1000)
        line = json.dumps({"id": self._next, "op": op, "timeout": js_timeout, **args}) + "\n"
        self._proc.stdin.write(line.encode())
        await self._proc.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        """Close stdin (the client exits), then terminate or kill; bounded."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()

    async def __aenter__(self) -> JsBunkerClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
