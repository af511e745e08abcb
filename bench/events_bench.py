"""Event-stream benchmark: Igloo's server under C stream clients, against a bare Tornado broadcast floor.

Usage: `.venv/bin/python bench/events_bench.py [--quick] [--clients 1,100,1000,5000] [--window 10]
[--json out.json]`

What it does, in one invocation (about 8 minutes; `--quick` about 2):

1. Start-up: spawns `python server.py` (env config: API_KEY, GROUP_CRED/SHARE_CRED of share 1 of a fresh
   2-of-3 group from `node.keytools.keygen`, the embedded relay) three times on fresh data directories and
   times spawn → first 200 from `/api/status`.
2. The peer, holding share 2 on the server's embedded relay: by default Igloo's NodeService in its own
   process (`bench/_peer.py`: the node code of server.py without HTTP, so the load generator stays cheap);
   `--peer server` makes it a second `python server.py` driven through its REST API instead. Events are
   driven through the real node: the peer pings (the server's node answers and emits one event) and asks
   for signatures (the server's node co-signs and emits two), alternating. The server runs with
   RELAY_EVENT_RATE raised (the default 100 EVENTs/s per relay connection would cap its answers). RSS at
   idle is read once the peer is connected; then 1000 idle stream clients connect.
3. For each C: C stream clients (API key header, `?since=` the current seq) in separate load-generator
   processes (`bench/_loadclients.py`, BENCH_CLIENTS_PER_PROCESS clients each, default 250); events at a
   fixed 20 events/s, then at the maximum
   rate (32 requests in flight at the peer) for `--window` seconds each. Reported: events/s (seq delta),
   frames/s delivered, delivery latency p50/p99/max (client receipt minus the frame's `timestamp`), frames
   lost (seq gaps), server CPU% (/proc/PID/stat) and peak RSS, the peer's and the clients' CPU%.
4. The floor: `bench/broadcast_floor.py` with the same clients at 20 events/s and flat out; our max frames/s
   as a ratio to its.
5. Slow client: a server with WS_MAX_BUFFER=256 KiB and EVENT_BUFFER_SIZE=5000, 100 clients at 100 events/s
   for 20 s, once alone and once with one more client (4 KiB receive buffer) that stops reading: server RSS
   growth, how that client was closed, its resume (`?since=` its last seq) without loss, the others' p99.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _loadclients import LoadClients, raise_fd_limit  # noqa: E402
from _server import API_KEY, ServerProc, free_port, igloo_env, proc_cpu_seconds  # noqa: E402

from node.keytools import keygen  # noqa: E402

HEADERS = {"X-API-Key": API_KEY}
MAX_IN_FLIGHT = 32  # peer requests in flight at the maximum rate
SLOW_BUFFER = 256 * 1024
PER_PROCESS = int(os.environ.get("BENCH_CLIENTS_PER_PROCESS", "250"))  # clients per load-generator process


class HttpPeerDriver:
    """The peer is a second `python server.py`; events are driven through its REST API."""

    kind = "a second `python server.py` (share 2) driven through its REST API"

    def __init__(self, peer: ServerProc, target: str) -> None:
        self.peer = peer
        self.target = target
        self.ops = 0
        self.errors = 0
        self.codes: dict[int, int] = {}

    @property
    def pid(self) -> int:
        """The peer's process id."""
        return self.peer.pid

    async def stop(self) -> None:
        """Stop the peer."""
        await self.peer.stop()

    async def _op(self, n: int) -> None:
        if n % 2 == 0:
            code, body = await self.peer.request("POST", "/api/peers/ping", {"target": self.target}, 15)
            ok = code == 200 and isinstance(body, dict) and body.get("success")
        else:
            code, body = await self.peer.request("POST", "/api/sign", {"message": secrets.token_hex(32)}, 15)
            ok = code == 200
        self.ops += 1
        if not ok:
            self.errors += 1
            self.codes[code] = self.codes.get(code, 0) + 1

    async def drive(self, rate: float, seconds: float) -> None:
        """``rate`` events/s (a ping is one event, a sign two) for ``seconds``; 0 = flat out."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        if rate > 0:
            interval = 1.5 / rate
            n = 0
            while loop.time() - start < seconds:
                task = asyncio.ensure_future(self._op(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
        else:
            counter = iter(range(1 << 30))

            async def worker() -> None:
                while loop.time() - start < seconds:
                    await self._op(next(counter))

            await asyncio.gather(*(worker() for _ in range(MAX_IN_FLIGHT)))
        if tasks:
            await asyncio.wait(tasks, timeout=20)


class NodePeerDriver:
    """The peer is Igloo's NodeService in its own process (bench/_peer.py), driven over stdin."""

    kind = "Igloo's NodeService (share 2) in its own process, bench/_peer.py, no HTTP layer"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.ops = 0
        self.errors = 0
        self.codes: dict[str, int] = {}

    @property
    def pid(self) -> int:
        """The peer's process id."""
        assert self.proc is not None
        return self.proc.pid

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("the peer process exited")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def start(self) -> None:
        """Spawn the peer and wait until it has pinged the server."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "_peer.py"),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(self.config) + "\n").encode())
        await self._line(30)

    async def drive(self, rate: float, seconds: float) -> None:
        """``rate`` events/s for ``seconds`` (0 = flat out with MAX_IN_FLIGHT requests in flight)."""
        assert self.proc is not None and self.proc.stdin is not None
        cmd = {"cmd": "drive", "rate": rate, "seconds": seconds, "inflight": MAX_IN_FLIGHT}
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        done = await self._line(seconds + 60)
        self.ops += done["ops"]
        self.errors += done["errors"]
        for name, count in done["codes"].items():
            self.codes[name] = self.codes.get(name, 0) + count

    async def stop(self) -> None:
        """Close stdin; kill if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


