"""SIGKILL while events flow: every event a client saw is still there after the restart, seqs go on.

The server runs the demo group (three nodes in one process over its embedded relay) and four loops sign
through the API, so events are published continuously; one client records every frame it gets. The server
is killed with SIGKILL mid-flow and restarted on the same DATA_DIR and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.igloo_process import ServerProc, read_json

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]
ENV = {"EVENT_BUFFER_SIZE": "20000", "SIGN_BUDGET": "1000000"}


async def test_sigkill_loses_no_delivered_event(tmp_path: Path) -> None:
    server = ServerProc(tmp_path / "data", env=ENV)
    await server.start()
    restarted: ServerProc | None = None
    try:
        code, _ = await server.call("POST", "/api/demo/start", {})
        assert code == 200
        await server.wait_status(lambda s: bool(s.get("ready")), 10)
        ws = await server.events(since=0)
        seen: dict[int, str | bytes] = {}
        stop = asyncio.Event()

        async def signer() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    await server.call("POST", "/api/sign", {"message": secrets.token_hex(32)}, timeout=5)

        async def reader() -> None:
            while True:
                try:
                    message = await asyncio.wait_for(ws.read_message(), 5)
                except TimeoutError:
                    return
                if message is None:
                    return
                frame = json.loads(message)
                if frame["seq"] is not None:
                    assert frame["seq"] not in seen, "duplicate seq on one connection"
                    seen[frame["seq"]] = message

        signers = [asyncio.ensure_future(signer()) for _ in range(4)]
        reading = asyncio.ensure_future(reader())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(seen) < 300 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert len(seen) >= 300, "events did not flow"
        await server.kill()  # SIGKILL in the middle of the flow
        stop.set()
        await asyncio.wait_for(reading, 10)
        await asyncio.gather(*signers, return_exceptions=True)
        last = max(seen)
        assert sorted(seen) == list(range(min(seen), last + 1))  # the live stream itself had no gap

        restarted = ServerProc(tmp_path / "data", port=server.port, env=ENV)
        await restarted.start()
        # The client resumes with its last seq: no reset, no gap, nothing it already saw.
        resumed = await restarted.events(since=last)
        greeting = await read_json(resumed)
        assert greeting["message"] == "Connected to event stream"
        assert greeting["data"]["lastSeq"] > last  # seqs continue: the restart event comes after
        after: list[dict[str, Any]] = []
        while True:
            frame = await read_json(resumed)
            assert frame is not None
            assert not (frame["data"] or {}).get("reset") and "gap" not in (frame["data"] or {}), frame
            after.append(frame)
            if frame["message"] == "Igloo server started":
                break
        seqs = [f["seq"] for f in after]
        assert all(s > last for s in seqs) and seqs == sorted(set(seqs))
        resumed.close()
        # Every event the first client saw is stored, byte for byte.
        full = await restarted.events(since=min(seen) - 1)
        assert (await read_json(full))["data"]["lastSeq"] == greeting["data"]["lastSeq"]
        for seq in range(min(seen), last + 1):
            message = await asyncio.wait_for(full.read_message(), 5)
            assert message == seen[seq], f"event {seq} lost or changed by the crash"
        full.close()
    finally:
        await server.stop()
        server.client.close()
        if restarted is not None:
            await restarted.stop()
            restarted.client.close()
