"""The renewal policy is pure: a table of packs and epochs in, actions out."""

from __future__ import annotations

from walrusds.renew.policy import Action, PackView, RenewSettings, decide, plan

S = RenewSettings(margin_epochs=2, epochs=5, dead_threshold=0.3)
MiB = 1 << 20


def pack(end: int, live: int, data: int = 64 * MiB, entries: int = 10, pid: int = 1,
         cost: int | None = 1_000_000) -> PackView:
    return PackView(pid, "B" * 43, end, end - 5, data + 4096, data, live,
                    entries if live else 0, cost)


def test_decisions() -> None:
    assert decide(pack(20, 64 * MiB), 10, S) is None           # far from its end
    assert decide(pack(12, 64 * MiB), 10, S) is Action.EXTEND  # within the margin
    assert decide(pack(12, 40 * MiB), 10, S) is Action.COMPACT  # 37.5% dead > 30%
    assert decide(pack(12, 50 * MiB), 10, S) is Action.EXTEND  # 22% dead: keep paying
    assert decide(pack(12, 0), 10, S) is Action.LAPSE
    assert decide(pack(10, 0), 10, S) is Action.LAPSE          # expired, nothing lost
    assert decide(pack(10, 1), 10, S) is Action.LOST           # expired while indexed
    assert decide(pack(11, 64 * MiB), 10, S) is Action.EXTEND


def test_plan_is_ordered_and_priced() -> None:
    items = plan([pack(12, 64 * MiB, pid=2), pack(11, 0, pid=3), pack(30, 1, pid=4),
                  pack(12, 10 * MiB, pid=5, cost=None)], 10, S)
    assert [(i.pack.pack_id, i.action) for i in items] == [
        (3, Action.LAPSE), (2, Action.EXTEND), (5, Action.COMPACT)]
    lapse, extend, compact = items
    assert (lapse.unit_epochs, lapse.cost_estimate) == (0, 0)
    # 64 MiB + 4 KiB encodes to 350 units (1 MiB each); five epochs
    assert extend.unit_epochs == 5 * 350
    # the pack cost 1,000,000 FROST for 5 epochs of 350 units: the renewal costs as much
    assert extend.cost_estimate == 1_000_000
    assert compact.cost_estimate is None
    assert 0 < compact.unit_epochs < extend.unit_epochs
