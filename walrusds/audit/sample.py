"""Drawing ``walrusds verify``'s default sample of entries without scanning the table.

``TABLESAMPLE SYSTEM (p)`` reads about ``p`` % of the table's pages, chosen at random, and
returns every row on them; the percentage comes from the planner's row estimate
(``pg_class.reltuples``, kept by autovacuum) so that about twice the wanted number of rows comes
back, and the wanted number is then drawn from those uniformly. When the estimate is missing (a
table never analyzed) or the pages drawn hold too few rows, the percentage grows fourfold until
it reaches 100 % (every row). Rows on one page were written together, so a page sample is
clustered; drawing from twice as many rows as needed, on many pages, keeps it useful for a
health check at a cost bounded by the sample, not the table.
"""

from __future__ import annotations

import random

from walrusds.audit.source import AuditIndex

__all__ = ["draw_sample", "sample_percent"]

#: Rows fetched per wanted row, before the uniform draw.
OVERSAMPLE = 2
#: Rows fetched at most per wanted row (bounds the memory of one round).
FETCH_CAP = 8


def sample_percent(wanted: int, estimated_rows: int | None) -> float:
    """The ``TABLESAMPLE SYSTEM`` percentage expected to return ``OVERSAMPLE × wanted`` rows."""
    if estimated_rows is None or estimated_rows <= 0:
        return 100.0
    return min(100.0, 100.0 * OVERSAMPLE * wanted / estimated_rows)


async def draw_sample(index: AuditIndex, wanted: int,
                      rng: random.Random | None = None) -> list[bytes]:
    """Up to ``wanted`` distinct keys chosen at random (fewer only if the table is smaller)."""
    if wanted <= 0:
        return []
    rng = rng or random.Random()
    percent = sample_percent(wanted, await index.estimated_entries())
    while True:
        keys = await index.sample_keys(percent, wanted * FETCH_CAP)
        if len(keys) >= wanted or percent >= 100.0:
            break
        percent = min(100.0, percent * 4)
    return keys if len(keys) <= wanted else rng.sample(keys, wanted)
