"""The only relay (a separate `python server.py`) is killed while a sign is in flight: the API answers
502/504 within the timeout; when the relay comes back on the same port the nodes reconnect and sign again."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    SIGN_TIMEOUT,
    data_dirs,
    member_env,
    start_all,
    stop_all,
    timed_sign,
    valid_signature,
)
from tests.igloo_process import ServerProc

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


def connected(status: dict[str, Any]) -> bool:
    return bool(status.get("relayDetails")) and all(r.get("connected") for r in status["relayDetails"])


async def test_relay_killed_mid_sign(tmp_path: Path, keyset: dict[str, Any]) -> None:
    r_dir, a_dir, b_dir = data_dirs(tmp_path, 3)
    relay = ServerProc(r_dir, env={"IGLOO_DEMO": "false", "RELAY_WRITE": "all"})  # a relay for another group
    a = ServerProc(a_dir, env=member_env(keyset, 0, [relay.relay_url]))
    b = ServerProc(b_dir, env=member_env(keyset, 1, [relay.relay_url]))
    revived: ServerProc | None = None
    try:
        await relay.start()
        await start_all([a, b])
        message = secrets.token_hex(32)
        code, body, _ = await timed_sign(a, message)
        assert code == 200 and valid_signature(keyset, message, body)

        b.signal(signal.SIGSTOP)  # the co-signer cannot answer: the sign stays in flight
        stream = await a.events()
        greeting = json.loads(await asyncio.wait_for(stream.read_message(), 5))  # type: ignore[arg-type]
        in_flight = asyncio.ensure_future(timed_sign(a, secrets.token_hex(32)))
        while True:  # the marker: A says it sent the request to its co-signer
            frame = json.loads(await asyncio.wait_for(stream.read_message(), 5))  # type: ignore[arg-type]
            if frame["seq"] > greeting["data"]["lastSeq"] and frame["message"] == "Signature request sent":
                break
        stream.close()
        assert not in_flight.done()
        await relay.kill()
        code, body, took = await asyncio.wait_for(in_flight, SIGN_TIMEOUT + 5)
        assert code in (502, 504), (code, body)
        assert "error" in body
        assert took < SIGN_TIMEOUT + 0.5, f"the failure took {took:.2f}s"
        b.signal(signal.SIGCONT)
        status = await a.wait_status(lambda s: not connected(s), 5)
        assert status["connectedRelays"] == 0

        revived = ServerProc(r_dir, port=relay.port, env={"IGLOO_DEMO": "false", "RELAY_WRITE": "all"})
        await revived.start()
        status = await a.wait_status(connected, 15)
        assert status["relayDetails"][0]["reconnects"] >= 1
        await b.wait_status(connected, 15)
        message = secrets.token_hex(32)
        code, body, took = await timed_sign(a, message)
        assert code == 200, body
        assert valid_signature(keyset, message, body) and took < SIGN_TIMEOUT
    finally:
        await stop_all([a, b, relay] + ([revived] if revived else []))