Driver = HttpPeerDriver | NodePeerDriver


class FloorDriver:
    """Drives the broadcast floor's own publisher."""

    def __init__(self, floor: ServerProc) -> None:
        self.floor = floor
        self.ops = 0
        self.errors = 0

    async def drive(self, rate: float, seconds: float) -> None:
        """Publish at ``rate`` (0 = flat out) for ``seconds``."""
        await self.floor.request("POST", "/drive", {"rate": rate, "seconds": seconds}, seconds + 60)


async def sample_rss(server: ServerProc, stop: asyncio.Event, out: list[int]) -> None:
    """Append the server's RSS every 0.2 s until ``stop`` is set."""
    while not stop.is_set():
        out.append(server.rss())
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


async def measure(
    server: ServerProc,
    driver: Driver | FloorDriver,
    clients: LoadClients,
    rate: float,
    seconds: float,
    others: list[int],
) -> dict[str, Any]:
    """One window: drive, then collect what the clients received."""
    s0 = int((await server.status())["lastSeq"])
    starts = await clients.command({"cmd": "window", "from": s0})
    del starts
    client_cpu0 = sum(proc_cpu_seconds(p.pid) for p in clients.procs)
    other_cpu0 = [proc_cpu_seconds(pid) for pid in others]
    own_cpu0 = time.process_time()
    rss: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(server, stop, rss))
    cpu = server.cpu()
    t0 = time.monotonic()
    ops0, err0 = driver.ops, driver.errors
    await driver.drive(rate, seconds)
    drive_s = time.monotonic() - t0
    user, system = cpu.split()
    cpu_drive = user + system
    s1 = int((await server.status())["lastSeq"])
    report = await clients.report(s1, wait=15.0)
    total_s = time.monotonic() - t0
    stop.set()
    await sampler
    events = s1 - s0
    return {
        "rate": rate or "max",
        "clients": clients.count,
        "events": events,
        "events_s": round(events / drive_s, 1),
        "frames_s": round(report["frames"] / total_s, 0),
        "p50": report["p50"],
        "p99": report["p99"],
        "max": report["max"],
        "lost": report["lost"],
        "dups": report["dups"],
        "behind": report["behind"],
        "closes": report["closes"],
        "cpu": round(cpu_drive, 1),
        "cpu_sys": round(system, 1),
        "us_per_frame": round(1e6 * cpu_drive / 100 * drive_s / max(1, report["frames"]), 1),
        "rss_mb": round(max(rss) / 2**20, 1) if rss else None,
        "client_cpu": round(
            100 * (sum(proc_cpu_seconds(p.pid) for p in clients.procs) - client_cpu0) / total_s, 1
        ),
        "client_procs": len(clients.procs),
        "other_cpu": [
            round(100 * (proc_cpu_seconds(pid) - c0) / drive_s, 1)
            for pid, c0 in zip(others, other_cpu0, strict=True)
        ],
        "bench_cpu": round(100 * (time.process_time() - own_cpu0) / drive_s, 1),
        "ops": driver.ops - ops0,
        "op_errors": driver.errors - err0,
        "seconds": round(drive_s, 2),
    }


