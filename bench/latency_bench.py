"""Signing over a network that looks like the internet: every member 40 ms (± 5 ms) from its relay.

Usage: `.venv/bin/python bench/latency_bench.py [--quick] [--rounds 100] [--concurrency 8] [--delay 40]
[--jitter 5] [--json out.json] [--server-root OTHER_CHECKOUT]`  (about 4 minutes; `--quick` about 2)

`--server-root` runs another checkout's `server.py` for the relay and the Igloo members (to compare with the
code before a change; the proxies, the JS nodes and this script stay this checkout's).

Everything runs on 127.0.0.1. One relay (a `python server.py` used only for its embedded relay,
`RELAY_WRITE=all`), and in front of it one delaying TCP proxy per member (bench/_delay_proxy.py, in its own
process): each member reaches the relay only through its proxy, which holds every chunk for the one-way delay
in each direction. So a message from one member to another crosses two member-relay links, and a signature
(request to the co-signer, answer back) crosses four: the floor of a signature is 4 x the one-way delay.

One fresh 2-of-3 keyset; the series, each sequential and with `concurrency` concurrent requesters:

- Igloo → Igloo: POST /api/sign on server A (share 1) with server B (share 2) co-signing; share 3 offline.
- NIP-46 in the loop: sign_event through A's bunker from a NIP-46 client (its own key and its own proxy),
  alternating request by request with POST /api/sign {event}: floor 8 crossings (the client's request to
  the bunker, the signature, the answer back), so the bunker's share is exactly 4 crossings.
- Igloo → two Igloo co-signers: server C (share 3) joins B; concurrent only; counts which co-signer answered
  each session (from B's and C's event streams).
- Igloo → JS: B and C stopped, a JS reference node (@frostr/bifrost 1.0.7) holding share 2 co-signs.
- JS → JS: a JS node holding share 3 asks the JS node holding share 2 (`req.sign`, timed inside node).

Each sequential series runs twice over the same connections: with the delay, then with the proxies set to
0 ms (what the same path costs without a network: HTTP, crypto, relay, proxy, on this machine). The excess
of a p50 over its floor is then split into that processing, the proxies' own timer lateness (measured by
the proxy process), and the rest, which would be waiting on our side (timers, retries, extra round trips).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.nip46_bench import bunker_once, rest_once  # noqa: E402
from bench.sign_bench import AnswerCounter, _pid, cpu_ms, summary, time_http, time_js  # noqa: E402
from node import keytools  # noqa: E402
from node.crypto.credentials import decode_group  # noqa: E402
from tests import igloo_process  # noqa: E402
from tests.igloo_process import ServerProc  # noqa: E402
from tests.interop.conftest import JsNode, ensure_js_packages, node_binary  # noqa: E402
from tests.interop.igloo_proc import IglooServer  # noqa: E402
from tests.nip46.client import Nip46Client  # noqa: E402

ENV = {"SIGN_BUDGET": "1000000", "RELAY_EVENT_RATE": "100000", "NIP46_CLIENT_RATE": "10000"}
MEMBERS = ["igloo-a", "igloo-b", "igloo-c", "js-2", "js-3", "nip46-client"]
SIGN_CROSSINGS = 4  # requester → relay → co-signer → relay → requester
NIP46_CROSSINGS = 8  # client → relay → bunker, the signature (4), bunker → relay → client


class Proxies:
    """The proxy process: one delaying proxy per member in front of the relay."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.urls: dict[str, str] = {}

    async def start(self, relay_port: int, delay: float, jitter: float) -> Proxies:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "_delay_proxy.py"), "--upstream", str(relay_port),
            "--count", str(len(MEMBERS)), "--delay", str(delay), "--jitter", str(jitter),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        ports = (await self._line())["ports"]
        self.urls = {name: f"ws://127.0.0.1:{port}/" for name, port in zip(MEMBERS, ports, strict=True)}
        return self

    async def _line(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 10)
        if not line:
            raise RuntimeError("the proxy process exited")
        return dict(json.loads(line))

    async def command(self, text: str) -> dict[str, Any]:
        """One stdin command (``delay MS JITTER``, ``stats``, ``reset``); its JSON answer."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((text + "\n").encode())
        await self._proc.stdin.drain()
        return await self._line()

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _ping(igloo: IglooServer, pubkey: str) -> None:
    """Mark a co-signer online on the requester (it is chosen among online peers)."""
    for _ in range(50):
        status, body = await igloo.post("/api/peers/ping", {"target": pubkey})
        if status == 200 and body.get("success"):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"co-signer {pubkey[:12]}… does not answer pings")


async def _series(run: Any, rounds: int, concurrency: int, pids: tuple[int | None, ...]) -> dict[str, float]:
    before = [cpu_ms(pid) for pid in pids]
    result = summary(await run(rounds, concurrency))
    after = [cpu_ms(pid) for pid in pids]
    result["cpu"] = [(a - b) / rounds for a, b in zip(after, before, strict=True)]  # type: ignore[assignment]
    return result


async def sequential_pair(proxies: Proxies, args: argparse.Namespace, run: Any,
                          pids: tuple[int | None, ...]) -> dict[str, Any]:
    """The sequential series with the delay, then again with 0 ms proxies; the proxies' lateness."""
    await proxies.command("reset")
    delayed = await _series(run, args.rounds, 1, pids)
    delayed["proxy"] = await proxies.command("stats")
    await proxies.command("delay 0 0")
    await run(5, 1)  # chunks held with the old delay are out
    bare = await _series(run, args.rounds, 1, pids)
    await proxies.command(f"delay {args.delay} {args.jitter}")
    await run(3, 1)
    return {"delayed": delayed, "bare": bare}


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    made = keytools.keygen(2, 3)
    group, shares = made["group"], made["shares"]
    members = decode_group(group).member_pubkeys()
    results: dict[str, Any] = {}
    relay = ServerProc(work / "relay", env={"IGLOO_DEMO": "false", "RELAY_WRITE": "all",
                                           "RELAY_EVENT_RATE": "100000"})
    await relay.start()
    proxies = await Proxies().start(relay.port, args.delay, args.jitter)
    try:
        a = await IglooServer(group, shares[0], work / "a", relays=[proxies.urls["igloo-a"]],
                              extra_env=ENV).start()
        try:
            await igloo_phase(args, a, group, shares, members, proxies, work, results)
            await js_phase(args, a, group, shares, members, proxies, results)
        finally:
            await a.stop()
        results["proxy_hold"] = await proxies.command("stats")
    finally:
        await proxies.close()
        await relay.stop()
    return results


