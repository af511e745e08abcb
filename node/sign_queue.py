"""Coalesce concurrent single-message sign requests into batched signing sessions, without a timer.

A request that finds nothing in flight goes out at once, alone, so a sequential caller pays nothing. A request
that arrives while a session is in flight asks ``send_now()`` (the node's answer: is there an idle online
co-signer, or one whose rounds are mostly network time?) and goes out at once when it says yes; otherwise it
waits and goes out with every other waiting request as ONE batched session (one vector per distinct sighash)
when a session finishes. A co-signer then verifies, decrypts and answers one message for the whole batch
instead of one per request; for the JS reference (~30 ms of CPU per sign request, about half of it per message
rather than per sighash) that roughly halves its work under load. bifrost's own `req.queue` batches on a
100 ms timer instead, which costs every request that wait.

Without ``send_now`` the queue keeps one session in flight (``max_inflight`` is then the only limit).
Each NodeService owns one queue (``NodeService.sign_queue``), created with it and closed when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from node.crypto.session import SignatureEntry
from node.errors import NodeTimeout, NodeUnavailable, PeerResponseError
from node.validate import MAX_SIGHASH_VECTORS

SignFn = Callable[[list[list[str]]], Awaitable[list[SignatureEntry]]]
SendNowFn = Callable[[], bool]


class SignQueue:
    """At most ``max_inflight`` signing sessions at a time, a second one only when ``send_now()`` says so;
    everything else waits for the next batch."""

    def __init__(self, sign: SignFn, *, max_batch: int = MAX_SIGHASH_VECTORS, max_inflight: int = 1,
                 send_now: SendNowFn | None = None) -> None:
        self._sign = sign
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._send_now = send_now
        self._waiting: dict[str, list[asyncio.Future[SignatureEntry]]] = {}
        self._inflight = 0
        self._tasks: dict[asyncio.Task[None], dict[str, list[asyncio.Future[SignatureEntry]]]] = {}
        self.sessions = 0  # batched sessions started (for tests and the bench)
        self.closed = False

    async def sign(self, sighash: str, timeout: float | None = None) -> SignatureEntry:
        """The signature entry ``(sighash, tweaked_pk, sig)`` for one lower-case hex32 sighash.

        Raises what the node's ``sign`` raises for the session this request ended up in, or ``NodeTimeout``
        when ``timeout`` seconds pass first (a request queued behind a session in flight still gets its own
        deadline, counted from when it arrived). ``NodeUnavailable`` once the queue is closed.
        """
        if self.closed:
            raise NodeUnavailable("node is not running")
        future: asyncio.Future[SignatureEntry] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(sighash, []).append(future)
        if self._may_launch():
            self._launch()
        if timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise NodeTimeout("signing timed out") from None

    def _may_launch(self) -> bool:
        if self._inflight == 0:
            return True
        if self._inflight >= self.max_inflight or self._send_now is None:
            return False
        return self._send_now()

    def _launch(self) -> bool:
        """Send the waiting requests (up to ``max_batch`` sighashes) as one session; False if none left."""
        batch: dict[str, list[asyncio.Future[SignatureEntry]]] = {}
        for sighash in list(self._waiting):  # oldest first; requests whose caller left are dropped
            if len(batch) == self.max_batch:
                break
            waiters = [f for f in self._waiting.pop(sighash) if not f.done()]
            if waiters:
                batch[sighash] = waiters
        if not batch:
            return False
        self._inflight += 1
        self.sessions += 1
        task = asyncio.ensure_future(self._run(batch))
        self._tasks[task] = batch
        task.add_done_callback(lambda done: self._tasks.pop(done, None))
        return True

    async def _run(self, batch: dict[str, list[asyncio.Future[SignatureEntry]]]) -> None:
        try:
            entries = await self._sign([[sighash] for sighash in batch])
        except BaseException as exc:  # every waiter gets the session's error, cancellation too
            for waiters in batch.values():
                for future in waiters:
                    _settle(future, exc=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            by_hash = {entry[0]: entry for entry in entries}
            for sighash, waiters in batch.items():
                for future in waiters:
                    entry = by_hash.get(sighash)
                    if entry is None:
                        missing = PeerResponseError("the session returned no signature for this sighash")
                        _settle(future, exc=missing)
                    else:
                        _settle(future, result=entry)
        finally:
            self._inflight -= 1
            # The requests that waited for a session to end go out now, as one batch (more only when
            # there are more than one batch holds and the node has co-signers to spare).
            while self._waiting and not self.closed and self._inflight < self.max_inflight:
                if not self._launch() or not self._may_launch():
                    break

    async def close(self) -> None:
        """Refuse new requests; every waiting or in-flight request fails with ``NodeUnavailable`` at once."""
        self.closed = True
        gone = NodeUnavailable("node is not running")
        waiting = [f for waiters in self._waiting.values() for f in waiters]
        inflight = [f for batch in self._tasks.values() for waiters in batch.values() for f in waiters]
        self._waiting.clear()
        for future in waiting + inflight:
            _settle(future, exc=gone)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def _settle(
    future: asyncio.Future[SignatureEntry],
    *,
    result: SignatureEntry | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():
        return  # the caller went away
    if exc is not None:
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
    elif result is not None:
        future.set_result(result)
