"""Soak test: churn against a running Igloo server; fail when its memory or open fds trend upward.

Usage: `.venv/bin/python bench/soak.py --minutes 10 [--cycle 20] [--json out.json]`

Processes (each `python server.py`, spawned as a user would): a relay (a server used only for its embedded
relay, no credentials), the server under test (share 1 of a fresh 2-of-3 group, API key, one login account,
RELAYS = that relay, SIGN_BUDGET_WINDOW=60) and a peer (share 2, same relay). First a warm-up of
`--warm-up` peer pings (default 12 000) fills the node's bounded memories (relay-pool dedupe and request
replay memory, 10 000 ids each; the 1000-event ring), which the churn alone would still be filling after 10
minutes.
Then each cycle of `--cycle` seconds runs, at once:

- stream clients connecting and disconnecting (up to 60 open; half by API key, half by a login session; some
  resume with `?since=`, some drop without a closing handshake);
- logins and logouts (`POST /api/auth/login`, `/api/auth/logout`: each logout closes that session's sockets);
- signatures both ways (`POST /api/sign` on the server and on the peer) and pings;
- every third cycle the relay is restarted (SIGTERM, or SIGKILL every other time) on the same port, so the
  nodes lose and regain their only relay.

The server's RSS and open fds are sampled every 2 s. At the end of every cycle every client is closed and
the server gets 1.5 s to settle before a *quiescent* sample is taken: these are the samples the verdict uses,
so the number of clients open at the moment of sampling does not add noise. Verdict: the least-squares slope
over the second half of the quiescent samples (the first half still includes settling: SQLite's page cache,
Python's allocator reaching its working set) must stay under `--rss-slope` (KiB/min,
default 256) and `--fd-slope` (fds/min, default 0.5). Exit 1 when either is exceeded.

Why these thresholds: a leak per stream connection (about 15 KiB each; over 500 connections per minute here)
would grow RSS by over 4 MiB/min, a leaked socket or timer per relay restart or per login by 1 fd/min or more;
both are an order of magnitude above the thresholds, while the quiescent samples of a healthy server move by
less than the thresholds over the second half (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _loadclients import raise_fd_limit  # noqa: E402
from _server import API_KEY, ServerProc, free_port, igloo_env  # noqa: E402

from node.keytools import keygen  # noqa: E402

USER, PASSWORD = "soak", "soak-password-" + "p" * 12
MAX_CLIENTS = 60


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    if len(samples) < 3:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return 60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


class Soak:
    """The processes, the churn and the samples."""

    def __init__(self, work: Path, cycle: float) -> None:
        self.work = work
        self.cycle = cycle
        keyset = keygen(threshold=2, total=3)
        self.relay_port, port, peer_port = free_port(), free_port(), free_port()
        relay_url = f"ws://127.0.0.1:{self.relay_port}/"
        common = {
            "GROUP_CRED": keyset["group"],
            "RELAYS": relay_url,
            "SIGN_BUDGET": "1000000",
            "RATE_LIMIT_LOGIN_MAX": "1000000",
            "WS_MAX_PER_IP": "1000",
            "FROSTR_SIGN_TIMEOUT": "3000",
            "SIGN_BUDGET_WINDOW": "60",  # the budget remembers each signature for its window: keep it short
        }
        self.relay = ServerProc(
            self.relay_port,
            igloo_env(self.relay_port, work / "relay", IGLOO_DEMO="false", RELAY_EVENT_RATE="100000",
                      RELAY_WRITE="all"),
            log_path=work / "relay.log",
        )
        self.server = ServerProc(
            port,
            igloo_env(port, work / "a", SHARE_CRED=keyset["shares"][0], **common),
            log_path=work / "a.log",
        )
        self.peer = ServerProc(
            peer_port,
            igloo_env(peer_port, work / "b", SHARE_CRED=keyset["shares"][1], **common),
            log_path=work / "b.log",
        )
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=64)
        self.clients: list[tornado.websocket.WebSocketClientConnection] = []
        self.sessions: list[str] = []
        self.readers: set[asyncio.Future[None]] = set()
        self.counts: dict[str, int] = {}
        self.samples: list[dict[str, float]] = []
        self.quiescent: list[dict[str, float]] = []
        self.t0 = 0.0
        self.last_seq = 0

    def count(self, key: str) -> None:
        """Tally one outcome."""
        self.counts[key] = self.counts.get(key, 0) + 1

    async def start(self) -> None:
        """Account, relay, server, peer."""
        subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "adduser", USER, "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            env={**self.server.env},
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
        await self.relay.spawn()
        await self.relay.wait_status()
        await self.server.spawn()
        await self.server.wait_status(ready=True)
        await self.peer.spawn()
        await self.peer.wait_status(ready=True)
        self.t0 = time.monotonic()

    async def warm_up(self, pings: int) -> float:
        """Fill the bounded structures before measuring; seconds taken.

        The node's relay-pool dedupe and replay memory keep the last 10 000 event and request ids, the event
        ring the last 1000 events: at the churn's pace they would still be filling after 10 minutes and look
        like a leak. ``pings`` peer pings (one request and one answer each through the server's node) fill
        them.
        """
        started = time.monotonic()
        target = str((await self.server.status())["pubkey"])
        left = iter(range(pings))

        async def worker() -> None:
            for _ in left:
                code = await self.post(self.peer, "/api/peers/ping", {"target": target})
                self.count(f"warm-up ping {code}")

        await asyncio.gather(*(worker() for _ in range(16)))
        self.t0 = time.monotonic()
        return time.monotonic() - started

    async def stop(self) -> None:
        """Everything down (bounded)."""
        self.close_clients()
        for proc in (self.peer, self.server, self.relay):
            await proc.stop()
        self.http.close()

    # --- activities ---------------------------------------------------------------------------------------

    async def post(
        self, proc: ServerProc, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> int:
        """POST JSON with the API key (or the given headers); the status (599 on a transport error)."""
        req = tornado.httpclient.HTTPRequest(
            proc.base + path,
            method="POST",
            body=json.dumps(body),
            request_timeout=15,
            headers=headers or {"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )
        resp = await self.http.fetch(req, raise_error=False)
        if path == "/api/auth/login" and resp.code == 200:
            self.sessions.append(json.loads(resp.body)["sessionId"])
        return resp.code

    async def churn_clients(self, until: float) -> None:
        """Open and close stream clients until ``until``."""
        while time.monotonic() < until:
            if len(self.clients) < MAX_CLIENTS:
                await self.open_client()
            if self.clients and random.random() < 0.4:
                ws = self.clients.pop(random.randrange(len(self.clients)))
                if random.random() < 0.5:
                    ws.close()
                    self.count("client closed")
                else:
                    stream = getattr(ws.protocol, "stream", None) if ws.protocol is not None else None
                    if stream is not None:
                        stream.close()  # no closing handshake: the TCP connection just ends
                    self.count("client dropped")
            await asyncio.sleep(0.05)

    async def open_client(self) -> None:
        """One stream client, by API key or by session, sometimes resuming."""
        query = f"?since={max(0, self.last_seq - random.randint(0, 50))}" if random.random() < 0.3 else ""
        if self.sessions and random.random() < 0.5:
            headers = {"X-Session-ID": random.choice(self.sessions)}
        else:
            headers = {"X-API-Key": API_KEY}
        req = tornado.httpclient.HTTPRequest(
            f"ws://127.0.0.1:{self.server.port}/api/events{query}", headers=headers, request_timeout=10
        )
        try:
            ws = await tornado.websocket.websocket_connect(req)
        except (OSError, tornado.httpclient.HTTPClientError, tornado.websocket.WebSocketError):
            self.count("client refused")
            return
        self.clients.append(ws)
        self.count("client opened")
        task = asyncio.ensure_future(self.drain(ws))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def drain(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        """Read frames until the socket ends (tracking the newest seq for resumes)."""
        while True:
            msg = await ws.read_message()
            if msg is None:
                if ws.close_code == 4401:
                    self.count("client closed by logout (4401)")
                return
            with contextlib.suppress(ValueError, TypeError):
                seq = json.loads(msg).get("seq")
                if isinstance(seq, int):
                    self.last_seq = max(self.last_seq, seq)

    async def logins(self, until: float) -> None:
        """Log in, and now and then log a session out."""
        while time.monotonic() < until:
            code = await self.post(self.server, "/api/auth/login", {"username": USER, "password": PASSWORD})
            self.count(f"login {code}")
            if len(self.sessions) > 3:
                sid = self.sessions.pop(0)
                code = await self.post(self.server, "/api/auth/logout", {}, {"X-Session-ID": sid})
                self.count(f"logout {code}")
            await asyncio.sleep(2.0)

    async def signs(self, until: float) -> None:
        """Signatures in both directions, and pings."""
        n = 0
        while time.monotonic() < until:
            proc = self.server if n % 2 == 0 else self.peer
            code = await self.post(proc, "/api/sign", {"message": secrets.token_hex(32)})
            self.count(f"sign {code}")
            if n % 5 == 0:
                code = await self.post(self.server, "/api/peers/ping", {"target": "all"})
                self.count(f"ping {code}")
            n += 1
            await asyncio.sleep(0.2)

    async def restart_relay(self, kill: bool) -> None:
        """Stop the relay (SIGTERM or SIGKILL) and start it again on the same port."""
        if kill:
            await self.relay.kill()
        else:
            await self.relay.stop()
        self.count("relay killed" if kill else "relay stopped")
        await asyncio.sleep(1.0)
        await self.relay.spawn()
        await self.relay.wait_status()

    def close_clients(self) -> None:
        """Close every stream client."""
        for ws in self.clients:
            ws.close()
        self.clients.clear()

    # --- sampling -----------------------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """The server's RSS (KiB) and fds now."""
        return {
            "t": round(time.monotonic() - self.t0, 1),
            "rss_kib": self.server.rss() / 1024,
            "fds": float(self.server.fds()),
        }

    async def sampler(self, stop: asyncio.Event) -> None:
        """Every 2 s until ``stop``."""
        while not stop.is_set():
            self.samples.append(self.sample())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    async def run(self, minutes: float) -> None:
        """Cycles until the time is up."""
        stop = asyncio.Event()
        sampler = asyncio.ensure_future(self.sampler(stop))
        end = self.t0 + 60 * minutes
        cycle = 0
        while time.monotonic() + self.cycle <= end + 1:
            until = time.monotonic() + self.cycle
            tasks = [self.churn_clients(until), self.logins(until), self.signs(until)]
            if cycle % 3 == 2:
                tasks.append(self.restart_relay(kill=cycle % 6 == 5))
            await asyncio.gather(*tasks)
            self.close_clients()
            await asyncio.sleep(1.5)
            self.quiescent.append(self.sample())
            cycle += 1
            q = self.quiescent[-1]
            print(
                f"cycle {cycle}: t={q['t']:.0f}s rss={q['rss_kib'] / 1024:.1f} MiB fds={q['fds']:.0f}",
                file=sys.stderr,
            )
        stop.set()
        await sampler


def verdict(soak: Soak, rss_limit: float, fd_limit: float) -> dict[str, Any]:
    """Slopes over the second half of the quiescent samples and whether they pass."""
    half = soak.quiescent[len(soak.quiescent) // 2 :]
    rss_slope = slope_per_minute([(s["t"], s["rss_kib"]) for s in half])
    fd_slope = slope_per_minute([(s["t"], s["fds"]) for s in half])
    rss_all = [s["rss_kib"] / 1024 for s in soak.samples]
    return {
        "cycles": len(soak.quiescent),
        "rss_mib_first_last": [
            round(soak.quiescent[0]["rss_kib"] / 1024, 1),
            round(soak.quiescent[-1]["rss_kib"] / 1024, 1),
        ],
        "rss_mib_min_max_all_samples": [round(min(rss_all), 1), round(max(rss_all), 1)],
        "fds_quiescent_min_max": [
            min(s["fds"] for s in soak.quiescent),
            max(s["fds"] for s in soak.quiescent),
        ],
        "fds_max_all_samples": max(s["fds"] for s in soak.samples),
        "rss_slope_kib_per_min": round(rss_slope, 1),
        "fd_slope_per_min": round(fd_slope, 3),
        "rss_limit_kib_per_min": rss_limit,
        "fd_limit_per_min": fd_limit,
        "passed": rss_slope <= rss_limit and fd_slope <= fd_limit,
        "counts": dict(sorted(soak.counts.items())),
        "quiescent": [
            {"t": s["t"], "rss_mib": round(s["rss_kib"] / 1024, 2), "fds": int(s["fds"])}
            for s in soak.quiescent
        ],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; the verdict."""
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="igloo-soak-"))
    soak = Soak(work, args.cycle)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        await soak.start()
        warm = await soak.warm_up(args.warm_up)
        print(f"warm-up: {args.warm_up} pings in {warm:.0f} s", file=sys.stderr)
        await soak.run(args.minutes)
        result = verdict(soak, args.rss_slope, args.fd_slope)
    except Exception:
        print(soak.server.log_tail(), file=sys.stderr)
        raise
    finally:
        await soak.stop()
        shutil.rmtree(work, ignore_errors=True)
    result.update(
        {
            "date": started,
            "minutes": args.minutes,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
            "load_after": os.getloadavg(),
        }
    )
    return result


def main() -> int:
    """Parse arguments, soak, print the verdict; exit 1 on an upward trend."""
    parser = argparse.ArgumentParser(description="Igloo soak test")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cycle", type=float, default=20.0, help="seconds per churn cycle")
    parser.add_argument("--rss-slope", type=float, default=256.0, help="fail above this RSS slope (KiB/min)")
    parser.add_argument("--fd-slope", type=float, default=0.5, help="fail above this fd slope (fds/min)")
    parser.add_argument("--warm-up", type=int, default=12000, help="peer pings before the clock starts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    summary = {k: v for k, v in result.items() if k != "quiescent"}
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    print("PASS" if result["passed"] else "FAIL: RSS or open fds trend upward", file=sys.stderr)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
