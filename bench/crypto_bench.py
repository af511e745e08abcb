"""Crypto-core benchmark: Igloo's Python crypto against the JS reference (@frostr/bifrost 1.0.7).

Usage: `.venv/bin/python bench/crypto_bench.py [--iterations N] [--repetitions R] [--profile OP]`

Times the same four operations on both sides in one invocation (the JS side runs bench/js/crypto_bench.mjs
with node) and prints a Markdown table of per-operation wall and CPU time (median of R repetitions of N
iterations; Python CPU = time.process_time, JS CPU = process.cpuUsage). The bar: Igloo's CPU per 2-of-3
signing session is at most 1/10 of the reference's. `--profile OP` prints a cProfile of one Igloo operation.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.metadata
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.crypto import curve  # noqa: E402
from node.crypto.ecdh import combine_ecdh_pkgs, create_ecdh_pkg  # noqa: E402
from node.crypto.keygen import generate_dealer_pkg_gen  # noqa: E402
from node.crypto.session import combine_session, create_session, sign_session  # noqa: E402

BAR = 10.0  # required ratio of reference CPU to Igloo CPU per signing session

LABELS = {
    "keygen_2of3": "keygen 2-of-3 (dealer, with static nonces)",
    "sign_session_2of3": "signing session 2-of-3 (session + 2 psigs + combine + BIP-340 verify)",
    "sign_batch_10": "batched session of 10 sighashes (same steps)",
    "ecdh_2of3": "threshold ECDH (2 keyshares + combine)",
}


def _python_ops() -> dict[str, Callable[[], object]]:
    group, shares = generate_dealer_pkg_gen(2, 3)
    members = [shares[0].idx, shares[1].idx]

    def sign(k: int) -> object:
        hashes = [[os.urandom(32).hex()] for _ in range(k)]
        session = create_session(group, members, hashes, stamp=1_700_000_000)
        pkgs = [sign_session(group, shares[0], session), sign_session(group, shares[1], session)]
        return combine_session(group, session, pkgs)  # BIP-340-verifies every signature before returning

    def ecdh() -> object:
        peer = curve.pubkey_of(os.urandom(32))[1:].hex()
        pkgs = [create_ecdh_pkg(group, share, members, peer) for share in shares[:2]]
        return combine_ecdh_pkgs(pkgs)

    return {
        "keygen_2of3": lambda: generate_dealer_pkg_gen(2, 3),
        "sign_session_2of3": lambda: sign(1),
        "sign_batch_10": lambda: sign(10),
        "ecdh_2of3": ecdh,
    }


def bench_python(iterations: int, repetitions: int, warmup: int) -> dict[str, dict[str, float]]:
    """Median per-op wall and CPU milliseconds of each Python operation."""
    out = {}
    for name, fn in _python_ops().items():
        for _ in range(warmup):
            fn()
        walls, cpus = [], []
        for _ in range(repetitions):
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(iterations):
                fn()
            t1, c1 = time.perf_counter(), time.process_time()
            walls.append((t1 - t0) * 1000 / iterations)
            cpus.append((c1 - c0) * 1000 / iterations)
        out[name] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}
    return out


Timings = dict[str, dict[str, float]]


def bench_js(iterations: int, repetitions: int, warmup: int) -> tuple[Timings, dict[str, str]]:
    """The same operations timed in node with the JS reference."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed: the JS reference side cannot run")
    if not (ROOT / "tests/interop/js/node_modules/@frostr/bifrost").is_dir():
        raise SystemExit("the JS reference is not installed: run `make interop-deps`")
    proc = subprocess.run(
        [node, str(ROOT / "bench/js/crypto_bench.mjs")],
        input=json.dumps({"iterations": iterations, "repetitions": repetitions, "warmup": warmup}),
        capture_output=True, text=True, timeout=600, check=True,
    )
    data = json.loads(proc.stdout)
    ops = {k: {"wall": v["wall_median"], "cpu": v["cpu_median"]} for k, v in data["ops"].items()}
    return ops, data["versions"]


def render(py: dict[str, dict[str, float]], js: dict[str, dict[str, float]], meta: dict[str, Any]) -> str:
    """The Markdown report: a header line and one table row per operation."""
    lines = [
        f"Machine: {meta['machine']}; {meta['date']}; {meta['runtime']}; "
        f"{meta['iterations']} iterations x {meta['repetitions']} repetitions, medians.",
        "",
        "| operation | Igloo wall ms | Igloo CPU ms | reference wall ms | reference CPU ms "
        "| CPU ratio (ref / Igloo) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in LABELS.items():
        p, j = py[name], js[name]
        ratio = j["cpu"] / p["cpu"] if p["cpu"] > 0 else float("inf")
        lines.append(
            f"| {label} | {p['wall']:.3f} | {p['cpu']:.3f} | {j['wall']:.3f} | {j['cpu']:.3f} "
            f"| {ratio:.1f}x |"
        )
    ratio = js["sign_session_2of3"]["cpu"] / py["sign_session_2of3"]["cpu"]
    verdict = "met" if ratio >= BAR else "NOT met"
    bar = f"Bar (Igloo CPU per signing session <= 1/{BAR:.0f} of the reference's): **{verdict}** "
    bar += f"({ratio:.1f}x)."
    lines += ["", bar]
    return "\n".join(lines)


def profile(op: str, iterations: int) -> None:
    """Print the top of a cProfile of `iterations` runs of one Python operation."""
    fn = _python_ops()[op]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(iterations):
        fn()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main() -> None:
    """Run both sides and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--profile", choices=sorted(LABELS), help="cProfile one Igloo operation instead")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.iterations)
        return
    py = bench_python(args.iterations, args.repetitions, args.warmup)
    js, versions = bench_js(args.iterations, args.repetitions, args.warmup)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runtime": (
            f"Python {platform.python_version()} + coincurve {importlib.metadata.version('coincurve')}; "
            f"node {versions['node']} + @frostr/bifrost {versions['bifrost']} "
            f"(@cmdcode/frost {versions['frost']})"
        ),
        "iterations": args.iterations,
        "repetitions": args.repetitions,
    }
    print(render(py, js, meta))


if __name__ == "__main__":
    main()
