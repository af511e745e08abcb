"""SignQueue: sequential requests go out alone at once; concurrent ones share batched sessions."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from node import NodeTimeout, NodeUnavailable, PeerResponseError
from node.crypto.session import SignatureEntry
from node.sign_queue import SignQueue


class FakeNode:
    """Records every session's vectors; each session waits for `gate` when one is set."""

    def __init__(self) -> None:
        self.sessions: list[list[list[str]]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next: BaseException | None = None
        self.drop: set[str] = set()

    async def sign(self, vectors: list[list[str]]) -> list[SignatureEntry]:
        self.sessions.append(vectors)
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return [(v[0], "02" + "ab" * 32, v[0] * 2) for v in vectors if v[0] not in self.drop]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def hashes(n: int) -> list[str]:
    return [os.urandom(32).hex() for _ in range(n)]


def test_sequential_requests_each_go_out_alone() -> None:
    async def scenario() -> None:
        node = FakeNode()
        queue = SignQueue(node.sign)
        for sighash in hashes(3):
            entry = await queue.sign(sighash)
            assert entry == (sighash, "02" + "ab" * 32, sighash * 2)
        assert [len(s) for s in node.sessions] == [1, 1, 1] and queue.sessions == 3

    run(scenario())


def test_concurrent_requests_share_one_batched_session_with_unique_sighashes() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        queue = SignQueue(node.sign)
        first, *rest = hashes(6)
        tasks = [asyncio.ensure_future(queue.sign(first))]
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(queue.sign(h)) for h in [*rest, rest[0]]]  # rest[0] twice
        await asyncio.sleep(0.01)
        assert node.sessions == [[[first]]]  # the others wait for the session in flight
        node.gate.set()
        results = await asyncio.gather(*tasks)
        assert [r[0] for r in results] == [first, *rest, rest[0]]
        assert node.sessions[1] == [[h] for h in rest]  # one batch, the duplicate sighash once
        assert queue.sessions == 2

    run(scenario())


def test_a_failed_session_fails_its_waiters_only_and_the_queue_goes_on() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        node.fail_next = NodeTimeout("signing timed out")
        queue = SignQueue(node.sign)
        a, b, c = hashes(3)
        doomed = asyncio.ensure_future(queue.sign(a))
        await asyncio.sleep(0)
        later = [asyncio.ensure_future(queue.sign(h)) for h in (b, c)]
        await asyncio.sleep(0.01)
        node.gate.set()
        with pytest.raises(NodeTimeout):
            await doomed
        assert [r[0] for r in await asyncio.gather(*later)] == [b, c]

    run(scenario())


def test_a_missing_entry_is_an_error_for_that_request() -> None:
    async def scenario() -> None:
        node = FakeNode()
        (sighash,) = hashes(1)
        node.drop.add(sighash)
        with pytest.raises(PeerResponseError, match="no signature"):
            await SignQueue(node.sign).sign(sighash)

    run(scenario())


def test_a_caller_that_goes_away_does_not_break_the_batch() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        queue = SignQueue(node.sign)
        a, b, c = hashes(3)
        first = asyncio.ensure_future(queue.sign(a))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(queue.sign(b))
        kept = asyncio.ensure_future(queue.sign(c))
        await asyncio.sleep(0.01)
        gone.cancel()
        node.gate.set()
        assert (await first)[0] == a and (await kept)[0] == c
        assert node.sessions[1] == [[c]]  # the cancelled request was left out

    run(scenario())


def test_closing_fails_waiting_and_in_flight_requests_at_once_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()  # never set: the session in flight would wait its whole 5 s
        queue = SignQueue(node.sign)
        a, b = hashes(2)
        in_flight = asyncio.ensure_future(queue.sign(a))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(queue.sign(b))
        await asyncio.sleep(0)
        await asyncio.wait_for(queue.close(), 1)
        for request in (in_flight, waiting):
            with pytest.raises(NodeUnavailable, match="not running"):
                await request
        with pytest.raises(NodeUnavailable):
            await queue.sign(b)
        assert node.sessions == [[[a]]]  # the waiting request never went out

    run(scenario())


def test_a_queued_request_keeps_its_own_deadline() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        queue = SignQueue(node.sign)
        a, b = hashes(2)
        stuck = asyncio.ensure_future(queue.sign(a))
        await asyncio.sleep(0)
        with pytest.raises(NodeTimeout):
            await queue.sign(b, timeout=0.05)  # waiting behind a session that does not finish in time
        node.gate.set()
        assert (await stuck)[0] == a
        assert node.sessions == [[[a]]]  # the timed-out request never went out

    run(scenario())


def test_send_now_lets_a_request_go_out_beside_a_session_in_flight() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        answers = [True, False]
        asked: list[int] = []

        def send_now() -> bool:
            asked.append(len(node.sessions))
            return answers.pop(0) if answers else False

        queue = SignQueue(node.sign, max_inflight=4, send_now=send_now)
        a, b, c, d = hashes(4)
        tasks = [asyncio.ensure_future(queue.sign(a))]
        await asyncio.sleep(0)
        assert asked == []  # nothing in flight: no question
        tasks.append(asyncio.ensure_future(queue.sign(b)))
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(queue.sign(h)) for h in (c, d)]
        await asyncio.sleep(0.01)
        assert node.sessions == [[[a]], [[b]]]  # b went out beside a; c and d were told to wait
        assert asked == [1, 2, 2]
        node.gate.set()
        assert [r[0] for r in await asyncio.gather(*tasks)] == [a, b, c, d]
        assert node.sessions[2] == [[c], [d]]  # together, when the first session ended

    run(scenario())


def test_max_inflight_bounds_the_sessions_whatever_send_now_says() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        queue = SignQueue(node.sign, max_inflight=3, send_now=lambda: True)
        first = hashes(3)
        tasks = [asyncio.ensure_future(queue.sign(h)) for h in first]
        await asyncio.sleep(0)
        rest = hashes(5)
        tasks += [asyncio.ensure_future(queue.sign(h)) for h in rest]
        await asyncio.sleep(0.01)
        assert len(node.sessions) == 3
        node.gate.set()
        await asyncio.gather(*tasks)
        assert node.sessions[3] == [[h] for h in rest]  # batched once a slot was free

    run(scenario())


def test_a_batch_larger_than_max_batch_goes_out_in_several_sessions_and_skips_callers_that_left() -> None:
    async def scenario() -> None:
        node = FakeNode()
        node.gate = asyncio.Event()
        queue = SignQueue(node.sign, max_batch=2)
        first, *rest = hashes(6)
        head = asyncio.ensure_future(queue.sign(first))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(queue.sign(h)) for h in rest]
        await asyncio.sleep(0.01)
        for task in waiting[:2]:
            task.cancel()  # the first two callers leave: their sighashes must not hold a batch's place
        node.gate.set()
        await head
        assert [r[0] for r in await asyncio.gather(*waiting[2:])] == rest[2:]
        assert node.sessions[1] == [[rest[2]], [rest[3]]] and node.sessions[2] == [[rest[4]]]

    run(scenario())
