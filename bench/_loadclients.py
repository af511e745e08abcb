"""Event-stream load generator: one process holding many WebSocket clients, driven with JSON lines.

Run by the benches as a separate process (so the server's CPU is measured alone), never by hand:
``python bench/_loadclients.py`` reads one JSON config line on stdin, then one command per line, and answers
each command with one JSON line on stdout.

Config: ``{"host", "port", "path", "headers": {...}, "count", "since", "rcvbuf"?}``.
Commands:

- ``{"cmd": "connect"}`` → ``{"connected", "failed", "seconds"}``: open ``count`` clients.
- ``{"cmd": "window", "from": seq}``: forget earlier statistics; count frames with ``seq > from`` from now on.
- ``{"cmd": "report", "to": seq, "wait": s}`` → statistics of frames ``from < seq <= to``, after waiting up
  to ``s`` seconds for every client to reach ``to``: frames, lost (seq gaps), duplicates, clients behind,
  a latency histogram in 0.1 ms buckets, close codes, this process's CPU seconds.
- ``{"cmd": "pause"}`` / ``{"cmd": "unpause"}``: stop / restart reading on every socket (a stuck client).
- ``{"cmd": "reconnect"}`` → resume every closed client with ``?since=<last seq it saw>`` (answer as connect).
- ``{"cmd": "close"}``: close everything and exit.

Latency is the client's ``time.time()`` on receipt minus the frame's ``timestamp`` (the server's wall clock at
publish, ISO-8601 with milliseconds, truncated): same machine, same clock; the reading is up to 1 ms high.
Only the standard library is used; the WebSocket client is a minimal RFC 6455 reader (the server never
fragments or masks; control frames are handled).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import socket
import sys
import time
from datetime import datetime
from typing import Any

CONNECT_CONCURRENCY = 64
HANDSHAKE_TIMEOUT = 20.0


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Stats:
    """What every client of this process records, shared to keep per-frame work small."""

    def __init__(self) -> None:
        self.floor = 1 << 62  # nothing counted until a window is opened
        self.hist: dict[int, int] = {}
        self.frames = 0
        self.lost = 0
        self.dups = 0
        self.closes: dict[str, int] = {}
        self._parsed: dict[bytes, tuple[int, float]] = {}

    def reset(self, floor: int) -> None:
        """Start a new window: count frames with seq above ``floor``."""
        self.floor = floor
        self.hist = {}
        self.frames = self.lost = self.dups = 0

    def parse(self, payload: bytes) -> tuple[int, float] | None:
        """(seq, publish time in s) of an event frame; None for per-connection frames (seq null)."""
        hit = self._parsed.get(payload)
        if hit is not None:
            return hit
        try:
            body = json.loads(payload)
            seq = body.get("seq")
            if not isinstance(seq, int):
                return None
            stamp = datetime.fromisoformat(body["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            return None
        if len(self._parsed) > 4096:
            self._parsed.clear()
        self._parsed[payload] = (seq, stamp)
        return seq, stamp


class Client(asyncio.Protocol):
    """One stream client: handshake, then frame parsing into the shared Stats."""

    def __init__(self, stats: Stats, request: bytes) -> None:
        self.stats = stats
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.last_seq = 0
        self.open = False
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        """Parse the handshake answer, then every complete frame."""
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            ok = head.startswith(b"HTTP/1.1 101")
            self.open = ok
            if not self.upgraded.done():
                self.upgraded.set_result(ok)
            if not ok:
                assert self.transport is not None
                self.transport.close()
                return
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        stats = self.stats
        pos = 0
        size = len(buf)
        now = time.time()
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == 1:
                parsed = stats.parse(payload)
                if parsed is None:
                    continue
                seq, stamp = parsed
                if seq <= self.last_seq:
                    if seq > stats.floor:
                        stats.dups += 1
                    continue
                if seq > stats.floor:
                    stats.frames += 1
                    gap = seq - max(self.last_seq, stats.floor) - 1
                    if gap > 0:
                        stats.lost += gap
                    bucket = int((now - stamp) * 10000)
                    stats.hist[bucket] = stats.hist.get(bucket, 0) + 1
                self.last_seq = seq
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._send(0x88, payload[:2])
                assert self.transport is not None
                self.transport.close()
            elif opcode == 9:
                self._send(0x8A, payload)
        del buf[:pos]

    def _send(self, first: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes([first, 0x80 | len(payload)]) + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        """Record how the socket ended."""
        key = str(self.close_code) if self.close_code is not None else "eof"
        if self.open or self.close_code is not None:
            self.stats.closes[key] = self.stats.closes.get(key, 0) + 1
        self.open = False
        if not self.upgraded.done():
            self.upgraded.set_result(False)


class Swarm:
    """All clients of this process."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.stats = Stats()
        self.clients: list[Client] = []
        self.window_from = 0

    def _request(self, since: int | None) -> bytes:
        cfg = self.config
        query = "" if since is None else f"?since={since}"
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {cfg.get('path', '/api/events')}{query} HTTP/1.1",
            f"Host: {cfg['host']}:{cfg['port']}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in cfg.get("headers", {}).items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _open_one(self, since: int | None, gate: asyncio.Semaphore) -> Client | None:
        loop = asyncio.get_running_loop()
        async with gate:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            rcvbuf = self.config.get("rcvbuf")
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(rcvbuf))
            sock.setblocking(False)
            try:
                await asyncio.wait_for(
                    loop.sock_connect(sock, (self.config["host"], self.config["port"])), HANDSHAKE_TIMEOUT
                )
                _, client = await loop.create_connection(
                    lambda: Client(self.stats, self._request(since)), sock=sock
                )
                ok = await asyncio.wait_for(client.upgraded, HANDSHAKE_TIMEOUT)
            except (OSError, TimeoutError):
                sock.close()
                return None
            if not ok:
                return None
            client.last_seq = since or 0
            return client

    async def connect(self) -> dict[str, Any]:
        """Open ``count`` clients."""
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        since = self.config.get("since")
        results = await asyncio.gather(*(self._open_one(since, gate) for _ in range(self.config["count"])))
        opened = [c for c in results if c is not None]
        self.clients.extend(opened)
        return {
            "connected": len(opened),
            "failed": len(results) - len(opened),
            "seconds": round(time.monotonic() - started, 3),
        }

    async def reconnect(self) -> dict[str, Any]:
        """Resume every closed client from the last seq it saw (``?since=``)."""
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        closed = [c for c in self.clients if not c.open]
        fresh = await asyncio.gather(*(self._open_one(c.last_seq, gate) for c in closed))
        self.clients = [c for c in self.clients if c.open] + [c for c in fresh if c is not None]
        opened = sum(1 for c in fresh if c is not None)
        return {
            "connected": opened,
            "failed": len(closed) - opened,
            "seconds": round(time.monotonic() - started, 3),
        }

    async def report(self, to: int, wait: float) -> dict[str, Any]:
        """Statistics of the window, once every open client reached ``to`` (or ``wait`` ran out)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if all(c.last_seq >= to for c in self.clients if c.open):
                break
            await asyncio.sleep(0.05)
        stats = self.stats
        behind = [c for c in self.clients if c.last_seq < to]
        # Frames a client never got because it stopped short of ``to`` count as lost too.
        short = sum(to - max(c.last_seq, stats.floor) for c in behind if c.last_seq < to)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "clients": len(self.clients),
            "open": sum(1 for c in self.clients if c.open),
            "frames": stats.frames,
            "lost": stats.lost + short,
            "dups": stats.dups,
            "behind": len(behind),
            "hist": stats.hist,
            "closes": stats.closes,
            "cpu": usage.ru_utime + usage.ru_stime,
        }

    def pause(self, paused: bool) -> None:
        """Stop or restart reading on every socket."""
        for client in self.clients:
            if client.transport is not None and not client.transport.is_closing():
                if paused:
                    client.transport.pause_reading()
                else:
                    client.transport.resume_reading()

    def close(self) -> None:
        """Close every socket."""
        for client in self.clients:
            if client.transport is not None:
                client.transport.abort()


async def main() -> None:
    """Read the config, then serve commands until ``close`` or EOF."""
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    swarm = Swarm(json.loads(await reader.readline()))

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "connect":
            answer(await swarm.connect())
        elif op == "reconnect":
            answer(await swarm.reconnect())
        elif op == "window":
            swarm.stats.reset(int(cmd["from"]))
            answer({"ok": True})
        elif op == "report":
            answer(await swarm.report(int(cmd["to"]), float(cmd.get("wait", 5.0))))
        elif op in ("pause", "unpause"):
            swarm.pause(op == "pause")
            answer({"ok": True})
        elif op == "close":
            swarm.close()
            answer({"ok": True})
            break


if __name__ == "__main__":
    asyncio.run(main())


# --- controller side: used by the benches to drive several load-generator processes -----------------------


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the reports of several processes and turn the latency histogram into percentiles (ms)."""
    hist: dict[int, int] = {}
    closes: dict[str, int] = {}
    total: dict[str, Any] = {
        "clients": 0,
        "open": 0,
        "frames": 0,
        "lost": 0,
        "dups": 0,
        "behind": 0,
        "cpu": 0.0,
    }
    for rep in reports:
        for key in total:
            total[key] += rep[key]
        for bucket, count in rep["hist"].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + count
        for code, count in rep["closes"].items():
            closes[code] = closes.get(code, 0) + count
    total["closes"] = closes
    total.update(percentiles(hist))
    return total


