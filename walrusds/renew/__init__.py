"""Renewal and compaction: keep every live entry's blob paid for, stop paying for dead bytes.

- :mod:`.policy` — pure: given the stored packs and the current epoch, what to do with each
  (extend, compact, lapse, mark lost) and what it should cost;
- :mod:`.index` — the SQL: packs due, epoch estimate, leases, compare-and-set updates;
- :mod:`.worker` — :class:`RenewWorker`: ``plan()``, ``renew_once()`` and a thin loop.

Walrus blobs are unreadable from the start of their end epoch and there is no HTTP "extend":
re-storing the same bytes buys the same blob ID a new lifetime. Compaction moves a sparse
pack's live entries back to staging (compare-and-set on the old pack, so a concurrent Delete or
re-Put wins) and the flusher packs them into new, full packs with everything else; the old pack
then has no live entries and lapses.
"""

from walrusds.renew.policy import Action, PackView, PlanItem, RenewSettings, plan
from walrusds.renew.worker import RenewWorker

__all__ = ["Action", "PackView", "PlanItem", "RenewSettings", "RenewWorker", "plan"]
