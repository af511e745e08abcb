"""Fuzz the embedded relay at ``/`` with client frames.

Wrong shapes and types, huge and deeply nested values, non-UTF-8 text, binary frames, EVENTs whose id,
signature or fields were tampered with: every text or binary frame is answered with NOTICE, OK false or
CLOSED carrying a NIP-01 machine-readable prefix (or EOSE / EVENT for a REQ that parses), a frame over the
size limit is closed with 1009, non-UTF-8 text and reserved opcodes are aborted; no unhandled exception is
logged, and a well-behaved client subscribed from the start receives a good event published at the end.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
import tornado.ioloop
import tornado.web
from hypothesis import given
from hypothesis import strategies as st

from handlers import relay
from node.nostr.event import sign_event
from relay import RelayLimits, RelayState
from tests.fuzz.conftest import ErrorTrap, fuzz_settings, run, scales
from tests.fuzz.strategies import json_values, numbers, text
from tests.fuzz.wsutil import WS, Frame, Slot, frames, read, read_until_closed, send_frame

LIMITS = RelayLimits(max_message_length=16 * 1024, event_rate=1e9, event_burst=1e9, max_events=200)
PREFIXES = ("duplicate:", "pow:", "blocked:", "rate-limited:", "invalid:", "restricted:", "error:", "mute:")
SYNC_FILTER = {"ids": ["0" * 64]}
ALLOWED_CLOSE = {None, 1003, 1007, 1008, 1009}
SECKEY = bytes.fromhex("11" * 32)


def signed(kind: int = 1, tags: list[list[str]] | None = None, content: str = "hi") -> dict[str, Any]:
    return sign_event(SECKEY, kind, tags or [], content, int(time.time()), b"\x00" * 32).to_json()


def tampered_events() -> st.SearchStrategy[Any]:
    """Signed events with one field replaced, removed or re-typed (ids and signatures stop matching)."""
    fields = ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"]

    def tamper(event: dict[str, Any], field: str, value: Any, drop: bool) -> dict[str, Any]:
        out = dict(event)
        if drop:
            out.pop(field, None)
        else:
            out[field] = value
        return out

    base = st.builds(signed, st.sampled_from([1, 0, 3, 20004, 30000, 10002, 5, 65535]),
                     st.lists(st.lists(text, max_size=3), max_size=3), text)
    return st.one_of(
        base,
        st.builds(tamper, base, st.sampled_from(fields), st.one_of(json_values(), numbers,
                  st.just("0" * 64), st.just("f" * 128), st.just("A" * 64)), st.booleans()),
        st.builds(lambda e: {**e, "content": e["content"] + "x"}, base),
        st.builds(lambda e: {**e, "sig": e["sig"][:-1] + ("0" if e["sig"][-1] != "0" else "1")}, base),
        st.builds(lambda e, n: {**e, "tags": [["t", "x"]] * n}, base, st.integers(0, 3000)),
        st.builds(lambda e, n: {**e, "created_at": n}, base, numbers),
    )


filters = st.dictionaries(
    st.one_of(st.sampled_from(["ids", "authors", "kinds", "#e", "#p", "#t", "since", "until", "limit",
                               "search", "#", "#ab"]), text),
    st.one_of(json_values(), st.lists(st.sampled_from(["0" * 64, "a" * 64, "x"]), max_size=3),
              st.lists(numbers, max_size=3)),
    max_size=4,
)
sub_ids = st.one_of(text, st.just("s"), st.just("x" * 65), json_values())
commands = st.one_of(
    st.tuples(st.just("EVENT"), tampered_events()).map(list),
    st.builds(lambda s, fs: ["REQ", s, *fs], sub_ids, st.lists(filters, max_size=4)),
    st.builds(lambda s, fs: ["REQ", s, fs], sub_ids, st.lists(filters, max_size=4)),  # bifrost's form
    st.builds(lambda s: ["CLOSE", s], sub_ids),
    st.lists(json_values(), max_size=4).map(lambda rest: [*rest]),
    st.builds(lambda k, rest: [k, *rest],
              st.sampled_from(["EVENT", "REQ", "CLOSE", "AUTH", "COUNT", "event"]),
              st.lists(json_values(), max_size=4)),
)


@pytest.fixture
def app() -> tornado.web.Application:
    """The relay routes with a 16 KiB frame limit and no rate limit in the fuzzer's way."""
    return tornado.web.Application(relay.ROUTES, relay=RelayState(LIMITS))


