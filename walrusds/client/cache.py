"""A byte-bounded LRU of whole blobs, with one download per blob at a time.

Holds packs read whole on purpose (the reader's pack prefetch, :mod:`walrusds.prefetch`) and
packs an aggregator sent whole because it ignores ``Range`` (older aggregators answer 200 with
the whole blob): the next entries of the same pack cost no further download. Blobs
larger than the whole budget are never cached. Concurrent misses for one blob share a single
fetch ("single flight") instead of downloading the same 64 MiB pack once per caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cachetools import LRUCache

__all__ = ["BlobCache"]


class BlobCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru: LRUCache[str, bytes] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=len) if max_bytes > 0 else None)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, blob_id: str) -> bytes | None:
        if self._lru is None:
            return None
        data = self._lru.get(blob_id)
        if data is not None:
            self.hits += 1
        return data

    def put(self, blob_id: str, data: bytes) -> None:
        if self._lru is not None and 0 < len(data) <= self.max_bytes:
            self._lru[blob_id] = data

    def forget(self, blob_id: str) -> None:
        if self._lru is not None:
            self._lru.pop(blob_id, None)

    @property
    def size(self) -> int:
        return 0 if self._lru is None else int(self._lru.currsize)

    async def get_or_fetch(self, blob_id: str,
                           fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached blob, or ``fetch()``'s result (shared by concurrent callers), cached."""
        cached = self.get(blob_id)
        if cached is not None:
            return cached
        pending = self._inflight.get(blob_id)
        if pending is not None:
            return await asyncio.shield(pending)
        self.misses += 1
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[blob_id] = future
        try:
            data = await fetch()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it themselves
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._inflight.pop(blob_id, None)
        future.set_result(data)
        self.put(blob_id, data)
        return data