async def start_pair(
    work: Path, keyset: dict[str, Any], name: str, peer_kind: str, **extra: str
) -> tuple[ServerProc, Driver]:
    """Our server (share 1, embedded relay) and its peer (share 2 on our relay), both ready."""
    port, peer_port = free_port(), free_port()
    common = {
        "GROUP_CRED": keyset["group"],
        "WS_PING_INTERVAL": "0",
        "PEER_PING_INTERVAL": "3600",
        "SIGN_BUDGET": "1000000",
        "RELAY_EVENT_RATE": "100000",  # the default 100/s per connection would cap the node's answers
    }
    server = ServerProc(
        port,
        igloo_env(
            port, work / f"{name}-a", SHARE_CRED=keyset["shares"][0], WS_MAX_PER_IP="20000", **common, **extra
        ),
        log_path=work / f"{name}-a.log",
    )
    peer = ServerProc(
        peer_port,
        igloo_env(
            peer_port,
            work / f"{name}-b",
            SHARE_CRED=keyset["shares"][1],
            RELAYS=f"ws://127.0.0.1:{port}/",
            **common,
        ),
        log_path=work / f"{name}-b.log",
    )
    await server.spawn()
    await server.wait_status(ready=True)
    target = str((await server.status())["pubkey"])
    if peer_kind == "node":
        driver = NodePeerDriver(
            {
                "group": keyset["group"],
                "share": keyset["shares"][1],
                "relay": f"ws://127.0.0.1:{port}/",
                "target": target,
            }
        )
        await driver.start()
        return server, driver
    await peer.spawn()
    await peer.wait_status(ready=True)
    for _ in range(50):  # the peer must see us online before it picks us as co-signer
        code, body = await peer.request("POST", "/api/peers/ping", {"target": target}, 5)
        if code == 200 and isinstance(body, dict) and body.get("success"):
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError("the peer cannot ping the server")
    return server, HttpPeerDriver(peer, target)


async def startup_times(work: Path, keyset: dict[str, Any], runs: int) -> list[float]:
    """Spawn → first /api/status 200, on fresh data directories."""
    times = []
    for n in range(runs):
        port = free_port()
        proc = ServerProc(
            port,
            igloo_env(port, work / f"start{n}", GROUP_CRED=keyset["group"], SHARE_CRED=keyset["shares"][0]),
            log_path=work / f"start{n}.log",
        )
        await proc.spawn()
        times.append(await proc.wait_status())
        await proc.stop()
    return times


async def idle_memory(server: ServerProc, count: int) -> dict[str, Any]:
    """RSS with no stream client, then with ``count`` idle ones."""
    await asyncio.sleep(1.0)
    idle = server.rss()
    clients = LoadClients(server.port, count, headers=HEADERS, since=int((await server.status())["lastSeq"]))
    conn = await clients.start()
    await asyncio.sleep(2.0)
    loaded = server.rss()
    fds = server.fds()
    await clients.close()
    return {
        "rss_idle_mb": round(idle / 2**20, 1),
        "rss_loaded_mb": round(loaded / 2**20, 1),
        "idle_clients": conn["connected"],
        "per_conn_kib": round((loaded - idle) / 1024 / max(1, count), 2),
        "fds_loaded": fds,
        "connect_s": conn["seconds"],
    }