async def igloo_phase(args: argparse.Namespace, a: IglooServer, group: str, shares: list[str],
                      members: list[str], proxies: Proxies, work: Path, results: dict[str, Any]) -> None:
    """Igloo → Igloo (sequential, concurrent), NIP-46 beside REST, then two Igloo co-signers."""
    b = await IglooServer(group, shares[1], work / "b", relays=[proxies.urls["igloo-b"]],
                          extra_env=ENV).start()
    try:
        await _ping(a, members[1])
        run = lambda n, c: time_http(a, n, c)  # noqa: E731
        await run(args.warmup, 1)
        pids = (a.pid, b.pid)
        results["igloo+igloo"] = await sequential_pair(proxies, args, run, pids)
        results["igloo+igloo"]["concurrent"] = await _series(run, args.rounds, args.concurrency, pids)
        log(f"igloo+igloo: {results['igloo+igloo']['delayed']['p50']:.1f} / "
            f"{results['igloo+igloo']['concurrent']['p50']:.1f} ms")
        results["nip46"] = await nip46_series(args, a, proxies)
        nip = results["nip46"]
        log(f"nip46: bunker {nip['bunker']['p50']:.1f}, rest {nip['rest']['p50']:.1f}")
        c = await IglooServer(group, shares[2], work / "c", relays=[proxies.urls["igloo-c"]],
                              extra_env=ENV).start()
        try:
            await _ping(a, members[2])
            await _ping(a, members[1])
            counters = [await AnswerCounter(b).start(), await AnswerCounter(c).start()]
            try:
                spread = await _series(run, args.rounds, args.concurrency, (a.pid, b.pid, c.pid))
            finally:
                spread["answered"] = [await counter.close() for counter in counters]
            results["igloo+2igloo"] = spread
            log(f"igloo+2 igloo: {spread['p50']:.1f} ms, answered {spread['answered']}")
        finally:
            await c.stop()
    finally:
        await b.stop()


