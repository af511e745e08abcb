"""A peer signer for the benches: Igloo's own NodeService (share 2) on a relay, driven with JSON lines.

The same node code `python server.py` runs (NodeService over RelayPool), without the HTTP layer, so that
driving events costs the load generator as little as possible. Run by events_bench.py as a separate process:

- stdin line 1: ``{"group", "share", "relay", "target"}`` (target: the server's x-only pubkey); the process
  answers ``{"ready": true}`` once its relay subscription is live and it has pinged the target once.
- ``{"cmd": "drive", "rate": events/s (0 = flat out), "seconds": s, "inflight": n}``: alternate pings (the
  server's node emits one event) and sign requests (two events); answers ``{"ops", "errors", "codes"}``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.crypto.credentials import decode_group, decode_share  # noqa: E402
from node.service import NodeError, NodeOptions, NodeService  # noqa: E402
from node.transport.pool import RelayPool  # noqa: E402


class Peer:
    """The node and its drive loop."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.target = str(config["target"])
        self.node = NodeService(
            decode_group(config["group"]),
            decode_share(config["share"]),
            [config["relay"]],
            emit=lambda *_: None,
            pool_factory=RelayPool,
            options=NodeOptions(sign_timeout=10.0, ping_interval=3600.0, sign_budget=1_000_000),
        )
        self.errors: dict[str, int] = {}

    async def start(self) -> None:
        """Connect, subscribe, and ping the target until it answers (so it is online for co-signing)."""
        await self.node.start()
        if not await self.node.wait_ready(20):
            raise RuntimeError("peer: relay not reachable")
        for _ in range(100):
            try:
                await self.node.ping(self.target, timeout=2)
                return
            except NodeError:
                await asyncio.sleep(0.1)
        raise RuntimeError("peer: the server does not answer pings")

    async def op(self, n: int) -> bool:
        """One ping (even n) or sign request (odd n)."""
        try:
            if n % 2 == 0:
                await self.node.ping(self.target)
            else:
                await self.node.sign(secrets.token_hex(32))
        except NodeError as exc:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            return False
        return True

    async def drive(self, rate: float, seconds: float, inflight: int) -> dict[str, Any]:
        """Operations at ``rate`` events/s (1.5 events per op on average) or flat out."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.errors = {}
        results: list[bool] = []
        if rate > 0:
            interval = 1.5 / rate
            tasks = []
            n = 0
            while loop.time() - start < seconds:
                tasks.append(asyncio.ensure_future(self.op(n)))
                n += 1
                await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
            results = list(await asyncio.gather(*tasks))
        else:
            counter = iter(range(1 << 30))

            async def worker() -> None:
                while loop.time() - start < seconds:
                    results.append(await self.op(next(counter)))

            await asyncio.gather(*(worker() for _ in range(inflight)))
        return {"ops": len(results), "errors": results.count(False), "codes": self.errors}


async def main() -> None:
    """Config, ready, then commands until EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    peer = Peer(json.loads(await reader.readline()))
    await peer.start()

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ready": True})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd.get("cmd") == "drive":
            answer(await peer.drive(float(cmd["rate"]), float(cmd["seconds"]), int(cmd.get("inflight", 32))))
    await peer.node.stop()


if __name__ == "__main__":
    asyncio.run(main())
