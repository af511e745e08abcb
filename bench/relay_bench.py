"""The embedded relay under an outsider's attack mix, next to the same signer workload without it.

Usage: `.venv/bin/python bench/relay_bench.py [--samples 200] [--write all|signer] [--attacks costly,...]
[--server OTHER_CHECKOUT/server.py] [--json out.json]`

`--attacks` runs only some of the attackers below; `--server` runs another checkout's server.py (to compare
with the relay before a change; the attackers and this script stay this checkout's). Do not point the full
mix at a relay without memory bounds: it is built to take gigabytes from one.

One `python server.py` (spawned as a user would, `IGLOO_DEMO` group: the node on share 1 and two in-process
peers on shares 2 and 3, all on the embedded relay; `RELAY_WRITE=all` by default so the attacker may store
what it then searches, the worst case; `SIGN_BUDGET` raised so the budget never refuses). The workload is
`samples` rounds of one `GET /api/status` and one `POST /api/sign` (a fresh random sighash; the demo peers
co-sign over the relay), timed at the client (tornado, keep-alive). It runs twice:

1. quiet: nothing else talks to the relay;
2. under attack: five attacker processes (tests/relay/attacker.py) from their own loopback addresses run
   from before the first sample to after the last:
   - `fill` from 127.0.0.2-9: stored events of every shape, as fast as the relay answers;
   - `amplify` from 127.0.0.10: EVENTs with one tag of 30 000 one-character strings (122 KiB);
   - `costly` from 127.0.0.11-18: events that make searches expensive, then REQs of ten filters that check
     every candidate and match none, from every connection 127.0.0.11 may hold, each as soon as answered;
   - `connections` from 127.0.0.20-49: as many connections as the relay takes, held;
   - `large` from 127.0.0.19: REQs for the 500 newest stored events, read slowly.

Reported per run: latency p50/p95/p99/max of status and sign, the server's CPU% (of one core) and RSS
growth, and what the attackers got (their counts of OK, refused by prefix, CLOSED, HTTP refusals).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import ServerProc, free_port, igloo_env  # noqa: E402

ATTACKS: list[tuple[str, list[str]]] = [
    ("fill", ["--megabytes", "400", "--sources", *[f"127.0.0.{i}" for i in range(2, 10)]]),
    ("amplify", ["--repeat", "100000", "--sources", "127.0.0.10"]),
    ("costly", ["--seconds", "3600", "--sources", *[f"127.0.0.{i}" for i in range(11, 19)]]),
    ("connections", ["--sources", *[f"127.0.0.{i}" for i in range(20, 50)]]),
    ("large", ["--seconds", "3600", "--sources", "127.0.0.19"]),
]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-int(q * len(ordered)) // 100) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p95, p99, max."""
    return {name: round(1000 * value, 1) for name, value in (
        ("p50", percentile(values, 50)), ("p95", percentile(values, 95)), ("p99", percentile(values, 99)),
        ("max", max(values)))}


class Attacker:
    """One attacker process; its stdout lines are JSON reports."""

    def __init__(self, url: str, mode: str, args: list[str]) -> None:
        self.mode = mode
        self.argv = [sys.executable, "-m", "tests.relay.attacker", mode, "--url", url, *args]
        self.proc: asyncio.subprocess.Process | None = None
        self.reports: list[dict[str, Any]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(*self.argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.DEVNULL)

    async def ready(self, timeout: float = 120) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"attacker {self.mode} exited during set-up")
        self.reports.append(json.loads(line))

    async def stop(self) -> dict[str, Any]:
        """SIGTERM (the attacker stops and reports), then its last report."""
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        for line in (await asyncio.wait_for(self.proc.stdout.read(), 30)).splitlines():
            self.reports.append(json.loads(line))
        await self.proc.wait()
        return self.reports[-1] if self.reports else {}


