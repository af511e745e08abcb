"""Harness for the interoperability tests: runs the JS reference (@frostr/bifrost 1.0.7) with `node`.

- `js_ready` (session fixture): finds `node`, installs the JS packages on first use; skips only when `node`
  itself is missing.
- `run_js(script, input_obj)`: one node process, JSON in on stdin, JSON out on stdout, bounded timeout.
- `JsNode`: a live reference `BifrostNode` in a subprocess, driven with JSON lines (see README.md here).
- `JsRelay`: the small JS relay (`js/relay.mjs`) on a loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.igloo_process import free_port

JS_DIR = Path(__file__).resolve().parent / "js"
BIFROST_DIR = JS_DIR / "node_modules" / "@frostr" / "bifrost"
# Every package of package.json whose absence means "install again" (nostr-tools 2.25 is the NIP-46 client).
REQUIRED_DIRS = [BIFROST_DIR, JS_DIR / "node_modules" / "nostr-tools",
                 JS_DIR / "node_modules" / "nostr-tools-2.25"]
RUN_TIMEOUT = 60.0  # seconds for one batch script; the batches here take well under 5 s
NPM_TIMEOUT = 300.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that runs the JS reference (uses `js_ready`) `interop`; pure-Python ones stay as is."""
    for item in items:
        if "js_ready" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.interop)


def node_binary() -> str | None:
    """The `node` executable, or None when it is not installed."""
    return shutil.which("node")


