"""Resume: ?since= and the resume command replay exactly what was missed (no duplicate, no gap),
gap and reset notices, recent events for a fresh client, and history that survives a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import until
from tests.server.conftest import WS, Igloo, base_env, read_frame, start_igloo, stop_igloo


async def read_seqs(ws: WS, count: int) -> list[int]:
    frames = [await read_frame(ws) for _ in range(count)]
    return [f["seq"] for f in frames]  # type: ignore[index]


async def assert_quiet(ws: WS) -> None:
    """Nothing more is on its way: a ping's pong (answered in order on this socket) is the very next frame."""
    await ws.write_message(json.dumps({"type": "ping"}))
    frame = await read_frame(ws)
    assert frame is not None and frame["type"] == "pong", frame


async def test_since_replays_missed_then_live(igloo: Igloo) -> None:
    ws = await igloo.ws_key("?since=0")
    await read_frame(ws)
    for n in range(3):
        igloo.hub.publish("info", f"e{n}")
    assert await read_seqs(ws, 3) == [1, 2, 3]
    ws.close()
    for n in range(4):  # published while the client is away
        igloo.hub.publish("info", f"missed{n}")
    back = await igloo.ws_key("?since=3")
    assert (await read_frame(back))["type"] == "system"  # type: ignore[index]
    assert await read_seqs(back, 4) == [4, 5, 6, 7]
    igloo.hub.publish("info", "live")
    assert await read_seqs(back, 1) == [8]
    await assert_quiet(back)
    back.close()


async def test_fresh_client_gets_live_events_only(igloo: Igloo) -> None:
    # As on Igloo Server: a client that names no position gets what happens from now on, not old events
    # it might take for new ones.
    for n in range(130):
        igloo.hub.publish("info", f"boot{n}")
    ws = await igloo.ws_key()
    greeting = await read_frame(ws)
    assert greeting["data"] == {"lastSeq": 130}  # type: ignore[index]
    await assert_quiet(ws)
    igloo.hub.publish("info", "live")
    assert await read_seqs(ws, 1) == [131]
    ws.close()


async def test_history_is_asked_for_explicitly(igloo: Igloo) -> None:
    for n in range(130):
        igloo.hub.publish("info", f"boot{n}")
    ws = await igloo.ws_key("?history=100")
    await read_frame(ws)
    assert await read_seqs(ws, 100) == list(range(31, 131))
    await assert_quiet(ws)
    igloo.hub.publish("info", "live")
    assert await read_seqs(ws, 1) == [131]
    ws.close()
    for bad in ("?history=-1", "?history=x", "?history=²"):  # ignored: live only
        other = await igloo.ws_key(bad)
        await read_frame(other)
        await assert_quiet(other)
        other.close()


@pytest.mark.parametrize("overrides", [{"EVENT_BUFFER_SIZE": "5"}])
async def test_gap_notice_when_ring_lost_events(igloo: Igloo) -> None:
    for n in range(10):
        igloo.hub.publish("info", f"e{n}")
    ws = await igloo.ws_key("?since=1")
    await read_frame(ws)
    gap = await read_frame(ws)
    assert gap["type"] == "system" and gap["seq"] is None  # type: ignore[index]
    assert gap["data"] == {"gap": {"from": 2, "to": 5}}  # type: ignore[index]
    assert await read_seqs(ws, 5) == [6, 7, 8, 9, 10]
    ws.close()


async def test_reset_notice_when_client_is_ahead(igloo: Igloo) -> None:
    igloo.hub.publish("info", "only")
    ws = await igloo.ws_key("?since=500")
    await read_frame(ws)
    notice = await read_frame(ws)
    assert notice["data"]["reset"] is True  # type: ignore[index]
    assert await read_seqs(ws, 1) == [1]
    ws.close()


async def test_resume_command_fills_older_events_once(igloo: Igloo) -> None:
    for n in range(6):
        igloo.hub.publish("info", f"e{n}")
    ws = await igloo.ws_key("?since=4")
    await read_frame(ws)
    assert await read_seqs(ws, 2) == [5, 6]
    await ws.write_message(json.dumps({"type": "resume", "since": 2}))
    assert await read_seqs(ws, 2) == [3, 4]  # only what this connection has not sent
    await ws.write_message(json.dumps({"type": "resume", "since": 1}))
    assert await read_seqs(ws, 1) == [2]
    await ws.write_message(json.dumps({"type": "resume", "since": 5}))  # already covered: nothing
    await assert_quiet(ws)
    ws.close()


async def test_replay_and_live_have_no_gap_under_load(igloo: Igloo) -> None:
    for n in range(50):
        igloo.hub.publish("info", f"before{n}")
    received: list[int] = []
    ws = await igloo.ws_key("?since=10")
    await read_frame(ws)

    async def publisher() -> None:
        for n in range(50):
            igloo.hub.publish("info", f"during{n}")
            await asyncio.sleep(0)

    task = asyncio.ensure_future(publisher())
    while len(received) < 90:
        frame = await read_frame(ws)
        received.append(frame["seq"])  # type: ignore[index]
    await task
    assert received == list(range(11, 101))
    ws.close()


async def test_history_survives_restart(io_loop: Any, tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    first = start_igloo(env)
    for n in range(5):
        first.hub.publish("info", f"old{n}")
    stop_igloo(first)  # flushes the ring
    second = start_igloo(env)
    try:
        assert second.hub.last_seq == 5
        ws = await second.ws_key("?since=2")
        await read_frame(ws)
        frames = [await read_frame(ws) for _ in range(3)]
        assert [f["seq"] for f in frames] == [3, 4, 5]  # type: ignore[index]
        assert [f["message"] for f in frames] == ["old2", "old3", "old4"]  # type: ignore[index]
        assert second.hub.publish("info", "new")["seq"] == 6
        assert (await read_frame(ws))["seq"] == 6  # type: ignore[index]
        ws.close()
    finally:
        stop_igloo(second)


async def test_events_flushed_in_batches(igloo: Igloo) -> None:
    for n in range(3):
        igloo.hub.publish("info", f"e{n}")
    assert igloo.db.query_one("SELECT COUNT(*) FROM events")[0] == 0  # not on the hot path
    await until(lambda: igloo.db.query_one("SELECT COUNT(*) FROM events")[0] == 3, what="the turn's flush")
