"""Fuzz the command frames of the event stream (/api/events).

Any text or binary frame, JSON of any shape and depth, frames over the 4 KiB limit, invalid UTF-8,
reserved opcodes: Igloo answers a text command with ``pong`` or an ``error`` frame (``resume`` may
replay stored events first), a binary frame with an ``error`` frame, closes a frame over 4 KiB with 1009
and drops a connection whose text is not UTF-8 or whose opcode is reserved (Tornado aborts those without a
close frame). Nothing is logged as an unhandled exception, and an observer socket keeps receiving every
published event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
import tornado.web
from hypothesis import given
from hypothesis import strategies as st

from handlers.events import MAX_CLIENT_FRAME
from tests.fuzz.conftest import API_KEY, ErrorTrap, World, fuzz_settings, make_world, run, scales
from tests.fuzz.strategies import json_values, numbers
from tests.fuzz.wsutil import WS, Frame, Slot, frames, read, read_until_closed, send_frame

PING = json.dumps({"type": "ping"})
CLOSE_TOO_BIG = 1009
# 1003/1007/1008 would also be right answers; a reserved opcode or non-UTF-8 text is aborted (None).
ALLOWED_CLOSE = {None, 1003, 1007, 1008, 1009}

commands = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "resume", "Ping", "subscribe", ""])},
                          optional={"since": st.one_of(numbers, json_values()), "x": json_values()}),
    st.dictionaries(st.sampled_from(["type", "since", "data"]), json_values(), max_size=3),
    json_values(),
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """An app without a node (the event stream does not need one)."""
    return make_world("none", tmp_path)


@pytest.fixture
def observer(
    io_loop: tornado.ioloop.IOLoop, http_server: Any, http_server_port: tuple[Any, int]
) -> Iterator[Slot]:
    """A well-behaved client that only listens."""
    slot = Slot(f"ws://127.0.0.1:{http_server_port[1]}/api/events", {"X-API-Key": API_KEY})
    run(io_loop, slot.get)
    yield slot
    slot.drop()


async def frames_until_pong(ws: WS, pongs: int = 1) -> list[dict[str, Any]]:
    """Everything the server sent before answering our ping and ``pongs - 1`` fuzzed ones (bounded)."""
    await ws.write_message(PING)
    seen: list[dict[str, Any]] = []
    for _ in range(5000):  # a resume may replay the whole ring first
        message = await read(ws)
        assert message is not None, f"closed with {ws.close_code} after a well-formed ping"
        assert isinstance(message, str)
        frame = json.loads(message)
        if frame["type"] == "pong":
            pongs -= 1
            if not pongs:
                return seen
        else:
            seen.append(frame)
    raise AssertionError("no pong")


def command_of(frame: Frame) -> Any:
    """The decoded JSON of a text frame (None when it is not JSON)."""
    try:
        return json.loads(frame.payload) if frame.opcode == 1 else None
    except (ValueError, RecursionError):
        return None


def is_ping(frame: Frame) -> bool:
    command = command_of(frame)
    return isinstance(command, dict) and command.get("type") == "ping"


def expects_error_frame(frame: Frame) -> bool:
    """Binary frames and text that is not a ping or a well-formed resume get an ``error`` frame."""
    if frame.opcode == 2:
        return True
    command = command_of(frame)
    if not isinstance(command, dict) or command.get("type") not in ("ping", "resume"):
        return True
    since = command.get("since")
    return command["type"] == "resume" and not (
        isinstance(since, int) and not isinstance(since, bool) and since >= 0)


async def exchange(world: World, fuzzed: Slot, observer: Slot, frame: Frame, n: int) -> None:
    """Send one frame, check the answer (or the close), then check the observer still gets events."""
    ws = await fuzzed.get()
    await send_frame(ws, frame)
    if len(frame.payload) > MAX_CLIENT_FRAME:
        await read_until_closed(ws)
        assert ws.close_code == CLOSE_TOO_BIG
        fuzzed.drop()
    elif frame.opcode in (1, 2) and (frame.opcode == 2 or frame.valid_text):
        replies = await frames_until_pong(ws, 2 if is_ping(frame) else 1)
        errors = [f for f in replies if f["type"] == "error"]
        assert all(f["type"] == "error" or isinstance(f["seq"], int) or f["type"] == "system"
                   for f in replies), replies
        assert len(errors) == (1 if expects_error_frame(frame) else 0), (frame, replies)
        assert all(f["seq"] is None for f in errors)
    elif frame.opcode == 9:
        await frames_until_pong(ws)  # a protocol ping is answered by Tornado and changes nothing
    else:
        await read_until_closed(ws)
        assert ws.close_code in ALLOWED_CLOSE, ws.close_code
        fuzzed.drop()
    world.app.settings["events"].publish("info", "fuzz probe", {"n": n})
    listener = await observer.get()
    for _ in range(200):
        message = await read(listener)
        assert message is not None, "the observer was disconnected"
        probe = json.loads(message)
        if probe["message"] == "fuzz probe" and probe["data"] == {"n": n}:
            return
    raise AssertionError("the observer did not receive the probe event")


@pytest.mark.parametrize("examples", scales(60))
def test_event_stream_frames(
    world: World, observer: Slot, http_server_port: tuple[Any, int], io_loop: tornado.ioloop.IOLoop,
    errors: ErrorTrap, examples: int,
) -> None:
    """Random frames to /api/events: error frames or the right close, never a crash (see module doc)."""
    fuzzed = Slot(f"ws://127.0.0.1:{http_server_port[1]}/api/events", {"X-API-Key": API_KEY})
    counter = iter(range(10**9))

    @fuzz_settings(examples)
    @given(frame=frames(commands, MAX_CLIENT_FRAME))
    def case(frame: Frame) -> None:
        try:
            run(io_loop, lambda: exchange(world, fuzzed, observer, frame, next(counter)))
        except BaseException:
            fuzzed.drop()  # a failed case must not leave unread frames for the next one
            raise
        errors.check()

    try:
        case()
    finally:
        fuzzed.drop()
