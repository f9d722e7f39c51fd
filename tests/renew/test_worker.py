"""The renewal worker against the emulator's epoch clock: extend, compact, lapse, lost."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.renew.conftest import Rig
from walrusds.renew import Action
from walrusds.renew import worker as worker_module
from walrusds.v1 import datastore_pb2 as pb


async def stored(sql: Any, rig: Rig) -> list[tuple[int, str, int, int]]:
    rows: list[tuple[int, str, int, int]] = sql(
        "SELECT id, blob_id, end_epoch, live_entries FROM {s}.packs "
        "WHERE state = 'stored' ORDER BY id")
    return rows


async def test_nothing_to_do_before_anything_was_stored(rig: Rig) -> None:
    assert await rig.worker.plan() == (None, [])
    assert await rig.worker.renew_once() == []


async def test_extend_buys_the_same_blob_a_new_lifetime(rig: Rig, sql: Any) -> None:
    await rig.put(10)
    await rig.flush()  # stored for walrus.epochs = 3: ends at epoch 4
    [(pack_id, blob_id, end, _)] = await stored(sql, rig)
    assert end == 4
    await rig.next_epoch()
    await rig.learn_epoch()
    epoch, items = await rig.worker.plan()
    assert epoch == 2
    assert [(i.pack.pack_id, i.action) for i in items] == [(pack_id, Action.EXTEND)]
    stores = (await rig.control.counters())["routes"]["store"]
    done = await rig.worker.renew_once()
    assert [(d.pack_id, d.action) for d in done] == [(pack_id, Action.EXTEND)]
    assert (await rig.control.counters())["routes"]["store"] == stores + 1
    rows = sql("SELECT end_epoch, blob_id FROM {s}.packs WHERE id = %s", pack_id)
    assert rows == [(2 + 6, blob_id)]
    blob = await rig.control.blob(blob_id)
    assert blob is not None
    assert blob["end_epoch"] == 8
    await rig.next_epoch(5)  # past the original end: the blob lives on
    await rig.check_all_readable()
    assert await rig.worker.renew_once() == []  # a second pass finds nothing new to do


async def test_compaction_moves_live_entries_and_retires_the_pack(
        rig: Rig, sql: Any) -> None:
    keys = await rig.put(10)
    await rig.flush()
    [(old, _, _, _)] = await stored(sql, rig)
    await rig.delete(keys[:5])  # 50% dead
    await rig.next_epoch()
    await rig.learn_epoch()
    _, items = await rig.worker.plan()
    assert (old, Action.COMPACT) in [(i.pack.pack_id, i.action) for i in items]
    done = await rig.worker.renew_once()
    assert [d.action for d in done if d.pack_id == old] == [Action.COMPACT]
    assert sql("SELECT state FROM {s}.packs WHERE id = %s", old) == [("retired",)]
    assert sql("SELECT entries FROM {s}.staged_backlog") == [(5,)]
    await rig.check_all_readable()  # from staging
    await rig.flush()
    await rig.check_all_readable()  # from the new pack
    await rig.next_epoch(2)  # the old blob expires; nothing points at it
    await rig.check_all_readable()


async def test_compaction_pages_past_empty_values_sharing_an_offset(
        rig: Rig, sql: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty value has the offset of the entry after it; pages of two entries end on one.
    monkeypatch.setattr(worker_module, "COMPACT_CHUNK_ENTRIES", 2)
    live = []
    for size in (1000, 0, 1000, 0, 0, 1000, 0):
        live += await rig.put(1, size=size)
    dead = await rig.put(4)
    await rig.flush()
    [(old, _, _, _)] = await stored(sql, rig)
    await rig.delete(dead)
    await rig.next_epoch()
    await rig.learn_epoch()
    done = await rig.worker.renew_once()
    assert [d.action for d in done if d.pack_id == old] == [Action.COMPACT]
    assert sql("SELECT entries FROM {s}.staged_backlog") == [(len(live),)]
    assert sql("SELECT count(*) FROM {s}.entries WHERE pack_id = %s", old) == [(0,)]
    await rig.check_all_readable()


async def test_a_pack_with_no_live_entries_lapses_and_is_never_paid_again(
        rig: Rig, sql: Any) -> None:
    keys = await rig.put(5)
    await rig.flush()
    [(pack_id, _, _, _)] = await stored(sql, rig)
    await rig.delete(keys)
    await rig.next_epoch()
    await rig.learn_epoch()
    stores = (await rig.control.counters())["routes"]["store"]
    done = await rig.worker.renew_once()
    assert [(d.pack_id, d.action) for d in done if d.pack_id == pack_id] == [
        (pack_id, Action.LAPSE)]
    assert (await rig.control.counters())["routes"]["store"] == stores
    assert sql("SELECT state FROM {s}.packs WHERE id = %s", pack_id) == [("retired",)]


async def test_an_expired_pack_still_indexed_is_marked_lost(rig: Rig, sql: Any) -> None:
    keys = await rig.put(3)
    await rig.flush()
    [(pack_id, _, end, _)] = await stored(sql, rig)
    await rig.next_epoch(end)  # nobody renewed it in time
    await rig.learn_epoch()
    done = await rig.worker.renew_once()
    assert (pack_id, Action.LOST) in [(d.pack_id, d.action) for d in done]
    assert sql("SELECT state FROM {s}.packs WHERE id = %s", pack_id) == [("lost",)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.api.Get(pb.GetRequest(key=keys[0]))
    assert err.value.code() == grpc.StatusCode.DATA_LOSS


async def test_a_concurrent_put_wins_over_compaction(rig: Rig, sql: Any) -> None:
    keys = await rig.put(10)
    await rig.flush()
    await rig.delete(keys[:6])
    await rig.next_epoch()
    await rig.learn_epoch()
    await rig.worker.plan()
    # a re-Put of one live key between the plan and the move: the CAS skips it
    await rig.api.Put(pb.PutRequest(key=keys[6], value=b"newer"))
    rig.live[keys[6]] = b"newer"
    await rig.worker.renew_once()
    await rig.flush()
    await rig.check_all_readable()
