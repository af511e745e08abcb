"""A real ``python server.py`` under attack from outsiders on other loopback addresses
(tests/relay/attacker.py, in its own process): memory stays bounded, the dashboard API and the signer stay
fast, and the node is never locked out of its own relay."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.igloo_process import ROOT, ServerProc

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

MIB = 1 << 20


def rss(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Attack:
    """One tests/relay/attacker.py process; ``ready()`` waits for its set-up, ``done()`` for its counts."""

    def __init__(self, url: str, mode: str, *args: str) -> None:
        self.argv = [sys.executable, "-m", "tests.relay.attacker", mode, "--url", url, *args]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Attack:
        self.proc = await asyncio.create_subprocess_exec(*self.argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        return self

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, "the attacker exited early"
        report: dict[str, Any] = json.loads(line)
        return report

    async def ready(self, timeout: float = 60) -> dict[str, Any]:
        report = await self._line(timeout)
        assert report["phase"] == "ready", report
        return report

    async def done(self, timeout: float = 90) -> dict[str, Any]:
        report = await self._line(timeout)
        assert report["phase"] == "done", report
        assert self.proc is not None
        await self.proc.wait()
        return report

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


def sources(first: int, last: int) -> list[str]:
    return ["--sources", *[f"127.0.0.{i}" for i in range(first, last + 1)]]


def p99(samples: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


async def test_memory_stays_within_the_byte_budget(tmp_path: Path) -> None:
    budget = 8 * MIB
    env = {"RELAY_WRITE": "all", "RELAY_MAX_BYTES": str(budget), "IGLOO_DEMO": "false"}
    async with ServerProc(tmp_path, env=env) as server:
        warm = await Attack(server.relay_url, "fill", "--megabytes", "1").start()
        await warm.ready()
        assert (await warm.done())["counts"]["ok"] > 10
        baseline = rss(server.pid)  # after the first events, connections and searches warmed the process

        amplify = await Attack(server.relay_url, "amplify", "--repeat", "5").start()
        await amplify.ready()
        report = (await amplify.done())["counts"]
        # Every one refused: too many strings in a tag, or (122 KiB frames cost 8 tokens) rate-limited.
        assert "ok" not in report and report["refused invalid"] >= 10 and report["rounds"] == 5, report
        grown = rss(server.pid) - baseline
        assert grown <= 4 * MIB, f"tag amplification grew the server by {grown / MIB:.1f} MiB"

        fill = await Attack(server.relay_url, "fill", "--megabytes", "26", *sources(2, 9)).start()
        await fill.ready()
        report = (await fill.done())["counts"]
        assert report["bytes sent"] >= 3 * budget and report["ok"] > 100, report
        grown = rss(server.pid) - baseline
        assert grown <= budget, f"{grown / MIB:.1f} MiB over the baseline, budget {budget / MIB:.0f} MiB"
        assert (await server.get("/api/status"))[0] == 200


async def test_status_and_sign_stay_fast_while_an_outsider_searches(tmp_path: Path) -> None:
    env = {"RELAY_WRITE": "all", "SIGN_BUDGET": "100000"}  # "all": the outsider may store what it searches
    async with ServerProc(tmp_path, env=env) as server:
        assert (await server.post("/api/demo/start", {}))[0] == 200
        await server.wait_status(lambda status: bool(status.get("ready")), 20)
        attack = await Attack(server.relay_url, "costly", "--seconds", "60", *sources(2, 9)).start()
        try:
            setup = await attack.ready()
            assert setup["connections"] >= 5 and setup["counts"]["ok"] >= 300, setup
            status_times: list[float] = []
            sign_times: list[float] = []
            for _ in range(100):
                started = time.monotonic()
                code, _ = await server.get("/api/status")
                status_times.append(time.monotonic() - started)
                assert code == 200
                started = time.monotonic()
                code, body = await server.post("/api/sign", {"message": secrets.token_hex(32)})
                sign_times.append(time.monotonic() - started)
                assert code == 200, body
        finally:
            await attack.stop()
        assert p99(status_times) < 0.25, f"/api/status p99 {p99(status_times) * 1000:.0f} ms"
        assert p99(sign_times) < 0.25, f"/api/sign p99 {p99(sign_times) * 1000:.0f} ms"


async def test_outsiders_holding_every_slot_do_not_lock_the_node_out(tmp_path: Path) -> None:
    env = {"RELAY_MAX_CONNECTIONS": "40", "RELAY_LOCAL_RESERVED": "8", "RELAY_MAX_PER_IP": "4",
           "SIGN_BUDGET": "100"}  # the default RELAY_WRITE=signer: the demo group is let through
    async with ServerProc(tmp_path, env=env) as server:
        attack = await Attack(server.relay_url, "connections", *sources(2, 20)).start()
        try:
            held = await attack.ready()
            assert held["held"] == 32, held  # 40 slots less the 8 reserved
            assert held["counts"]["refused 429"] >= 7 and held["counts"]["refused 503"] >= 11, held
            # The demo connects its node and two peers to the embedded relay only now.
            assert (await server.post("/api/demo/start", {}))[0] == 200
            await server.wait_status(lambda status: bool(status.get("ready")), 20)
            code, body = await server.post("/api/sign", {"message": secrets.token_hex(32)})
            assert code == 200 and len(body["signature"]) == 128, body
        finally:
            await attack.stop()
