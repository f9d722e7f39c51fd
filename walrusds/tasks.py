"""Background tasks: stopping one without losing a cancel aimed at the caller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

#: How long to wait for a cancelled task before cancelling it again.
RECANCEL_SECONDS = 0.5


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and return once it has ended.

    ``with suppress(CancelledError): await task`` would also swallow a cancel of the caller
    itself (a test's timeout, a shutdown of the stopping code); ``asyncio.wait`` never raises
    the task's outcome, so the caller's own cancel is the only one that propagates.
    """
    if task is None:
        return
    # Python 3.11's asyncio can lose a cancel that lands in the same loop iteration as a
    # timeout or a wake-up of what the task awaits (wait_for, asyncio.timeout): cancel again
    # until the task has ended rather than wait for it forever.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("background task %s ended with %r", task.get_name(), exc)
