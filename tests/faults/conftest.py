"""Fixtures for the fault tests: a fresh 2-of-3 keyset and a group of server subprocesses."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from node.crypto import curve
from node.keytools import keygen
from tests.igloo_process import ServerProc

SIGN_TIMEOUT = 2.0


@pytest.fixture
def keyset() -> dict[str, Any]:
    """``{group, shares, group_pubkey}`` of a fresh 2-of-3 group (bfgroup/bfshare strings)."""
    return keygen(2, 3)


def member_env(keyset: dict[str, Any], index: int, relays: list[str], **extra: str) -> dict[str, str]:
    """The environment of the server holding share ``index``."""
    return {
        "GROUP_CRED": keyset["group"],
        "SHARE_CRED": keyset["shares"][index],
        "RELAYS": ",".join(relays),
        "FROSTR_SIGN_TIMEOUT": str(round(SIGN_TIMEOUT * 1000)),
        "SIGN_BUDGET": "1000",
        "IGLOO_DEMO": "false",
        **extra,
    }


async def start_all(servers: list[ServerProc], ready: bool = True) -> None:
    """Start servers concurrently (each waits for its node to be ready)."""
    await asyncio.gather(*(s.start(ready=ready) for s in servers))


async def stop_all(servers: list[ServerProc]) -> None:
    """Stop every server (bounded) and close its client."""
    await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
    for server in servers:
        server.client.close()


async def timed_sign(server: ServerProc, message: str, timeout: float = 30.0) -> tuple[int, Any, float]:
    """POST /api/sign; (status, body, seconds taken)."""
    started = time.monotonic()
    code, body = await server.call("POST", "/api/sign", {"message": message}, timeout=timeout)
    return code, body, time.monotonic() - started


def valid_signature(keyset: dict[str, Any], message: str, body: Any) -> bool:
    """The API's signature verifies under the group key (BIP-340)."""
    return curve.schnorr_verify(
        bytes.fromhex(keyset["group_pubkey"]), bytes.fromhex(message), bytes.fromhex(body["signature"])
    )


def data_dirs(tmp_path: Path, count: int) -> list[Path]:
    """One DATA_DIR per server."""
    return [tmp_path / f"node{n}" for n in range(count)]