def check_reply(raw: str | bytes) -> str:
    """One relay frame is well formed; returns its type."""
    assert isinstance(raw, str)
    msg = json.loads(raw)
    kind = msg[0]
    if kind == "NOTICE":
        assert msg[1].startswith(PREFIXES), msg
    elif kind == "OK":
        assert len(msg[1]) == 64 and isinstance(msg[2], bool), msg
        assert msg[2] or msg[3].startswith(PREFIXES), msg
    elif kind == "CLOSED":
        assert msg[2].startswith(PREFIXES), msg
    else:
        assert kind in ("EOSE", "EVENT"), msg
    return str(kind)


async def exchange(slot: Slot, frame: Frame, n: int) -> None:
    """Send one frame; then a REQ whose EOSE proves the relay handled it and still serves this client."""
    ws = await slot.get()
    await send_frame(ws, frame)
    if len(frame.payload) > LIMITS.max_message_length:
        await read_until_closed(ws)
        assert ws.close_code == 1009
        slot.drop()
        return
    if frame.opcode not in (1, 2, 9) or (frame.opcode == 1 and not frame.valid_text):
        await read_until_closed(ws)
        assert ws.close_code in ALLOWED_CLOSE, ws.close_code
        slot.drop()
        return
    sync = f"sync-{n}"
    await ws.write_message(json.dumps(["REQ", sync, SYNC_FILTER]))
    kinds = []
    for _ in range(1000):
        message = await read(ws)
        assert message is not None, f"closed with {ws.close_code}"
        if json.loads(message) == ["EOSE", sync]:
            break
        kinds.append(check_reply(message))
    else:
        raise AssertionError("no EOSE for the sync subscription")
    if frame.opcode == 2 or (frame.opcode == 1 and not frame.payload.lstrip().startswith(b'["CLOSE"')):
        assert kinds, "the relay did not answer the frame"
    await ws.write_message(json.dumps(["CLOSE", sync]))


@pytest.mark.parametrize("examples", scales(60))
def test_relay_frames(
    http_server: Any, http_server_port: tuple[Any, int], io_loop: tornado.ioloop.IOLoop, errors: ErrorTrap,
    examples: int,
) -> None:
    """Random frames to the relay: NIP-01 answers or the right close, never a crash (see module doc)."""
    url = f"ws://127.0.0.1:{http_server_port[1]}/"
    fuzzed, good = Slot(url), Slot(url)
    marker = secrets.token_hex(8)

    async def subscribe() -> None:
        ws = await good.get()
        await ws.write_message(json.dumps(["REQ", "good", {"#t": [marker]}]))
        assert json.loads(await read(ws)) == ["EOSE", "good"]  # type: ignore[arg-type]

    run(io_loop, subscribe)
    counter = iter(range(10**9))

    @fuzz_settings(examples)
    @given(frame=frames(commands, LIMITS.max_message_length))
    def case(frame: Frame) -> None:
        try:
            run(io_loop, lambda: exchange(fuzzed, frame, next(counter)))
        except BaseException:
            fuzzed.drop()
            raise
        errors.check()

    try:
        case()
        event = signed(1, [["t", marker]], "still serving")

        async def publish_and_receive() -> None:
            ws = await fuzzed.get()
            await ws.write_message(json.dumps(["EVENT", event]))
            for _ in range(100):  # a fuzzed REQ may have left a subscription that matches this event
                reply = json.loads(await read(ws))  # type: ignore[arg-type]
                if reply[0] != "EVENT":
                    break
            assert reply == ["OK", event["id"], True, ""]
            listener: WS = await good.get()
            for _ in range(100):
                got = json.loads(await read(listener))  # type: ignore[arg-type]
                if got[0] == "EVENT" and got[2]["id"] == event["id"]:
                    return
            raise AssertionError("the good client did not receive the event")

        run(io_loop, publish_and_receive)
    finally:
        fuzzed.drop()
        good.drop()
