"""A hundred simulated epochs of writes, deletes, flushes and renewal passes.

Ends with zero lost entries, every live entry readable byte-identical, no extension that paid
for more dead bytes than the threshold allows, and every pass doing exactly what its dry-run
plan said.
"""

from __future__ import annotations

import random
from typing import Any

from tests.renew.conftest import Rig
from walrusds.renew import Action

EPOCHS = 100


async def test_a_hundred_epochs(rig: Rig, sql: Any) -> None:
    rng = random.Random(100)
    threshold = rig.config.renew.dead_threshold
    actions: dict[Action, int] = dict.fromkeys(Action, 0)
    for epoch in range(EPOCHS):
        await rig.put(12)
        await rig.delete(rng.sample(sorted(rig.live), min(6, len(rig.live))))
        await rig.flush()
        _, planned = await rig.worker.plan()
        done = await rig.worker.renew_once()
        assert [(d.pack_id, d.action) for d in done] == [
            (i.pack.pack_id, i.action) for i in planned], f"epoch {epoch}: plan and pass differ"
        for item in planned:
            actions[item.action] += 1
            if item.action is Action.EXTEND:  # what is paid again is mostly live
                assert item.pack.dead_fraction <= threshold
        await rig.flush()  # compacted entries into new packs
        await rig.next_epoch()
        if epoch % 10 == 9:
            await rig.check_all_readable()
    await rig.check_all_readable()
    assert sql("SELECT count(*) FROM {s}.packs WHERE state = 'lost'") == [(0,)]
    assert sql("SELECT count(*) FROM {s}.data_loss_events") == [(0,)]
    # every kind of decision was exercised
    assert actions[Action.EXTEND] > 10
    assert actions[Action.COMPACT] > 10
    assert actions[Action.LAPSE] > 0  # most dying packs are compacted before they empty
    assert actions[Action.LOST] == 0