def percentiles(hist: dict[int, int]) -> dict[str, float | None]:
    """p50, p99 and max in ms from 0.1 ms buckets."""
    count = sum(hist.values())
    if count == 0:
        return {"p50": None, "p99": None, "max": None}
    keys = sorted(hist)
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        rank, seen = q * count, 0
        for key in keys:
            seen += hist[key]
            if seen >= rank:
                out[name] = key / 10
                break
    out["max"] = keys[-1] / 10
    return out


class LoadClients:
    """``processes`` load-generator processes holding ``count`` clients between them."""

    def __init__(
        self,
        port: int,
        count: int,
        *,
        headers: dict[str, str],
        since: int | None = None,
        per_process: int = 1250,
        path: str = "/api/events",
        rcvbuf: int | None = None,
    ) -> None:
        self.count = count
        nproc = max(1, -(-count // per_process))
        shares = [count // nproc + (1 if i < count % nproc else 0) for i in range(nproc)]
        self.configs = [
            {
                "host": "127.0.0.1",
                "port": port,
                "path": path,
                "headers": headers,
                "count": n,
                "since": since,
                "rcvbuf": rcvbuf,
            }
            for n in shares
            if n > 0
        ]
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> dict[str, Any]:
        """Spawn the processes and connect every client; the summed ``connect`` answers."""
        for cfg in self.configs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=64 << 20,  # a report line carries a latency histogram
            )
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(cfg) + "\n").encode())
            self.procs.append(proc)
        return self._sum(await self.command({"cmd": "connect"}, timeout=120))

    @staticmethod
    def _sum(answers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "connected": sum(a["connected"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "seconds": max(a["seconds"] for a in answers),
        }

    async def command(self, cmd: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Send one command to every process; their answers."""
        line = (json.dumps(cmd) + "\n").encode()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line)

        async def read(proc: asyncio.subprocess.Process) -> dict[str, Any]:
            assert proc.stdout is not None
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not raw:
                raise RuntimeError("a load-client process exited")
            answer: dict[str, Any] = json.loads(raw)
            return answer

        return list(await asyncio.gather(*(read(p) for p in self.procs)))

    async def window(self, seq_from: int) -> None:
        """Count frames after ``seq_from`` from now on."""
        await self.command({"cmd": "window", "from": seq_from})

    async def report(self, seq_to: int, wait: float = 10.0) -> dict[str, Any]:
        """Merged statistics of the window up to ``seq_to``."""
        return merge_reports(await self.command({"cmd": "report", "to": seq_to, "wait": wait}, wait + 30))

    async def reconnect(self) -> dict[str, Any]:
        """Resume closed clients from their last seq."""
        return self._sum(await self.command({"cmd": "reconnect"}, timeout=120))

    async def close(self) -> None:
        """Close the clients and end the processes (bounded)."""
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(b'{"cmd": "close"}\n')
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs = []
