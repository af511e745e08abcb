"""Issue 12, item 2: idle and slow connections. Headers have a deadline, open HTTP connections are capped per
address and in all, upgraded WebSockets leave the count, the unit raises the descriptor limit, and a server
out of descriptors pauses accepting (one warning, no busy loop) instead of failing accept() in a tight loop
that logs every failure."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from config.settings import Settings
from tests.igloo_process import ServerProc
from tests.server.conftest import Igloo, read_frame

ROOT = Path(__file__).resolve().parents[2]
PARTIAL = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@asynccontextmanager
async def partial_request(port: int, source: str = "127.0.0.1") -> AsyncIterator[
        tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection that has sent half its headers (and will send no more)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(PARTIAL)
    await writer.drain()
    try:
        yield reader, writer
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not in ``timeout``)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def get_status(port: int, source: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


@pytest.mark.parametrize("overrides", [{"HTTP_HEADER_TIMEOUT": "0.5"}])
async def test_headers_have_a_deadline(igloo: Igloo) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with partial_request(igloo.port) as (reader, _):
        assert await closed_by_server(reader, 5) == b""  # closed, nothing answered
    assert 0.4 <= loop.time() - started < 4


@pytest.mark.parametrize("overrides", [{"HTTP_HEADER_TIMEOUT": "0.5"}])
async def test_an_idle_keep_alive_connection_is_closed(igloo: Igloo) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", igloo.port)
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    rest = await closed_by_server(reader, 5)  # the body, then the close once idle for 0.5 s
    assert b"serverRunning" in rest
    writer.close()


@pytest.mark.parametrize("overrides", [{"HTTP_MAX_PER_IP": "4", "HTTP_HEADER_TIMEOUT": "60"}])
async def test_slowloris_is_capped_per_address(igloo: Igloo) -> None:
    server = igloo.server
    async with partial_request(igloo.port), partial_request(igloo.port), partial_request(igloo.port), \
            partial_request(igloo.port):
        await wait_for(lambda: server.per_address.get("127.0.0.1") == 4)
        async with partial_request(igloo.port) as (reader, _):
            answer = await closed_by_server(reader, 5)  # turned away at once, not held
        assert answer.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 5" in answer
        # Another address is not affected.
        assert (await get_status(igloo.port, source="127.0.0.2")).startswith(b"HTTP/1.1 200")
    await wait_for(lambda: "127.0.0.1" not in server.per_address)
    assert (await get_status(igloo.port)).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("overrides", [{"HTTP_MAX_CONNECTIONS": "3", "HTTP_HEADER_TIMEOUT": "60"}])
async def test_total_http_connections_are_capped(igloo: Igloo) -> None:
    async with partial_request(igloo.port), partial_request(igloo.port, "127.0.0.2"), \
            partial_request(igloo.port, "127.0.0.3"):
        await wait_for(lambda: len(igloo.server._connections) == 3)
        answer = await get_status(igloo.port, source="127.0.0.4")
        assert answer.startswith(b"HTTP/1.1 503 ")


@pytest.mark.parametrize("overrides", [{"HTTP_MAX_PER_IP": "2"}])
async def test_upgraded_websockets_leave_the_http_count(igloo: Igloo) -> None:
    sockets = [await igloo.ws_key() for _ in range(4)]
    for ws in sockets:
        assert (await read_frame(ws))["type"] == "system"
    await wait_for(lambda: "127.0.0.1" not in igloo.server.per_address)
    assert (await get_status(igloo.port)).startswith(b"HTTP/1.1 200")
    for ws in sockets:
        ws.close()


@pytest.mark.parametrize("overrides", [{"HTTP_MAX_PER_IP": "2", "TRUST_PROXY": "true",
                                        "HTTP_HEADER_TIMEOUT": "60"}])
async def test_a_trusted_proxy_on_loopback_is_not_capped_per_address(igloo: Igloo) -> None:
    async with partial_request(igloo.port), partial_request(igloo.port), partial_request(igloo.port):
        assert (await get_status(igloo.port)).startswith(b"HTTP/1.1 200")


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    """Poll ``condition()`` on the loop until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_the_unit_allows_enough_descriptors_for_every_cap() -> None:
    unit = (ROOT / "igloo.service").read_text()
    values = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    assert len(values) == 1
    defaults = Settings()
    needed = defaults.ws_max_connections + defaults.relay_max_connections + defaults.http_max_connections
    assert int(values[0]) >= needed + 1000  # plus the node's own relay connections, SQLite, the listener


# --------------------------------------------------------------------------- out of file descriptors

LOW_LIMIT = 64
# Run server.py with a low descriptor limit: the child sets it on itself before anything opens.
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({0}, {0})); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def held_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send nothing (each costs the server a descriptor, or waits in backlog)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(60)
async def test_out_of_descriptors_backs_off_and_logs_once(tmp_path: Path) -> None:
    env = {"LOG_LEVEL": "WARNING", "HTTP_MAX_PER_IP": "100000", "HTTP_HEADER_TIMEOUT": "60",
           "NIP46_ENABLED": "false", "IGLOO_DEMO": "false"}
    proc = ServerProc(tmp_path / "data", env=env, python_args=["-c", LIMITED.format(LOW_LIMIT)])
    async with proc:
        assert proc.pid is not None
        with held_connections(proc.port, LOW_LIMIT + 20):
            await asyncio.sleep(0.3)  # let the server run into the limit
            before = cpu_seconds(proc.pid)
            await asyncio.sleep(1.0)  # measuring CPU needs wall time to pass
            busy = cpu_seconds(proc.pid) - before
            log = proc.log_tail()
        assert busy < 0.3, f"{busy:.2f} s of CPU in 1 s while out of descriptors"
        assert log.count("cannot accept connections") == 1, log[-2000:]
        assert "Too many open files" in log and log.count("Errno 24") == 0 and "Traceback" not in log
        # Descriptors freed: the server accepts again and says so once.
        code, body = await proc.call("GET", "/api/status", timeout=10)
        assert code == 200 and body["serverRunning"] is True
        assert proc.log_tail().count("accepting connections again") == 1
