"""Issue 12, item 3: request bodies. A body over 64 KiB is refused with 413 (JSON under /api) as soon as its
headers are in, before a byte of it is read; a chunked one is cut off at the same size; a login over the
limit is refused before its body is parsed. Measured: the answer comes while the body is still unsent, and
a server taking six 6 MiB bodies at once does not grow by them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from handlers.gate import DRAIN_SECONDS, MAX_BODY
from tests.igloo_process import ServerProc
from tests.server.conftest import API_KEY, Igloo

HUGE = 95 * 1024 * 1024  # under Tornado's default 100 MB limit, which used to buffer it whole


async def headers_only(port: int, path: str, length: int, extra: str = "") -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request's headers announcing ``length`` body bytes, and none of the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {length}\r\n{extra}\r\n").encode())
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1")
    lines = head.split("\r\n")
    pairs = (line.partition(":") for line in lines[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in pairs}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return int(lines[0].split()[1]), headers, body


async def test_a_huge_body_is_refused_before_it_is_sent(igloo: Igloo) -> None:
    for path in ("/api/auth/login", "/api/sign", "/api/env", "/api/nip46/relays", "/api/no-such-route"):
        reader, writer = await headers_only(igloo.port, path, HUGE)
        status, headers, body = await read_response(reader)  # not one body byte was sent
        assert status == 413, path
        assert headers["content-type"].startswith("application/json") and headers["connection"] == "close"
        assert json.loads(body) == {"error": f"Request body too large: at most {MAX_BODY} bytes"}
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection ends
        writer.close()
    await refusals_finished(igloo)


async def test_pages_get_a_plain_413(igloo: Igloo) -> None:
    reader, writer = await headers_only(igloo.port, "/login", MAX_BODY + 1)
    status, headers, body = await read_response(reader)
    assert status == 413 and headers["content-type"].startswith("text/plain") and b"at most" in body
    assert headers["x-content-type-options"] == "nosniff"
    writer.close()
    await refusals_finished(igloo)


async def refusals_finished(igloo: Igloo) -> None:
    """Wait until the server has closed every refused connection (each ends within DRAIN_SECONDS)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS + 2
    while igloo.app.closing:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_the_limit_is_64_kib(igloo: Igloo) -> None:
    igloo.add_user()
    filler = "x" * (MAX_BODY - 100)
    body = json.dumps({"username": "alice", "password": "not it", "pad": filler}).encode()
    assert len(body) <= MAX_BODY
    ok = await igloo.fetch("/api/auth/login", method="POST", body=body,
                           headers={"Content-Type": "application/json"})
    assert ok.code == 401  # read and checked
    over = await igloo.fetch("/api/auth/login", method="POST", body=body + b" " * (MAX_BODY + 1 - len(body)),
                             headers={"Content-Type": "application/json"})
    assert over.code == 413


async def test_a_chunked_body_is_cut_off_at_the_limit(igloo: Igloo) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", igloo.port)
    writer.write(b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 16384
    sent = 0
    try:
        for _ in range(64):  # up to 1 MiB; the server stops reading after 64 KiB
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b""
    writer.close()
    assert not answer.startswith(b"HTTP/1.1 2") and b"serverRunning" not in answer
    assert igloo.app.settings["login_limiter"].retry_after("127.0.0.1") == 0  # never reached the handler


async def test_a_limited_login_is_refused_before_its_body_is_parsed(igloo: Igloo) -> None:
    limiter = igloo.app.settings["login_limiter"]
    for _ in range(10 * limiter.max_failures):
        assert limiter.begin("127.0.0.1", None) == 0
    junk = "{" * 60_000  # would be a 400 (or deep recursion) if it were parsed
    resp = await igloo.fetch("/api/auth/login", method="POST", body=junk,
                             headers={"Content-Type": "application/json"})
    assert resp.code == 429 and resp.headers["Retry-After"]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(60)
async def test_concurrent_big_bodies_do_not_grow_the_server(tmp_path: Path) -> None:
    body = b"[" + b"1," * (3 * 1024 * 1024 - 1) + b"1]"  # 6 MiB of valid JSON

    async def push() -> int:
        """Send the whole body while watching for an early answer (as curl and browsers do)."""
        reader, writer = await headers_only(proc.port, "/api/auth/login", len(body))
        answer = asyncio.ensure_future(read_response(reader))
        try:
            writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass  # the server stopped reading: what this test wants
        try:
            status, _, _ = await answer
        except (ConnectionError, asyncio.IncompleteReadError):
            status = 0
        writer.close()
        return status

    async with ServerProc(tmp_path / "data", env={"NIP46_ENABLED": "false"}) as proc:
        assert proc.pid is not None
        before = rss_bytes(proc.pid)
        statuses = await asyncio.gather(*(push() for _ in range(6)))
        grown = rss_bytes(proc.pid) - before
        assert statuses == [413] * 6, statuses
        assert grown < 8 * 1024 * 1024, f"grew by {grown / 2**20:.1f} MiB for 6 x 6 MiB bodies"
        code, _ = await proc.call("GET", "/api/status")
        assert code == 200


async def test_routes_that_take_small_bodies_refuse_more_than_16_kib(igloo: Igloo) -> None:
    """Credentials, names and accounts take at most 16 KiB (``max_body``); the API's other routes 64 KiB."""
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    padded = json.dumps({"name": "x", "pad": "x" * (20 * 1024)})
    for method, path in (("PUT", "/api/keyset/name"), ("POST", "/api/admin/users"),
                         ("POST", "/api/keyset/validate")):
        resp = await igloo.fetch(path, method=method, body=padded, headers=headers)
        assert resp.code == 413 and json.loads(resp.body) == {"error": "Request too large"}, path
    small = await igloo.fetch("/api/keyset/name", method="PUT", body=json.dumps({"name": "x" * 20}),
                              headers=headers)
    assert small.code != 413
    padded_sign = json.dumps({"message": "zz", "pad": "x" * 20480})
    signed = await igloo.fetch("/api/sign", method="POST", body=padded_sign, headers=headers)
    assert signed.code != 413  # 20 KiB is within the API's 64 KiB