async def nip46_series(args: argparse.Namespace, a: IglooServer, proxies: Proxies) -> dict[str, Any]:
    """sign_event through the bunker and POST /api/sign {event}, alternating, with the delay; then the same
    with 0 ms proxies (what the bunker's own work costs on this machine)."""
    for _ in range(100):
        status, state = await a.get("/api/nip46/bunker")
        if status == 200 and state["listening"]:
            break
        await asyncio.sleep(0.1)
    status, link = await a.post("/api/nip46/bunker", {})
    if status != 200:
        raise RuntimeError(f"no bunker link: {status} {link}")
    client = await Nip46Client([proxies.urls["nip46-client"]], link["pubkey"]).start()
    try:
        answer = await client.call("connect", ["", link["uri"].split("secret=")[1]], timeout=10)
        if answer.get("result") != "ack":
            raise RuntimeError(f"connect refused: {answer}")
        status, body = await a.put(f"/api/nip46/sessions/{client.pubkey}/policy", {"kinds": {"1": "allow"}})
        if status != 200:
            raise RuntimeError(f"policy not set: {status} {body}")
        for n in range(args.warmup):
            await rest_once(a, n)
            await bunker_once(client, n)
        result: dict[str, Any] = {}
        for label, delay in (("", f"{args.delay} {args.jitter}"), ("_bare", "0 0")):
            await proxies.command(f"delay {delay}")
            await rest_once(a, 0)
            await bunker_once(client, 0)  # chunks held with the old delay are out
            rest: list[float] = []
            bunker: list[float] = []
            for n in range(args.nip46_rounds):
                rest.append(await rest_once(a, n))
                bunker.append(await bunker_once(client, n))
            result["rest" + label], result["bunker" + label] = summary(rest), summary(bunker)
        await proxies.command(f"delay {args.delay} {args.jitter}")
    finally:
        await client.close()
    return result


async def js_phase(args: argparse.Namespace, a: IglooServer, group: str, shares: list[str],
                   members: list[str], proxies: Proxies, results: dict[str, Any]) -> None:
    """Igloo → JS, then JS → JS, with the same JS co-signer."""
    js2 = await JsNode(group, shares[1], [proxies.urls["js-2"]]).start(timeout=30)
    try:
        await _ping(a, members[1])
        run = lambda n, c: time_http(a, n, c)  # noqa: E731
        await run(args.warmup, 1)
        pids = (a.pid, _pid(js2))
        results["igloo+JS"] = await sequential_pair(proxies, args, run, pids)
        results["igloo+JS"]["concurrent"] = await _series(run, args.rounds, args.concurrency, pids)
        log(f"igloo+JS: {results['igloo+JS']['delayed']['p50']:.1f} / "
            f"{results['igloo+JS']['concurrent']['p50']:.1f} ms")
        js3 = await JsNode(group, shares[2], [proxies.urls["js-3"]]).start(timeout=30)
        try:
            run_js = lambda n, c: time_js(js3, members[1], n, c)  # noqa: E731
            await run_js(args.warmup, 1)
            pids = (_pid(js3), _pid(js2))
            results["JS+JS"] = await sequential_pair(proxies, args, run_js, pids)
            results["JS+JS"]["concurrent"] = await _series(run_js, args.rounds, args.concurrency, pids)
            log(f"JS+JS: {results['JS+JS']['delayed']['p50']:.1f} / "
                f"{results['JS+JS']['concurrent']['p50']:.1f} ms")
        finally:
            await js3.close()
    finally:
        await js2.close()