def ensure_js_packages() -> None:
    """Install the pinned JS reference into js/node_modules if it is absent (needs npm and the registry)."""
    if all(path.is_dir() for path in REQUIRED_DIRS):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: cannot install the JS reference (run `make interop-deps`)")
    subprocess.run(
        [npm, "install", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
        check=True,
        timeout=NPM_TIMEOUT,
        capture_output=True,
    )
    missing = [path.name for path in REQUIRED_DIRS if not path.is_dir()]
    if missing:
        raise RuntimeError(f"npm install finished but {', '.join(missing)} is still absent")


@pytest.fixture(scope="session")
def js_ready() -> str:
    """Path of `node` with the JS reference installed; skips the test only when `node` is missing."""
    node = node_binary()
    if node is None:
        pytest.skip("`node` is not installed: the interop tests need Node.js 20+ to run the JS reference")
    ensure_js_packages()
    return node


def run_js(script: str, input_obj: Any, *, timeout: float = RUN_TIMEOUT) -> Any:
    """Run `js/<script>` with node, feed `input_obj` as JSON on stdin, return its stdout parsed as JSON.

    Raises RuntimeError with node's stderr when the script fails or prints no JSON.
    """
    node = node_binary()
    if node is None:
        raise RuntimeError("`node` is not installed")
    proc = subprocess.run(
        [node, str(JS_DIR / script)],
        input=json.dumps(input_obj),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=JS_DIR,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{script} printed no JSON: {proc.stdout[-500:]!r} {proc.stderr[-1000:]}") from exc


def oracle(cases: list[dict[str, Any]]) -> list[Any]:
    """Run a batch of cases through js/crypto_oracle.mjs; return each case's data, failing on any JS error."""
    results = run_js("crypto_oracle.mjs", {"cases": cases})["results"]
    assert len(results) == len(cases)
    out = []
    for case, res in zip(cases, results, strict=True):
        if not res["ok"]:
            raise AssertionError(f"JS reference failed on op {case['op']!r}: {res['err']}")
        out.append(res["data"])
    return out


def oracle_raw(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Like `oracle` but returns the raw `{ok, data|err}` results, for cases expected to fail in JS."""
    results: list[dict[str, Any]] = run_js("crypto_oracle.mjs", {"cases": cases})["results"]
    return results


# ------------------------------------------------------------------------------------------------------------
# Live processes: the JS relay and JS reference nodes (phase 2 harness; API documented in README.md).


async def _read_json_line(stream: asyncio.StreamReader, timeout: float) -> dict[str, Any]:
    """Read lines until one parses as a JSON object (node may print other noise); bounded by `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no JSON line from the JS process in time")
        line = await asyncio.wait_for(stream.readline(), remaining)
        if not line:
            raise EOFError("the JS process closed its stdout")
        text = line.decode(errors="replace").strip()
        if text.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                obj = json.loads(text)
                if isinstance(obj, dict):
                    return obj


class JsRelay:
    """The NIP-01 relay `js/relay.mjs` on 127.0.0.1:`port`. Use `async with JsRelay() as relay: relay.url`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 10.0) -> JsRelay:
        """Spawn the relay and wait until it prints that it listens."""
        node = node_binary()
        if node is None:
            raise RuntimeError("`node` is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / "relay.mjs"), str(self.port),
            cwd=JS_DIR, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        assert self._proc.stdout is not None
        msg = await _read_json_line(self._proc.stdout, timeout)
        if not msg.get("listening"):
            raise RuntimeError(f"relay did not start: {msg}")
        return self

    async def stop(self) -> None:
        """Terminate the relay (kill after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> JsRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class JsNode:
    """A reference `BifrostNode` (@frostr/bifrost 1.0.7) in a node subprocess, for wire-level interop tests.

    `group` / `share` are bfgroup1/bfshare1 strings or decoded package dicts. After `start()`, `pubkey` is
    the node's x-only hex identity. `await command(op, **args)` returns the reply
    `{"id", "ok", "data"|"err"}`;
    `events` collects the node events it forwards (`{"event": name, ...}` lines).
    """

    def __init__(
        self,
        group: str | dict[str, Any],
        share: str | dict[str, Any],
        relays: list[str],
        *,
        policies: list[dict[str, Any]] | None = None,
    ) -> None:
        self.group = group
        self.share = share
        self.relays = relays
        self.policies = policies or []
        self.pubkey = ""
        self.events: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 15.0) -> JsNode:
        """Spawn the node, send its config, wait for `{"ready": true}` (raises on error or timeout)."""
        node = node_binary()
        if node is None:
            raise RuntimeError("`node` is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / "bifrost_node.mjs"),
            cwd=JS_DIR, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        config = {"group": self.group, "share": self.share, "relays": self.relays, "policies": self.policies}
        self._proc.stdin.write((json.dumps(config) + "\n").encode())
        await self._proc.stdin.drain()
        try:
            msg = await _read_json_line(self._proc.stdout, timeout)
        except (TimeoutError, EOFError):
            await self.close()
            raise
        if not msg.get("ready"):
            await self.close()
            raise RuntimeError(f"JS node did not become ready: {msg.get('err', msg)}")
        self.pubkey = str(msg["pubkey"])
        self._reader = asyncio.create_task(self._read_loop())
        return self

    async def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(msg, dict):
                continue
            if "event" in msg:
                self.events.append(msg)
                continue
            fut = self._pending.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(EOFError("the JS node exited"))
        self._pending.clear()

    async def command(self, op: str, *, timeout: float = 20.0, **args: Any) -> dict[str, Any]:
        """Send `{id, op, **args}` and await the node's `{id, ok, data|err}` reply (bounded by `timeout`)."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("JS node is not running")
        self._next_id += 1
        cid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        self._proc.stdin.write((json.dumps({"id": cid, "op": op, **args}) + "\n").encode())
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(cid, None)

    async def close(self) -> None:
        """Close stdin (the node exits by itself), then terminate/kill if it lingers; bounded."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None

    async def __aenter__(self) -> JsNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@pytest.fixture
def js_keyset(js_ready: str) -> Iterator[dict[str, Any]]:
    """A fresh random 2-of-3 keyset made by the JS reference: {group, shares, bfgroup, bfshares}."""
    yield oracle([{"op": "keygen", "threshold": 2, "total": 3}])[0]
