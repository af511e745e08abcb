"""An outsider attacking Igloo's embedded relay, as its own process (so its work never slows the measurer).

    python -m tests.relay.attacker --url ws://127.0.0.1:PORT/ --sources 127.0.0.2 MODE [--seconds N]

Modes (one per run; the relay tests and bench/relay_bench.py run several side by side):

- ``amplify``: the tag-amplification EVENT: one tag of ~30 000 one-character strings (122 KiB, inside the
  frame limit), which an unbounded relay keeps as 30 000 objects per event.
- ``fill``: stored events of every shape (plain, big content, 2000 one-letter tags that all go in the
  index, many unique tag values, many strings per tag, replaceable and addressable) from every source
  address, until ``--megabytes`` of frames were sent.
- ``costly``: stores events that make searches expensive (kind 1 with 1000 ``t`` tags; kind 7 tagged
  ``t=w``), then sends REQs of ten filters ``{"kinds": [1], "#t": ["w"]}`` (every candidate checked, none
  matching) on every connection it may open, each as soon as the last one is answered.
- ``connections``: opens as many connections from every source as the relay takes, and holds them.
- ``large``: REQs for the 500 newest big events, read slowly.

Prints one JSON line ``{"phase": "ready", ...}`` when set up (the attack runs from then on) and one
``{"phase": "done", ...}`` with counts at the end. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tornado import websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.nostr.event import sign_event

T_W = "w"
MAX_REFUSED = 10_000


def signed(kind: int, tags: list[list[str]], content: str = "", key: bytes | None = None) -> str:
    """An EVENT frame with a freshly signed event."""
    event = sign_event(key or secrets.token_bytes(32), kind, tags, content, int(time.time()), bytes(32))
    return json.dumps(["EVENT", event.to_json()], separators=(",", ":"))


class Attacker:
    """Connections from loopback source addresses and counters of what the relay answered."""

    def __init__(self, url: str, sources: list[str]) -> None:
        self.url = url
        self.sources = sources
        self.counts: Counter[str] = Counter()
        self.conns: list[websocket.WebSocketClientConnection] = []

    def report(self, phase: str, **extra: Any) -> None:
        print(json.dumps({"phase": phase, "counts": dict(self.counts), **extra}), flush=True)

    async def connect(self, source: str) -> websocket.WebSocketClientConnection | None:
        try:
            conn = await websocket.websocket_connect(
                HTTPRequest(self.url, network_interface=source, connect_timeout=5, request_timeout=5),
                max_message_size=16 << 20)
        except HTTPClientError as exc:
            self.counts[f"refused {exc.code}"] += 1
            return None
        self.conns.append(conn)
        return conn

    async def answer(self, conn: websocket.WebSocketClientConnection) -> list[Any]:
        message = await asyncio.wait_for(conn.read_message(), 30)
        if message is None:
            raise ConnectionError(f"closed by the relay ({conn.close_code})")
        reply: list[Any] = json.loads(message)
        return reply

    async def publish(self, conn: websocket.WebSocketClientConnection, frames: list[str]) -> None:
        """Send EVENT frames one after another, counting the relay's OK answers by prefix."""
        for frame in frames:
            await conn.write_message(frame)
            reply = await self.answer(conn)
            if reply[0] == "OK":
                self.counts["ok" if reply[2] else "refused " + reply[3].split(":")[0]] += 1

    async def amplify(self, repeat: int) -> None:
        conn = await self.connect(self.sources[0])
        assert conn is not None
        wide = [signed(1, [["x", *["a"] * 30_000]]) for _ in range(4)]
        self.report("ready")
        for round_ in range(repeat):
            await self.publish(conn, wide)
            self.counts["rounds"] = round_ + 1

    async def fill(self, megabytes: float) -> None:
        key = secrets.token_bytes(32)
        shapes = [
            lambda i: signed(1, [], f"plain {i}"),
            lambda i: signed(1, [["e", secrets.token_hex(32)]], "c" * 60_000),
            lambda i: signed(1, [["t", f"{i}-{j}"] for j in range(1500)]),
            lambda i: signed(1, [[chr(97 + j % 26), str(j)] for j in range(2000)]),
            lambda i: signed(1, [["x", *[str(j) for j in range(60)]] for _ in range(120)]),
            lambda i: signed(0, [], f"profile {i}", key),
            lambda i: signed(30023, [["d", str(i % 7)]], "article " * 500, key),
            lambda i: signed(1, [["p", secrets.token_hex(32)] for _ in range(400)]),
        ]
        conns = [c for c in [await self.connect(source) for source in self.sources] if c is not None]
        self.report("ready")
        sent, i = 0, 0
        while sent < megabytes * 1e6:
            frames = [shapes[i % len(shapes)](i) for _ in range(1)]
            conn = conns[i % len(conns)]
            await self.publish(conn, frames)
            sent += sum(len(f) for f in frames)
            i += 1
        self.counts["bytes sent"] = sent

    async def costly(self, seconds: float) -> None:
        first = await self.connect(self.sources[0])
        assert first is not None
        for source in self.sources:  # what makes a search costly, stored within each address's quota
            conn = first if source == self.sources[0] else await self.connect(source)
            if conn is None:
                continue
            heavy = [signed(1, [["t", f"v{j}"] for j in range(1000)]) for _ in range(12)]
            light = [signed(7, [["t", T_W]], str(i)) for i in range(30)]
            await self.publish(conn, heavy + light)
        self.counts["stored events"] = self.counts["ok"]
        conns = [first] + [c for c in [await self.connect(self.sources[0]) for _ in range(20)] if c]
        self.report("ready", connections=len(conns))
        deadline = time.monotonic() + seconds
        frame = json.dumps(["REQ", "costly", *[{"kinds": [1], "#t": [T_W]}] * 10])

        async def loop(conn: websocket.WebSocketClientConnection) -> None:
            while time.monotonic() < deadline:
                await conn.write_message(frame)
                while True:
                    reply = await self.answer(conn)
                    if reply[0] == "EOSE":
                        self.counts["EOSE"] += 1
                        break
                    if reply[0] == "CLOSED":
                        why = "over work budget" if "too much work" in reply[2] else reply[2].split(":")[0]
                        self.counts["closed " + why] += 1
                        break

        await asyncio.gather(*(loop(conn) for conn in conns))

    async def connections(self) -> None:
        for source in self.sources:
            while self.counts["refused 429"] + self.counts["refused 503"] < MAX_REFUSED:
                if await self.connect(source) is None:
                    break
        self.report("ready", held=len(self.conns))
        await asyncio.Event().wait()  # hold them until killed

    async def large(self, seconds: float) -> None:
        conn = await self.connect(self.sources[0])
        assert conn is not None
        self.report("ready")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await conn.write_message(json.dumps(["REQ", "large", {"limit": 500}]))
            while (reply := await self.answer(conn))[0] == "EVENT":
                self.counts["events"] += 1
                await asyncio.sleep(0.001)  # a slow reader
            self.counts[reply[0]] += 1


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["amplify", "fill", "costly", "connections", "large"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--sources", nargs="+", default=["127.0.0.2"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=20.0)
    args = parser.parse_args(argv)
    if not all(source.startswith("127.") for source in args.sources) or "//127." not in args.url:
        parser.error("loopback addresses only")
    attacker = Attacker(args.url, args.sources)
    modes = {
        "amplify": lambda: attacker.amplify(args.repeat),
        "fill": lambda: attacker.fill(args.megabytes),
        "costly": lambda: attacker.costly(args.seconds),
        "connections": attacker.connections,
        "large": lambda: attacker.large(args.seconds),
    }
    attack = asyncio.ensure_future(modes[args.mode]())
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)  # stop and report
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait([attack, stop], return_when=asyncio.FIRST_COMPLETED)
        if attack.done():
            attack.result()
        else:
            attack.cancel()
            attacker.counts["stopped"] += 1
    except (ConnectionError, TimeoutError, websocket.WebSocketClosedError) as exc:
        attacker.counts[f"ended: {type(exc).__name__}"] += 1
    finally:
        stop.cancel()
        for conn in attacker.conns:
            with contextlib.suppress(Exception):
                conn.close()
    attacker.report("done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
