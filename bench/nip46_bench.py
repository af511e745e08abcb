"""sign_event through the NIP-46 bunker next to POST /api/sign, in the same run, on the same 2-of-3 group.

Usage: `.venv/bin/python bench/nip46_bench.py [--rounds 200] [--warmup 10]`

Everything on loopback, one fresh 2-of-3 keyset, one relay (the embedded relay of the server holding share
1): Igloo server A (share 1, `python server.py`) signs with Igloo server B (share 2, a second process on A's
relay) as co-signer; share 3 stays offline. A NIP-46 client (tests/nip46/client.py: its own key, NIP-44,
kind 24133 over A's relay) pairs with A through `POST /api/nip46/bunker`, and kind 1 is set to "allow" for its
session, so no human is in the loop.

The two paths alternate request by request (REST, bunker, REST, ...) so both see the same machine load:

- REST: `POST /api/sign {event}` with the API key, timed at the HTTP client around the whole request.
- bunker: one `sign_event` request, timed from publishing the request event until the client has the
  decrypted, signed event. It adds two relay hops (client → relay → Igloo, Igloo → relay → client), NIP-44 on
  both sides, and the per-request bookkeeping (session gate, permission check, a stored request row, two
  events on the stream).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node import keytools  # noqa: E402
from node.crypto.credentials import decode_group  # noqa: E402
from node.nostr.event import Event, verify_event  # noqa: E402
from tests.interop.igloo_proc import IglooServer  # noqa: E402
from tests.nip46.client import Nip46Client  # noqa: E402

# The share-leak budget and the relay's per-connection EVENT rate are lifted: the bench measures latency.
ENV = {"SIGN_BUDGET": "1000000", "RELAY_EVENT_RATE": "100000", "NIP46_CLIENT_RATE": "10000",
       "RATE_LIMIT_ENABLED": "false"}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p95, p99, mean (ms)."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "mean": statistics.fmean(values)}


def template(n: int) -> dict[str, Any]:
    content = f"bench note {n} {os.urandom(4).hex()}"
    return {"kind": 1, "created_at": int(time.time()), "tags": [], "content": content}


async def rest_once(igloo: IglooServer, n: int) -> float:
    started = time.perf_counter()
    status, body = await igloo.post("/api/sign", {"event": template(n)})
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"POST /api/sign failed: {status} {body}")
    return elapsed


async def bunker_once(client: Nip46Client, n: int) -> float:
    params = [json.dumps(template(n))]
    started = time.perf_counter()
    answer = await client.call("sign_event", params, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    if "result" not in answer or answer.get("error"):
        raise RuntimeError(f"sign_event through the bunker failed: {answer}")
    verify_event(Event.from_json(json.loads(answer["result"])))
    return elapsed


async def bench(args: argparse.Namespace, work: Path) -> dict[str, dict[str, float]]:
    made = keytools.keygen(2, 3)
    members = decode_group(made["group"]).member_pubkeys()
    server_a = IglooServer(made["group"], made["shares"][0], work / "a", extra_env=ENV)
    await server_a.start()
    try:
        server_b = IglooServer(made["group"], made["shares"][1], work / "b", relays=[server_a.relay_url],
                               extra_env=ENV)
        await server_b.start()
        try:
            for _ in range(50):
                status, body = await server_a.post("/api/peers/ping", {"target": members[1]})
                if status == 200 and body.get("success"):
                    break
                await asyncio.sleep(0.1)
            for _ in range(100):
                status, state = await server_a.get("/api/nip46/bunker")
                if status == 200 and state["listening"]:
                    break
                await asyncio.sleep(0.1)
            status, link = await server_a.post("/api/nip46/bunker", {})
            assert status == 200, link
            client = await Nip46Client([server_a.relay_url], link["pubkey"]).start()
            try:
                answer = await client.call("connect", ["", link["uri"].split("secret=")[1]])
                assert answer.get("result") == "ack", answer
                status, body = await server_a.put(f"/api/nip46/sessions/{client.pubkey}/policy",
                                                  {"kinds": {"1": "allow"}})
                assert status == 200, body
                for n in range(args.warmup):
                    await rest_once(server_a, n)
                    await bunker_once(client, n)
                rest: list[float] = []
                bunker: list[float] = []
                for n in range(args.rounds):
                    rest.append(await rest_once(server_a, n))
                    bunker.append(await bunker_once(client, n))
            finally:
                await client.close()
        finally:
            await server_b.stop()
    finally:
        await server_a.stop()
    return {"rest": summary(rest), "bunker": summary(bunker)}


def render(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; {stamp}; Python "
        f"{platform.python_version()}; {args.rounds} requests per path, sequential, alternating; ms",
        "",
        "| 2-of-3 signing of one kind-1 event (Igloo + Igloo co-signer) | p50 | p95 | p99 | mean |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {"rest": "POST /api/sign {event}", "bunker": "NIP-46 sign_event (auto-allowed kind)"}
    for key, label in labels.items():
        row = results[key]
        lines.append(f"| {label} | {row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | "
                     f"{row['mean']:.1f} |")
    extra = results["bunker"]["p50"] - results["rest"]["p50"]
    lines.append(f"| bunker minus REST (p50) | {extra:.1f} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="igloo-nip46-bench-") as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    print(render(results, args))


if __name__ == "__main__":
    main()
