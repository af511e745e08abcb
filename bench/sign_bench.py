"""End-to-end signing latency: POST /api/sign on Igloo's server against two JS reference nodes signing.

Usage: `.venv/bin/python bench/sign_bench.py [--quick] [--rounds 200] [--concurrency 8] [--warmup 10]
[--json out.json]`

One command starts everything on loopback, for one fresh 2-of-3 keyset, all over ONE relay (the embedded
relay of the server holding share 1):

- `igloo+igloo`: Igloo server A (share 1, `python server.py`) asks Igloo server B (share 2, a second process
  on A's relay) to co-sign. Share 3 stays offline: 2-of-3 needs one co-signer.
- `igloo+JS`: B is stopped, and a JS reference node (`JsNode`, @frostr/bifrost 1.0.7) holding share 2
  answers instead.
- `JS+JS`: a JS node holding share 3 asks the JS node holding share 2 (`req.sign` with `peers`), over A's
  relay.
- `igloo+2igloo` and `igloo+2JS` (concurrent only): A with TWO co-signers online (Igloo servers B and C, then
  the JS nodes holding shares 2 and 3). Each session still goes to one co-signer (2-of-3); the table counts
  which co-signer answered each session (B's and C's event streams; the JS nodes' `/sign/handler/res`
  events). On this 2-core machine both co-signers share the cores with everything else, so the spreading
  shows in the counts and in each co-signer's CPU, not in wall time.

Igloo is timed at the HTTP client (tornado, keep-alive) around each `POST /api/sign` with a fresh random
sighash: the whole request, HTTP included. JS is timed inside node with `performance.now()` around each
`req.sign` (`sign_bench` op of tests/interop/js/bifrost_node.mjs), so no process IPC counts against the
reference. Each mode runs `rounds` sequential requests, then `rounds` requests from `concurrency` concurrent
requesters. The CPU columns are the user+system CPU of the requesting and the co-signing process per
request (from /proc; server A also runs the relay, so its figure includes relaying for both sides; in
the JS+JS mode that relay CPU is not counted). SIGN_BUDGET and RELAY_EVENT_RATE are raised (by default the
budget refuses after 1200 partial signatures per peer per hour and the relay takes 100 EVENTs/s per
connection).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node import keytools  # noqa: E402
from node.crypto.credentials import decode_group  # noqa: E402
from tests.interop.conftest import JsNode, ensure_js_packages, node_binary  # noqa: E402
from tests.interop.igloo_proc import IglooServer  # noqa: E402

# The share-leak budget refuses after 1200 partial signatures per peer per hour, and the embedded relay caps
# each connection at 100 EVENTs/s (bursts of 200): both are lifted so the bench measures latency, not limits.
BUDGET_ENV = {"SIGN_BUDGET": "1000000", "RELAY_EVENT_RATE": "100000", "RATE_LIMIT_ENABLED": "false"}
BARS = {  # mode -> (sequential p50 ms, concurrent p50 ms) from the load issue
    "igloo+igloo": (15.0, None),
    "igloo+JS": (40.0, 100.0),
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in ms."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "mean": statistics.fmean(values)}


async def time_http(igloo: IglooServer, rounds: int, concurrency: int) -> list[float]:
    """``rounds`` POST /api/sign from ``concurrency`` requesters; latency per request in ms."""
    latencies: list[float] = []
    left = rounds

    async def requester() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            status, body = await igloo.post("/api/sign", {"message": os.urandom(32).hex()})
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"POST /api/sign failed: {status} {body}")
            latencies.append(elapsed)

    await asyncio.gather(*(requester() for _ in range(concurrency)))
    return latencies


async def time_js(requester: JsNode, peer: str, rounds: int, concurrency: int) -> list[float]:
    """``rounds`` req.sign timed inside node; latency per request in ms."""
    reply = await requester.command("sign_bench", rounds=rounds, concurrency=concurrency, peers=[peer],
                                    timeout=60 + rounds)
    if not reply["ok"]:
        raise RuntimeError(f"JS sign_bench failed: {reply['err']}")
    return [float(v) for v in reply["data"]]


def cpu_ms(pid: int | None) -> float:
    """User + system CPU time of a process so far, in ms (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def series(
    run: Callable[[int, int], Awaitable[list[float]]],
    rounds: int,
    concurrency: int,
    pids: tuple[int | None, ...],
) -> dict[str, float]:
    """One series: latency summary plus CPU ms per request of the requester and the co-signer process."""
    before = [cpu_ms(pid) for pid in pids]
    result = summary(await run(rounds, concurrency))
    after = [cpu_ms(pid) for pid in pids]
    per_request = [(a - b) / rounds for a, b in zip(after, before, strict=True)]
    result["cpu_requester"], result["cpu_cosigner"] = per_request
    return result


async def measure(
    name: str, run: Callable[[int, int], Awaitable[list[float]]], args: argparse.Namespace,
    pids: tuple[int | None, int | None],
) -> dict[str, dict[str, float]]:
    """Warm up, then the sequential and the concurrent series for one mode."""
    await run(args.warmup, 1)
    sequential = await series(run, args.rounds, 1, pids)
    concurrent = await series(run, args.rounds, args.concurrency, pids)
    print(f"  {name}: sequential p50 {sequential['p50']:.1f} ms, "
          f"{args.concurrency} concurrent p50 {concurrent['p50']:.1f} ms", file=sys.stderr)
    return {"sequential": sequential, "concurrent": concurrent}


class AnswerCounter:
    """Counts one Igloo co-signer's "Signature response sent" events (sessions and sighashes) from its stream,
    from now on (the stream first replays recent events: those stamped before the start are skipped)."""

    def __init__(self, server: IglooServer) -> None:
        self.server = server
        self.since = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")[:23]
        self.sessions = 0
        self.sighashes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> AnswerCounter:
        """Open the co-signer's event stream and count in the background."""
        socket = await self.server.events()
        self._task = asyncio.ensure_future(self._read(socket))
        return self

    async def _read(self, socket: Any) -> None:
        while (message := await socket.read_message()) is not None:
            frame = json.loads(message)
            if str(frame.get("timestamp", ""))[:23] < self.since:
                continue
            if frame.get("type") == "sign" and frame.get("message") == "Signature response sent":
                self.sessions += 1
                self.sighashes += len((frame.get("data") or {}).get("sighashes") or [])

    async def close(self) -> dict[str, int]:
        """Stop counting; ``{sessions, sighashes}``."""
        await asyncio.sleep(0.5)  # a co-signer logs its answer once the relay's OK is back
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return {"sessions": self.sessions, "sighashes": self.sighashes}


def js_answered(node: JsNode, since: int) -> dict[str, int]:
    """Sign requests a JS node answered (``/sign/handler/res`` events) after its ``since``-th event."""
    sessions = sum(1 for e in node.events[since:] if e.get("event") == "/sign/handler/res")
    return {"sessions": sessions, "sighashes": -1}  # the forwarded event does not carry the sighashes


async def spread(name: str, server_a: IglooServer, args: argparse.Namespace, pids: tuple[int | None, ...],
                 count: Callable[[], Awaitable[list[dict[str, int]]]]) -> dict[str, Any]:
    """The concurrent series with two co-signers online; who answered each session."""
    before = [cpu_ms(pid) for pid in pids]
    result: dict[str, Any] = summary(await time_http(server_a, args.rounds, args.concurrency))
    cpu = [(cpu_ms(pid) - b) / args.rounds for pid, b in zip(pids, before, strict=True)]
    result["cpu_requester"], result["cpu_cosigners"] = cpu[0], cpu[1:]
    result["answered"] = await count()
    print(f"  {name}: {args.concurrency} concurrent p50 {result['p50']:.1f} ms, answered "
          f"{[a['sessions'] for a in result['answered']]}", file=sys.stderr)
    return result


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the processes, run the modes, stop everything."""
    made = keytools.keygen(2, 3)
    bfgroup, bfshares = made["group"], made["shares"]
    members = decode_group(bfgroup).member_pubkeys()
    results: dict[str, Any] = {}
    server_a = IglooServer(bfgroup, bfshares[0], work / "a", extra_env=BUDGET_ENV)
    await server_a.start()
    try:
        server_b = IglooServer(bfgroup, bfshares[1], work / "b", relays=[server_a.relay_url],
                               extra_env=BUDGET_ENV)
        await server_b.start()
        try:
            await _ping(server_a, members[1])
            results["igloo+igloo"] = await measure(
                "igloo+igloo", lambda n, c: time_http(server_a, n, c), args, (server_a.pid, server_b.pid))
            server_c = IglooServer(bfgroup, bfshares[2], work / "c", relays=[server_a.relay_url],
                                   extra_env=BUDGET_ENV)
            await server_c.start()
            try:
                await _ping(server_a, members[2])
                await _ping(server_a, members[1])
                counters = [await AnswerCounter(server_b).start(), await AnswerCounter(server_c).start()]

                async def count_igloo() -> list[dict[str, int]]:
                    return [await counter.close() for counter in counters]

                results["igloo+2igloo"] = await spread(
                    "igloo+2igloo", server_a, args, (server_a.pid, server_b.pid, server_c.pid), count_igloo)
            finally:
                await server_c.stop()
        finally:
            await server_b.stop()
        js2 = await JsNode(bfgroup, bfshares[1], [server_a.relay_url]).start()
        try:
            await _ping(server_a, members[1])
            results["igloo+JS"] = await measure(
                "igloo+JS", lambda n, c: time_http(server_a, n, c), args, (server_a.pid, _pid(js2)))
            js3 = await JsNode(bfgroup, bfshares[2], [server_a.relay_url]).start()
            try:
                results["JS+JS"] = await measure(
                    "JS+JS", lambda n, c: time_js(js3, members[1], n, c), args, (_pid(js3), _pid(js2)))
                await _ping(server_a, members[2])
                await _ping(server_a, members[1])
                marks = (len(js2.events), len(js3.events))

                async def count_js() -> list[dict[str, int]]:
                    await asyncio.sleep(0.5)
                    return [js_answered(js2, marks[0]), js_answered(js3, marks[1])]

                results["igloo+2JS"] = await spread(
                    "igloo+2JS", server_a, args, (server_a.pid, _pid(js2), _pid(js3)), count_js)
            finally:
                await js3.close()
        finally:
            await js2.close()
    finally:
        await server_a.stop()
    return results


def _pid(node: JsNode) -> int | None:
    proc = node._proc  # the bench reads the process's CPU time
    return proc.pid if proc is not None else None


async def _ping(igloo: IglooServer, pubkey: str) -> None:
    """Mark the co-signer online on the requester (it picks online peers first)."""
    for _ in range(20):
        status, body = await igloo.post("/api/peers/ping", {"target": pubkey})
        if status == 200 and body.get("success"):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"co-signer {pubkey[:12]}… does not answer pings")


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown table (ms), with the bars where the load issue sets one."""
    node_version = subprocess.run([node_binary() or "node", "--version"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; {stamp}; Python "
        f"{platform.python_version()}; node {node_version} + @frostr/bifrost 1.0.7; {args.rounds} rounds per "
        f"series, {args.concurrency} concurrent requesters; latencies in ms",
        "",
        "| 2-of-3 signing | series | p50 | p95 | p99 | mean | CPU/req requester | CPU/req co-signer "
        "| bar (p50) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    labels = {
        "igloo+igloo": "Igloo → Igloo co-signer (POST /api/sign)",
        "igloo+JS": "Igloo → JS co-signer (POST /api/sign)",
        "JS+JS": "JS → JS co-signer (req.sign, reference)",
    }
    js_p50 = {series: results["JS+JS"][series]["p50"] for series in ("sequential", "concurrent")}
    for mode, label in labels.items():
        for series in ("sequential", "concurrent"):
            row = results[mode][series]
            bar = BARS.get(mode, (None, None))[0 if series == "sequential" else 1]
            verdict = ""
            if bar is not None:
                verdict = f"≤ {bar:g}: {'met' if row['p50'] <= bar else 'MISSED'}"
            if mode != "JS+JS":
                relation = "≤" if row["p50"] <= js_p50[series] else ">"
                verdict += ("; " if verdict else "") + f"{relation} JS+JS"
            name = "sequential" if series == "sequential" else f"{args.concurrency} concurrent"
            lines.append(f"| {label} | {name} | {row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | "
                         f"{row['mean']:.1f} | {row['cpu_requester']:.1f} | {row['cpu_cosigner']:.1f} | "
                         f"{verdict} |")
    spread_labels = {"igloo+2igloo": "Igloo → two Igloo co-signers", "igloo+2JS": "Igloo → two JS co-signers"}
    lines += ["", "Two co-signers online (each session to one of them):", "",
              "| 2-of-3 signing | series | p50 | p95 | p99 | mean | CPU/req requester | CPU/req co-signers "
              "| sessions answered |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for mode, label in spread_labels.items():
        row = results[mode]
        cpu = " / ".join(f"{v:.1f}" for v in row["cpu_cosigners"])
        answered = " / ".join(str(a["sessions"]) for a in row["answered"])
        total = sum(a["sessions"] for a in row["answered"])
        shares = " / ".join(f"{100 * a['sessions'] / max(1, total):.0f} %" for a in row["answered"])
        lines.append(f"| {label} | {args.concurrency} concurrent | {row['p50']:.1f} | {row['p95']:.1f} | "
                     f"{row['p99']:.1f} | {row['mean']:.1f} | {row['cpu_requester']:.1f} | {cpu} | "
                     f"{answered} ({shares}) |")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run the bench, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="50 rounds per series")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 50)
    if node_binary() is None:
        sys.exit("sign_bench: `node` is not installed (the JS reference runs in node)")
    ensure_js_packages()
    with tempfile.TemporaryDirectory(prefix="igloo-sign-bench-") as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    print(render(results, args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
