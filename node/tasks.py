"""Fire-and-forget tasks of one owner: kept referenced until they end, failures reported, cancelled together.

asyncio keeps only a weak reference to a task, so a task nobody holds may be collected mid-run; and a failure
in a task nobody awaits is only logged at collection time. The node and the bunker both start such tasks (one
per inbound request or reply) and need both problems solved the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class BackgroundTasks:
    """The running tasks of one owner; ``on_failure`` hears each exception a task ended with."""

    def __init__(self, on_failure: Callable[[BaseException], None]) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_failure = on_failure

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` as a task held here until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._on_failure(exc)

    def cancel_all(self) -> None:
        """Cancel every running task (they leave the set as they end)."""
        for task in list(self._tasks):
            task.cancel()

    async def settle(self, timeout: float) -> None:
        """Wait until no task is running, for at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(list(self._tasks), timeout=max(0.0, deadline - loop.time()))
