"""How big each kind of run is: ``full`` (make bench), ``quick`` (make bench-quick) and
``tiny`` (the smoke test, tests/test_bench_smoke.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

MiB = 2**20


@dataclass(frozen=True)
class Size:
    name: str
    scale_small: int          # generated rows for the first scale point (100k)
    lookup_keys: int          # generated rows for the lookup figures (1M)
    scale_large: int          # generated rows for the last scale point (10M; <= lookup_keys: none)
    concurrency: list[int]
    lookup_seconds: float
    value_sizes: list[int]
    ingest_bytes: int         # per value size and client
    get_values: int           # 256 KiB values for the Get figures
    kubo_big: int             # 0: no Kubo level
    kubo_files: int
    packing_values: int       # 0: no ingest_packing run

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SIZES = {
    "full": Size("full", 100_000, 1_000_000, 10_000_000, [1, 32, 128], 5.0,
                 [4096, 256 * 1024, MiB], 256 * MiB, 512, 256 * MiB, 2000, 1024),
    "quick": Size("quick", 100_000, 1_000_000, 1_000_000, [1, 32, 128], 3.0,
                  [4096, 256 * 1024, MiB], 32 * MiB, 128, 32 * MiB, 200, 0),
    "tiny": Size("tiny", 2_000, 5_000, 5_000, [1, 8], 0.5, [4096, 256 * 1024], 2 * MiB, 16,
                 0, 0, 0),
}
