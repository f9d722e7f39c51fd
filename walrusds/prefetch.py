"""PackPrefetch: when reading a whole pack once beats reading its entries one range at a time.

A packed entry is normally one ranged read from an aggregator: a round trip of several
milliseconds for every block. Readers that walk a file (``ipfs cat``, a DAG export) ask for
many blocks that were added together and so share a pack, one after another; the pack members
are laid out in key order, so those blocks are scattered through the pack and ranged reads
cannot be merged. Once a pack has been read often enough in a short window, the reader fetches
the whole pack once into the blob cache (single flight: concurrent readers share the download)
and serves the pack's next entries from memory.

The rule, per pack, within ``window`` seconds of the pack's first counted read:

- at least ``reads`` reads (one ranged read = one read), and
- at least ``1/FRACTION`` of the pack's bytes asked for, so a few small random reads never pull
  a 64 MiB pack (downloading the whole pack costs at most ``FRACTION`` times what was read), and
- the pack fits twice in the cache, so two hot packs do not evict each other on every read.

``reads = 0`` or a cache of 0 bytes turns prefetching off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

__all__ = ["FRACTION", "PackPrefetch"]

#: A whole pack is fetched only after at least 1/FRACTION of its bytes were asked for.
FRACTION = 256
#: Packs whose recent reads are remembered (the least recently read are forgotten).
TRACKED_PACKS = 4096


@dataclass
class _Heat:
    since: float
    reads: int = 0
    bytes: int = 0


class PackPrefetch:
    def __init__(self, *, reads: int, window: float, cache_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if reads < 0 or window <= 0:
            raise ValueError("reads must not be negative and window must be positive")
        self.reads = reads
        self.window = window
        self.max_pack = cache_bytes // 2
        self._clock = clock
        self._heat: LRUCache[str, _Heat] = LRUCache(maxsize=TRACKED_PACKS)
        self.triggered = 0

    @property
    def enabled(self) -> bool:
        return self.reads > 0 and self.max_pack > 0

    def whole_pack(self, blob_id: str, pack_bytes: int | None, nbytes: int) -> bool:
        """Count a read of ``nbytes`` from the pack; True: fetch the whole pack for it."""
        if not self.enabled or not pack_bytes or pack_bytes > self.max_pack:
            return False
        now = self._clock()
        heat = self._heat.get(blob_id)
        if heat is None or now - heat.since > self.window:
            heat = _Heat(since=now)
            self._heat[blob_id] = heat
        heat.reads += 1
        heat.bytes += nbytes
        if heat.reads >= self.reads and heat.bytes * FRACTION >= pack_bytes:
            # Counting starts again: if the pack is evicted and still hot, it is fetched again.
            del self._heat[blob_id]
            self.triggered += 1
            return True
        return False
