"""BackgroundTasks: tasks held until they end, each failure reported once, cancellation not a failure."""

from __future__ import annotations

import asyncio
import gc

from node.tasks import BackgroundTasks


async def test_a_failure_is_reported_once_and_a_cancellation_not_at_all() -> None:
    failures: list[BaseException] = []
    tasks = BackgroundTasks(failures.append)
    release = asyncio.Event()

    async def fails() -> None:
        raise ValueError("bad peer message")

    async def waits() -> None:
        await release.wait()

    tasks.spawn(fails())
    tasks.spawn(waits())
    tasks.spawn(waits())
    gc.collect()  # asyncio holds tasks weakly: only the set keeps the waiting ones alive
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [type(exc) for exc in failures] == [ValueError] and len(tasks) == 2
    tasks.cancel_all()
    await tasks.settle(1.0)
    assert len(tasks) == 0 and len(failures) == 1


async def test_settle_waits_for_running_tasks_within_its_timeout() -> None:
    tasks = BackgroundTasks(lambda exc: None)
    release = asyncio.Event()
    done: list[str] = []

    async def work() -> None:
        await release.wait()
        done.append("work")

    tasks.spawn(work())
    await tasks.settle(0.01)  # still running: settle gives up at its deadline
    assert done == [] and len(tasks) == 1
    release.set()
    await tasks.settle(1.0)
    assert done == ["work"] and len(tasks) == 0