def log(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def render(results: dict[str, Any], args: argparse.Namespace, load: tuple[float, float]) -> str:
    """The Markdown tables (ms)."""
    floor = SIGN_CROSSINGS * args.delay
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    late = results["proxy_hold"]["late_mean_ms"]
    lines = [
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; {stamp}; Python "
        f"{platform.python_version()}; one-way delay {args.delay:g} ± {args.jitter:g} ms per member-relay "
        f"link; {args.rounds} requests per series, {args.concurrency} concurrent requesters; load average "
        f"{load[0]:.1f} before, {load[1]:.1f} after; proxy timers {late:.2f} ms late on average per crossing",
        "",
        "| 2-of-3 signing | series | p50 | p95 | p99 | floor | p50 - floor | same path at 0 ms: p50 | "
        "proxy lateness (4 crossings) | unexplained | bar |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    labels = {"igloo+igloo": "Igloo → Igloo (POST /api/sign)", "igloo+JS": "Igloo → JS (POST /api/sign)",
              "JS+JS": "JS → JS (req.sign, reference)"}
    js = results["JS+JS"]
    for mode, label in labels.items():
        seq, bare, conc = results[mode]["delayed"], results[mode]["bare"], results[mode]["concurrent"]
        lateness = SIGN_CROSSINGS * seq["proxy"]["late_mean_ms"]
        excess = seq["p50"] - floor
        bar = ""
        if mode == "igloo+igloo":
            limit = 1.1 * floor + 5
            bar = f"p50 ≤ {limit:.0f}: {'met' if seq['p50'] <= limit else 'MISSED'}; "
        if mode != "JS+JS":
            bar += f"{'≤' if seq['p50'] <= js['delayed']['p50'] else '>'} JS → JS"
        lines.append(f"| {label} | sequential | {seq['p50']:.1f} | {seq['p95']:.1f} | {seq['p99']:.1f} | "
                     f"{floor:.0f} | {excess:.1f} | {bare['p50']:.1f} | {lateness:.1f} | "
                     f"{excess - bare['p50'] - lateness:.1f} | {bar} |")
        cbar = ""
        if mode != "JS+JS":
            cbar = f"{'≤' if conc['p50'] <= js['concurrent']['p50'] else '>'} JS → JS"
        lines.append(f"| {label} | {args.concurrency} concurrent | {conc['p50']:.1f} | {conc['p95']:.1f} | "
                     f"{conc['p99']:.1f} | {floor:.0f} | {conc['p50'] - floor:.1f} | | | | {cbar} |")
    spread = results["igloo+2igloo"]
    answered = spread["answered"]
    lines.append(f"| Igloo → two Igloo co-signers | {args.concurrency} concurrent | {spread['p50']:.1f} | "
                 f"{spread['p95']:.1f} | {spread['p99']:.1f} | {floor:.0f} | "
                 f"{spread['p50'] - floor:.1f} | | | | "
                 f"sessions answered: B {answered[0]['sessions']}, C {answered[1]['sessions']} (sighashes "
                 f"{answered[0]['sighashes']} / {answered[1]['sighashes']}) |")
    nip = results["nip46"]
    nfloor = NIP46_CROSSINGS * args.delay
    lines += [
        "",
        f"NIP-46 in the loop ({args.nip46_rounds} requests per path, alternating, sequential; ms):",
        "",
        "| one kind-1 event, Igloo + Igloo co-signer | p50 | p95 | p99 | floor | p50 - floor | "
        "same path at 0 ms: p50 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| POST /api/sign {{event}} | {nip['rest']['p50']:.1f} | {nip['rest']['p95']:.1f} | "
        f"{nip['rest']['p99']:.1f} | {floor:.0f} | {nip['rest']['p50'] - floor:.1f} | "
        f"{nip['rest_bare']['p50']:.1f} |",
        f"| NIP-46 sign_event through the bunker | {nip['bunker']['p50']:.1f} | {nip['bunker']['p95']:.1f} | "
        f"{nip['bunker']['p99']:.1f} | {nfloor:.0f} | {nip['bunker']['p50'] - nfloor:.1f} | "
        f"{nip['bunker_bare']['p50']:.1f} |",
        f"| bunker minus REST (p50) | {nip['bunker']['p50'] - nip['rest']['p50']:.1f} | | | "
        f"{nfloor - floor:.0f} | {nip['bunker']['p50'] - nip['rest']['p50'] - (nfloor - floor):.1f} | "
        f"{nip['bunker_bare']['p50'] - nip['rest_bare']['p50']:.1f} |",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print the tables (and the raw figures with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 requests per series instead of 100")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--nip46-rounds", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--delay", type=float, default=40.0, help="one-way delay per member-relay link, ms")
    parser.add_argument("--jitter", type=float, default=5.0, help="± ms, uniform")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--server-root", type=Path, default=None, help="another checkout's server.py")
    args = parser.parse_args()
    if args.server_root is not None:
        igloo_process.ROOT = args.server_root.resolve()  # read by ServerProc.start
    args.rounds = args.rounds or (30 if args.quick else 100)
    args.nip46_rounds = args.nip46_rounds or (20 if args.quick else 60)
    if node_binary() is None:
        sys.exit("latency_bench: `node` is not installed (the JS reference runs in node)")
    ensure_js_packages()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="igloo-latency-bench-") as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    log(f"done in {time.monotonic() - started:.0f} s")
    print(render(results, args, (load_before, os.getloadavg()[0])))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
