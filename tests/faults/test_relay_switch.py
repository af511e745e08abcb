"""A running node is moved from one loopback relay to another through ``PUT /api/relays`` while its sign is
in flight; the old relay is then killed. The co-signer (on both relays, holding the request for approval)
answers through the new relay, the sign completes, and the next one too. Every process is a real
``python server.py``."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import data_dirs, member_env, start_all, stop_all, timed_sign, valid_signature
from tests.igloo_process import ServerProc

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

TIMEOUT_MS = "20000"


async def approve_next(server: ServerProc, timeout: float = 10.0) -> str:
    """Wait for a pending approval on ``server`` and approve it; its id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        code, body = await server.get("/api/approvals")
        if code == 200 and body["approvals"]:
            approval_id: str = body["approvals"][0]["id"]
            code, _ = await server.post(f"/api/approvals/{approval_id}", {"action": "approve"})
            assert code == 200
            return approval_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"no approval waited on the co-signer: {server.log_tail()}")


async def wait_pending(server: ServerProc, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        code, body = await server.get("/api/approvals")
        if code == 200 and body["approvals"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request never reached the co-signer")


async def test_node_moved_to_another_relay_with_a_sign_in_flight(
    tmp_path: Path, keyset: dict[str, Any]
) -> None:
    r1_dir, r2_dir, a_dir, b_dir = data_dirs(tmp_path, 4)
    relay_env = {"IGLOO_DEMO": "false", "RELAY_WRITE": "all"}
    r1, r2 = ServerProc(r1_dir, env=relay_env), ServerProc(r2_dir, env=relay_env)
    a = ServerProc(a_dir, env=member_env(keyset, 0, [r1.relay_url], FROSTR_SIGN_TIMEOUT=TIMEOUT_MS))
    b = ServerProc(b_dir, env=member_env(keyset, 1, [r1.relay_url, r2.relay_url],
                                         FROSTR_SIGN_TIMEOUT=TIMEOUT_MS, SIGN_APPROVAL="true"))
    try:
        await start_all([r1, r2], ready=False)
        await start_all([a, b])
        await b.wait_status(lambda s: s.get("connectedRelays") == 2, 10)
        message = secrets.token_hex(32)
        in_flight = asyncio.ensure_future(timed_sign(a, message, timeout=40))
        await wait_pending(b)

        code, body = await a.put("/api/relays", {"relays": [r2.relay_url]})
        assert code == 200 and body["applied"] is True and body["source"] == "dashboard", body
        assert body["default"]["relays"] == [r1.relay_url]  # RELAYS from the environment, for the way back
        assert [(r["url"], r["connected"]) for r in body["relayDetails"]] == [(r2.relay_url, True)]
        await r1.kill()
        assert not in_flight.done()

        await approve_next(b)
        code, body, _ = await asyncio.wait_for(in_flight, 30)
        assert code == 200 and valid_signature(keyset, message, body), body

        # The co-signer keeps answering, through the new relay only.
        message = secrets.token_hex(32)
        second = asyncio.ensure_future(timed_sign(a, message, timeout=40))
        await approve_next(b)
        code, body, _ = await asyncio.wait_for(second, 30)
        assert code == 200 and valid_signature(keyset, message, body), body
        status = (await a.get("/api/status"))[1]
        assert [r["url"] for r in status["relayDetails"]] == [r2.relay_url]
        assert status["relayDetails"][0]["rtt"] is not None
    finally:
        await stop_all([a, b, r1, r2])
