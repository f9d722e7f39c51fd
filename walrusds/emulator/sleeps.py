"""Sleeps that can all be ended at once.

Fault delays and network latency may be long; clearing the faults (for delays) and stopping the
emulator (for both) must not wait for them to run out.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Sleeps"]


class Sleeps:
    """A group of sleeps; :meth:`release` ends every pending one now."""

    def __init__(self) -> None:
        self._release = asyncio.Event()

    def release(self) -> None:
        """End every pending :meth:`sleep` now; later sleeps run normally."""
        self._release.set()
        self._release = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; return early when the group is released."""
        release = self._release
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # wait_for may swallow a cancel on 3.11
                await release.wait()