async def sweep(
    server: ServerProc,
    driver: Driver | FloorDriver,
    counts: list[int],
    window: float,
    others: list[int],
    label: str,
) -> list[dict[str, Any]]:
    """Fixed rate then max rate for every client count."""
    rows = []
    for count in counts:
        clients = LoadClients(
            server.port,
            count,
            headers=HEADERS,
            since=int((await server.status())["lastSeq"]),
            per_process=PER_PROCESS,
        )
        conn = await clients.start()
        if conn["failed"]:
            print(f"[{label}] {conn['failed']} of {count} clients failed to connect", file=sys.stderr)
        await asyncio.sleep(0.5)
        for rate in (20.0, 0.0):
            row = await measure(server, driver, clients, rate, window, others)
            row["server"] = label
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        await clients.close()
    return rows


async def slow_client_run(
    work: Path, keyset: dict[str, Any], seconds: float, peer_kind: str
) -> dict[str, Any]:
    """100 clients at 100 events/s, without and with one client that stops reading."""
    server, driver = await start_pair(
        work, keyset, "slow", peer_kind, WS_MAX_BUFFER=str(SLOW_BUFFER), EVENT_BUFFER_SIZE="5000"
    )
    try:
        since = int((await server.status())["lastSeq"])
        crowd = LoadClients(server.port, 100, headers=HEADERS, since=since)
        await crowd.start()
        await asyncio.sleep(0.5)
        rss_base0 = server.rss()
        base = await measure(server, driver, crowd, 100.0, seconds, [driver.pid])
        base_growth = int(base["rss_mb"] * 2**20) - rss_base0
        slow = LoadClients(
            server.port, 1, headers=HEADERS, since=int((await server.status())["lastSeq"]), rcvbuf=4096
        )
        await slow.start()
        await asyncio.sleep(0.5)
        s0 = int((await server.status())["lastSeq"])
        await slow.window(s0)
        await slow.command({"cmd": "pause"})
        rss0 = server.rss()
        loaded = await measure(server, driver, crowd, 100.0, seconds, [driver.pid])
        rss_peak = int(loaded["rss_mb"] * 2**20)
        s1 = int((await server.status())["lastSeq"])
        await slow.command({"cmd": "unpause"})
        first = await slow.report(s1, wait=8.0)  # reads what the kernel held, then sees the close
        resumed = await slow.reconnect()
        after = await slow.report(s1, wait=10.0)
        await slow.close()
        await crowd.close()
        return {
            "events_s": loaded["events_s"],
            "base_p99": base["p99"],
            "base_p50": base["p50"],
            "with_slow_p99": loaded["p99"],
            "with_slow_p50": loaded["p50"],
            "others_lost": loaded["lost"],
            "rss_before_mb": round(rss0 / 2**20, 1),
            "rss_peak_mb": loaded["rss_mb"],
            "rss_growth_kib": round((rss_peak - rss0) / 1024, 0),
            "rss_growth_without_slow_kib": round(base_growth / 1024, 0),
            "rss_growth_due_to_slow_kib": round((rss_peak - rss0 - base_growth) / 1024, 0),
            "ws_max_buffer_kib": SLOW_BUFFER // 1024,
            "slow_close": first["closes"],
            "slow_frames_before_close": first["frames"],
            "slow_resumed": resumed["connected"],
            "slow_frames_total": after["frames"],
            "slow_lost_after_resume": after["lost"],
            "slow_window_events": s1 - s0,
        }
    finally:
        await driver.stop()
        await server.stop()


