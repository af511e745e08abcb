"""Co-signer choice in a 2-of-3 group of real servers: with one co-signer offline (never started, or killed
mid-run) ten signs in a row all succeed, each within one FROSTR_SIGN_TIMEOUT."""

from __future__ import annotations

import secrets
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


async def test_cosigner_never_started(tmp_path: Path, keyset: dict[str, Any]) -> None:
    a_dir, b_dir = data_dirs(tmp_path, 2)
    a = ServerProc(a_dir)
    a.env.update(member_env(keyset, 0, []))  # the embedded relay
    b = ServerProc(b_dir, env=member_env(keyset, 1, [a.relay_url]))
    try:
        await a.start(ready=True)
        await b.start(ready=True)
        for _ in range(10):
            message = secrets.token_hex(32)
            code, body, took = await timed_sign(a, message)
            assert code == 200, body
            assert valid_signature(keyset, message, body)
            assert took < SIGN_TIMEOUT, f"sign took {took:.2f}s"
        _, peers = await a.call("GET", "/api/peers")
        online = {p["pubkey"]: p["online"] for p in peers["peers"]}
        _, b_self = await b.call("GET", "/api/peers/self")
        assert online.pop(b_self["pubkey"]) is True
        assert list(online.values()) == [False]  # the never-started member
    finally:
        await stop_all([a, b])


async def test_cosigner_killed_mid_run(tmp_path: Path, keyset: dict[str, Any]) -> None:
    a_dir, b_dir, c_dir = data_dirs(tmp_path, 3)
    a = ServerProc(a_dir)
    a.env.update(member_env(keyset, 0, []))
    peers = [ServerProc(d, env=member_env(keyset, i, [a.relay_url])) for i, d in ((1, b_dir), (2, c_dir))]
    try:
        await a.start(ready=True)
        await start_all(peers)
        by_pubkey = {}
        for peer in peers:
            _, me = await peer.call("GET", "/api/peers/self")
            by_pubkey[me["pubkey"]] = peer
        for n in range(10):
            if n == 3:
                # Kill the co-signer Igloo has been using (the most recently seen): it still looks online.
                _, table = await a.call("GET", "/api/peers")
                used = max((p for p in table["peers"] if p["lastSeen"]), key=lambda p: p["lastSeen"])
                assert used["online"]
                await by_pubkey[used["pubkey"]].kill()
            message = secrets.token_hex(32)
            code, body, took = await timed_sign(a, message)
            assert code == 200, body
            assert valid_signature(keyset, message, body)
            assert took < SIGN_TIMEOUT, f"sign {n} took {took:.2f}s"
        _, table = await a.call("GET", "/api/peers")
        assert {p["pubkey"]: p["online"] for p in table["peers"]}[used["pubkey"]] is False
    finally:
        await stop_all([a, *peers])
