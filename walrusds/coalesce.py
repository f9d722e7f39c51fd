"""Coalesce concurrent single-key lookups into batched calls.

bitswap asks Has/GetSize from 128 workers at once. Answering each with its own Postgres query
costs a round trip per key; one ``key = ANY(...)`` query answers a hundred keys in about the time
of one. A :class:`Coalescer` runs a lone request at once (no timer, no added latency) and, while
up to ``max_inflight`` batches are running, queues new requests so the next batch takes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

BatchFn = Callable[[Sequence[K]], Awaitable[dict[K, V]]]


class Coalescer(Generic[K, V]):
    """``await c.get(key)`` → the batch function's answer for ``key`` (``None`` if absent)."""

    def __init__(self, fn: BatchFn[K, V], *, max_batch: int = 512, max_inflight: int = 4) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._inflight = 0
        self._queue: list[tuple[K, asyncio.Future[V | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._queue.append((key, fut))
        if self._inflight < self._max_inflight:
            self._start()
        return await fut

    def _start(self) -> None:
        batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        self._inflight += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[K, asyncio.Future[V | None]]]) -> None:
        try:
            keys = list(dict.fromkeys(k for k, _ in batch))
            try:
                answers = await self._fn(keys)
            except BaseException as exc:  # hand the failure to every waiter
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for key, fut in batch:
                if not fut.done():
                    fut.set_result(answers.get(key))
        finally:
            self._inflight -= 1
            if self._queue and self._inflight < self._max_inflight:
                self._start()