def table(rows: list[dict[str, Any]], floor: dict[tuple[int, str], dict[str, Any]]) -> str:
    """The Markdown table of the sweep."""
    head = (
        "| server | clients | rate | events/s | frames/s | p50 ms | p99 ms | max ms | lost | server CPU % | "
        "server RSS MB | peer CPU % | clients CPU % | frames/s vs floor |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        ref = floor.get((r["clients"], str(r["rate"])))
        ratio = (
            f"{r['frames_s'] / ref['frames_s']:.2f}"
            if ref and ref["frames_s"] and r["server"] == "igloo"
            else ""
        )
        peer = r["other_cpu"][0] if r["other_cpu"] else ""
        lines.append(
            f"| {r['server']} | {r['clients']} | {r['rate']} | {r['events_s']} | {r['frames_s']:.0f} | "
            f"{r['p50']} | {r['p99']} | {r['max']} | {r['lost']} | {r['cpu']} | {r['rss_mb']} | {peer} | "
            f"{r['client_cpu']} | {ratio} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase; the results as one dict."""
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="igloo-events-bench-"))
    keyset = keygen(threshold=2, total=3)
    counts = [int(c) for c in args.clients.split(",")]
    out: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    try:
        if args.slow_only:
            out["slow_client"] = await slow_client_run(work, keyset, args.slow_seconds, args.peer)
            return out
        starts = await startup_times(work, keyset, 3)
        out["startup_s"] = {
            "median": round(statistics.median(starts), 3),
            "max": round(max(starts), 3),
            "runs": [round(s, 3) for s in starts],
        }
        print(json.dumps(out["startup_s"]), file=sys.stderr)
        server, driver = await start_pair(work, keyset, "main", args.peer)
        try:
            out["memory"] = await idle_memory(server, args.idle_clients)
            print(json.dumps(out["memory"]), file=sys.stderr)
            out["peer"] = driver.kind
            rows = await sweep(server, driver, counts, args.window, [driver.pid], "igloo")
        finally:
            await driver.stop()
            await server.stop()
        floor_port = free_port()
        floor = ServerProc(
            floor_port,
            {},
            script="bench/broadcast_floor.py",
            args=["--port", str(floor_port)],
            log_path=work / "floor.log",
        )
        await floor.spawn()
        await floor.wait_status()
        try:
            floor_rows = await sweep(floor, FloorDriver(floor), counts, args.window, [], "floor")
        finally:
            await floor.stop()
        out["rows"] = rows + floor_rows
        by_key = {(r["clients"], str(r["rate"])): r for r in floor_rows}
        out["table"] = table(rows + floor_rows, by_key)
        if not args.no_slow:
            out["slow_client"] = await slow_client_run(work, keyset, args.slow_seconds, args.peer)
    finally:
        out["load_after"] = os.getloadavg()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description="Igloo event-stream benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="small counts and short windows (about 2 minutes)"
    )
    parser.add_argument(
        "--clients", default=None, help="comma-separated client counts (default 1,100,1000,5000)"
    )
    parser.add_argument("--window", type=float, default=None, help="seconds per measured window (default 10)")
    parser.add_argument("--idle-clients", type=int, default=1000)
    parser.add_argument(
        "--slow-seconds", type=float, default=None, help="slow-client run length (default 20)"
    )
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-client run")
    parser.add_argument(
        "--peer",
        choices=("node", "server"),
        default="node",
        help="peer: Igloo's NodeService in its own process (node) or a second server.py driven by HTTP",
    )
    parser.add_argument("--slow-only", action="store_true", help="only the slow-client run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    args.clients = args.clients or ("1,100,1000" if args.quick else "1,100,1000,5000")
    args.window = args.window or (3.0 if args.quick else 10.0)
    args.slow_seconds = args.slow_seconds or (6.0 if args.quick else 20.0)
    result = asyncio.run(run(args))
    print(result.get("table", ""))
    print(json.dumps({k: v for k, v in result.items() if k not in ("table", "rows")}, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
