"""Stopping background tasks (walrusds.tasks)."""

from __future__ import annotations

import asyncio
import contextlib

from walrusds.tasks import cancel_and_wait


async def test_a_task_that_loses_a_cancel_is_cancelled_again() -> None:
    # Python 3.11's wait_for and asyncio.timeout can lose a cancel that lands as what they
    # wait for completes; the loop then runs on. Here the task swallows the first cancel.
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(30)

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await cancel_and_wait(task)
    assert swallowed.is_set() and task.cancelled()


async def test_the_callers_own_cancel_still_propagates() -> None:
    done = asyncio.Event()

    async def slow_to_stop() -> None:
        while not done.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)

    task = asyncio.get_running_loop().create_task(slow_to_stop())
    stopper = asyncio.get_running_loop().create_task(cancel_and_wait(task))
    await asyncio.sleep(0.1)
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()
    done.set()  # the task's owner ends it its own way
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    assert task.done()
