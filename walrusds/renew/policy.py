"""The renewal policy: pure, no I/O, no clock (the caller passes the current epoch)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from walrusds.costs import encoded_length, storage_units

__all__ = ["Action", "PackView", "PlanItem", "RenewSettings", "plan"]


class Action(StrEnum):
    EXTEND = "extend"      # re-store the same bytes: a new lifetime for the same blob ID
    COMPACT = "compact"    # move live entries to new packs; the old pack then lapses
    LAPSE = "lapse"        # no live entries: let it expire, never pay for it again
    LOST = "lost"          # expired while entries still point at it: DATA_LOSS


@dataclass(frozen=True)
class RenewSettings:
    margin_epochs: int
    epochs: int
    dead_threshold: float


@dataclass(frozen=True)
class PackView:
    """What the policy needs to know about one stored pack."""

    pack_id: int
    blob_id: str
    end_epoch: int
    registered_epoch: int | None
    pack_bytes: int
    data_bytes: int
    live_bytes: int
    live_entries: int
    cost: int | None

    @property
    def dead_bytes(self) -> int:
        return self.data_bytes - self.live_bytes

    @property
    def dead_fraction(self) -> float:
        return self.dead_bytes / self.data_bytes if self.data_bytes else 0.0


@dataclass(frozen=True)
class PlanItem:
    pack: PackView
    action: Action
    #: Storage units (MiB of encoded size) times epochs this action buys.
    unit_epochs: int
    #: FROST, scaled from what this pack cost when it was stored (None when unknown).
    cost_estimate: int | None

    def as_json(self) -> dict[str, object]:
        p = self.pack
        return {"pack_id": p.pack_id, "blob_id": p.blob_id, "end_epoch": p.end_epoch,
                "live_entries": p.live_entries, "live_bytes": p.live_bytes,
                "dead_bytes": p.dead_bytes, "action": self.action.value,
                "unit_epochs": self.unit_epochs, "cost_estimate": self.cost_estimate}


def _price_per_unit_epoch(p: PackView) -> float | None:
    """FROST per storage unit per epoch this pack was charged (write fee folded in)."""
    if p.cost is None or p.registered_epoch is None or p.end_epoch <= p.registered_epoch:
        return None
    units = storage_units(encoded_length(p.pack_bytes))
    return p.cost / (units * (p.end_epoch - p.registered_epoch))


def decide(p: PackView, current_epoch: int, s: RenewSettings) -> Action | None:
    """The action for one pack, or None when it needs nothing yet."""
    if p.end_epoch <= current_epoch:
        return Action.LOST if p.live_entries else Action.LAPSE
    if p.end_epoch - current_epoch > s.margin_epochs:
        return None
    if p.live_entries == 0:
        return Action.LAPSE
    if p.dead_fraction > s.dead_threshold:
        return Action.COMPACT
    return Action.EXTEND


def plan(packs: Iterable[PackView], current_epoch: int, s: RenewSettings) -> list[PlanItem]:
    """What to do now, soonest end epoch first."""
    items: list[PlanItem] = []
    for p in sorted(packs, key=lambda p: (p.end_epoch, p.pack_id)):
        action = decide(p, current_epoch, s)
        if action is None:
            continue
        size = {Action.EXTEND: p.pack_bytes, Action.COMPACT: p.live_bytes}.get(action)
        if size is None:
            items.append(PlanItem(p, action, 0, 0))
            continue
        # A compaction's live bytes share new packs with other data: bill them pro rata.
        units = (storage_units(encoded_length(size)) if action is Action.EXTEND
                 else max(1, round(size / p.pack_bytes * storage_units(
                     encoded_length(p.pack_bytes)))) if p.pack_bytes else 1)
        price = _price_per_unit_epoch(p)
        unit_epochs = units * s.epochs
        items.append(PlanItem(p, action, unit_epochs,
                              None if price is None else round(price * unit_epochs)))
    return items
