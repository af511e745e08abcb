"""The benches' delaying proxy (bench/_delay_proxy.py), which the spreading tests also use: it delays each
direction by at least the one-way delay, keeps order, holds a bounded number of bytes, and only runs on
loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench._delay_proxy import READ_SIZE, DelayProxy

pytestmark = pytest.mark.timeout(30)


async def test_a_round_trip_through_the_proxy_takes_at_least_two_one_way_delays_in_order() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = await DelayProxy(upstream.sockets[0].getsockname()[1], delay_ms=20, jitter_ms=5, seed=1).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for n in range(5):
            started = time.monotonic()
            writer.write(b"%d;" % n)
            await writer.drain()
            assert await reader.readuntil(b";") == b"%d;" % n
            assert time.monotonic() - started >= 2 * 0.015  # two crossings of at least 20 - 5 ms
        payload = b"".join(b"%03d" % n for n in range(300))  # chunks drawn with jitter never overtake
        writer.write(payload)
        await writer.drain()
        assert await reader.readexactly(len(payload)) == payload
        writer.close()
        assert proxy.late_count > 0 and proxy.late_max >= 0
    finally:
        await proxy.close()
        upstream.close()


async def test_an_upstream_that_stops_reading_holds_at_most_max_buffered_bytes_per_direction() -> None:
    stalled = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    upstream = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    proxy = await DelayProxy(upstream.sockets[0].getsockname()[1], delay_ms=1, jitter_ms=0,
                             max_buffered=64 * 1024).start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        chunk = b"x" * 65536
        for _ in range(1000):  # up to 62.5 MiB offered: loopback buffers autotune to several MiB per socket
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.05)
            except TimeoutError:
                break  # the proxy stopped reading: backpressure reached the client
        else:
            pytest.fail("the proxy never stopped reading")
        assert proxy.held_bytes() <= 64 * 1024 + READ_SIZE
        writer.transport.abort()
    finally:
        stalled.set()
        await proxy.close()
        upstream.close()


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        DelayProxy(1, host="192.0.2.1")
    with pytest.raises(ValueError, match="jitter"):
        DelayProxy(1, delay_ms=5, jitter_ms=10)