async def workload(server: ServerProc, samples: int) -> dict[str, Any]:
    status_times: list[float] = []
    sign_times: list[float] = []
    failures = 0
    cpu = server.cpu()
    rss_before = server.rss()
    for _ in range(samples):
        started = time.monotonic()
        code, _ = await server.request("GET", "/api/status")
        status_times.append(time.monotonic() - started)
        failures += code != 200
        started = time.monotonic()
        code, _ = await server.request("POST", "/api/sign", {"message": secrets.token_hex(32)})
        sign_times.append(time.monotonic() - started)
        failures += code != 200
    return {
        "status_ms": summary(status_times), "sign_ms": summary(sign_times), "failures": failures,
        "server_cpu_percent": round(cpu.percent(), 1), "rss_mib": round(server.rss() / 2**20, 1),
        "rss_growth_mib": round((server.rss() - rss_before) / 2**20, 1),
    }


async def run(samples: int, write: str, attacks: list[str], script: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="igloo-relay-bench-") as work:
        port = free_port()
        env = igloo_env(port, Path(work) / "data", RELAY_WRITE=write, SIGN_BUDGET="1000000",
                        IGLOO_DEMO="true")
        server = ServerProc(port, env, script=script, log_path=Path(work) / "server.log")
        await server.spawn()
        try:
            await server.wait_status()
            code, body = await server.request("POST", "/api/demo/start", {})
            if code != 200:
                raise RuntimeError(f"demo did not start: {code} {body}")
            await server.wait_status(ready=True)
            for _ in range(10):  # warm-up
                await server.request("POST", "/api/sign", {"message": secrets.token_hex(32)})
            rss_start = server.rss()
            quiet = await workload(server, samples)
            url = f"ws://127.0.0.1:{port}/"
            attackers = [Attacker(url, mode, args) for mode, args in ATTACKS if mode in attacks]
            try:
                for attacker in attackers:
                    await attacker.start()
                await asyncio.gather(*(attacker.ready() for attacker in attackers))
                await asyncio.sleep(5)  # the attack in full swing before the first sample
                attacked = await workload(server, samples)
            finally:
                counts = {a.mode: (await a.stop()).get("counts", {}) for a in attackers if a.proc}
            attacked["attackers"] = counts
            attacked["rss_growth_since_quiet_mib"] = round((server.rss() - rss_start) / 2**20, 1)
            status = await server.status()
            return {"quiet": quiet, "attack": attacked, "relays": status.get("relays")}
        finally:
            await server.stop()


def render(result: dict[str, Any], command: str) -> str:
    lines = [f"`{command}` ({result['when']}, {result['machine']})", "",
             "| run | status p50 / p99 / max ms | sign p50 / p99 / max ms | server CPU | RSS (growth) |",
             "|---|---|---|---|---|"]
    for name in ("quiet", "attack"):
        run = result[name]
        status, sign = run["status_ms"], run["sign_ms"]
        growth = run.get("rss_growth_since_quiet_mib", run["rss_growth_mib"])
        lines.append(f"| {name} | {status['p50']} / {status['p99']} / {status['max']} | "
                     f"{sign['p50']} / {sign['p99']} / {sign['max']} | {run['server_cpu_percent']} % | "
                     f"{run['rss_mib']} MiB (+{growth}) |")
    lines += ["", "attackers: " + "; ".join(f"{mode} {counts}" for mode, counts in
                                              result["attack"]["attackers"].items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--write", choices=["all", "signer"], default="all")
    parser.add_argument("--attacks", default=",".join(mode for mode, _ in ATTACKS))
    parser.add_argument("--server", default="server.py", help="server.py to run (default: this checkout's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    attacks = args.attacks.split(",")
    if not set(attacks) <= {mode for mode, _ in ATTACKS}:
        parser.error(f"--attacks: choose from {', '.join(mode for mode, _ in ATTACKS)}")
    result = asyncio.run(run(args.samples, args.write, attacks, args.server))
    result["when"] = datetime.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = "python bench/relay_bench.py " + " ".join(sys.argv[1:])
    print(render(result, command.strip()))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
