"""A delaying TCP proxy for the latency benches: the network between a member and its relay, on loopback.

The kernel here has no `netem`, so each member of a bench connects to the relay through one of these
instead: it listens on 127.0.0.1, forwards every connection to the relay's loopback port, and holds every
chunk it reads for a one-way delay (``delay_ms`` ± ``jitter_ms``, uniform) in each direction before writing
it on. Chunks of one direction never overtake each other (a chunk drawn shorter than the one before it waits
for it), as on a TCP connection. Both sockets have TCP_NODELAY, so the proxy adds no Nagle wait of its own.

Bounded: at most ``max_buffered`` bytes wait per direction of a connection (reading stops until the writer
catches up), at most ``max_connections`` connections at a time, and only loopback addresses on both sides.

As a library (the tests use it): ``proxy = await DelayProxy(relay_port, delay_ms=40).start(); proxy.url``.
As a process (the benches run one beside the relay, so the proxy's timers do not share an event loop with
the client being timed): `python bench/_delay_proxy.py --upstream PORT --count N [--delay 40 --jitter 5]`
prints ``{"ports": [...]}`` on one line and serves until its stdin closes. Commands on stdin, one a line,
each answered with one JSON line: ``delay MS JITTER`` (every proxy, from the next chunk on), ``stats`` (how
late the timers released chunks: count, mean and max ms, since the last ``reset``) and ``reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import socket
import sys
from collections import deque

READ_SIZE = 16 * 1024


def _loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host}: the delay proxy only runs on loopback addresses")
    return host


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Direction:
    """One direction of one connection: read, stamp with a release time, hold, write in order."""

    def __init__(self, proxy: DelayProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.held: deque[tuple[float, bytes]] = deque()
        self.buffered = 0
        self.last_release = 0.0
        self.arrived = asyncio.Event()  # something was queued (or the reader ended)
        self.drained = asyncio.Event()  # the writer made room
        self.eof = False

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.buffered >= self.proxy.max_buffered:
                    self.drained.clear()
                    await self.drained.wait()
                chunk = await self.reader.read(READ_SIZE)
                if not chunk:
                    break
                release = max(loop.time() + self.proxy.one_way() / 1000, self.last_release)
                self.last_release = release
                self.held.append((release, chunk))
                self.buffered += len(chunk)
                self.arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.eof = True
            self.arrived.set()

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.held:
                    if self.eof:
                        break
                    self.arrived.clear()
                    await self.arrived.wait()
                    continue
                release, chunk = self.held[0]
                wait = release - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.proxy.note_late(loop.time() - release)
                self.held.popleft()
                self.writer.write(chunk)
                await self.writer.drain()
                self.buffered -= len(chunk)
                self.drained.set()
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except (ConnectionError, OSError):
            pass


class DelayProxy:
    """Listens on ``host``:``port`` (0 = a free port) and relays to ``host``:``upstream_port`` with delay."""

    def __init__(self, upstream_port: int, *, delay_ms: float = 40.0, jitter_ms: float = 5.0,
                 host: str = "127.0.0.1", port: int = 0, max_buffered: int = 512 * 1024,
                 max_connections: int = 64, seed: int | None = None) -> None:
        if not 0 <= jitter_ms <= delay_ms:
            raise ValueError("jitter_ms must be between 0 and delay_ms")
        self.host = _loopback(host)
        self.upstream_port = upstream_port
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.port = port
        self.max_buffered = max_buffered
        self.max_connections = max_connections
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._directions: set[_Direction] = set()
        self.connections = 0  # open now
        self.accepted = 0  # in all
        self.reset_stats()

    def reset_stats(self) -> None:
        """Forget the lateness figures."""
        self.late_count = 0
        self.late_sum = 0.0
        self.late_max = 0.0

    def held_bytes(self) -> int:
        """Bytes read and not yet written on, over every open connection (bounded by ``max_buffered`` per
        direction, plus the one chunk being read)."""
        return sum(direction.buffered for direction in self._directions)

    def note_late(self, seconds: float) -> None:
        """One chunk was written ``seconds`` after its release time (the event loop's timer lateness)."""
        late_ms = max(0.0, seconds * 1000)
        self.late_count += 1
        self.late_sum += late_ms
        self.late_max = max(self.late_max, late_ms)

    @property
    def url(self) -> str:
        """The relay's WebSocket URL through this proxy."""
        return f"ws://{self.host}:{self.port}/"

    def one_way(self) -> float:
        """One draw of the one-way delay in ms."""
        return self.delay_ms + self._random.uniform(-self.jitter_ms, self.jitter_ms)

    async def start(self) -> DelayProxy:
        """Listen; returns once the port is bound."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.accepted += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.upstream_port), 5)
            _nodelay(writer)
            _nodelay(upstream)
            outbound = _Direction(self, reader, upstream)
            inbound = _Direction(self, up_reader, writer)
            self._directions |= {outbound, inbound}
            try:
                await asyncio.gather(outbound.read(), outbound.write(), inbound.read(), inbound.write())
            finally:
                self._directions -= {outbound, inbound}
        except (ConnectionError, OSError, TimeoutError, asyncio.CancelledError):
            pass  # the peer went away, or the proxy is closing
        finally:
            self.connections -= 1
            self._tasks.discard(task)
            for end in (writer, upstream):
                if end is not None:
                    end.close()


async def _serve(args: argparse.Namespace) -> None:
    proxies = [await DelayProxy(args.upstream, delay_ms=args.delay, jitter_ms=args.jitter,
                                seed=None if args.seed is None else args.seed + n).start()
               for n in range(args.count)]
    sys.stdout.write(json.dumps({"ports": [p.port for p in proxies]}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        words = line.decode(errors="replace").split()
        answer: dict[str, object] = {"ok": True}
        if words[:1] == ["delay"] and len(words) == 3:
            for proxy in proxies:
                proxy.delay_ms, proxy.jitter_ms = float(words[1]), float(words[2])
        elif words == ["stats"]:
            count = sum(p.late_count for p in proxies)
            answer = {"chunks": count, "late_mean_ms": sum(p.late_sum for p in proxies) / max(1, count),
                      "late_max_ms": max(p.late_max for p in proxies)}
        elif words == ["reset"]:
            for proxy in proxies:
                proxy.reset_stats()
        else:
            answer = {"ok": False, "error": "commands: delay MS JITTER | stats | reset"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for proxy in proxies:
        await proxy.close()


def main() -> None:
    """Serve ``--count`` proxies in front of ``--upstream`` until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=int, required=True, help="the relay's port on 127.0.0.1")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--delay", type=float, default=40.0, help="one-way delay, ms")
    parser.add_argument("--jitter", type=float, default=5.0, help="± ms, uniform")
    parser.add_argument("--seed", type=int, default=None)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
