"""The pack flusher and the verified read path, in process, against the emulator over HTTP."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc
import pytest

from tests.flush.conftest import walrus_config
from walrusds.config import Config
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.pack import parse_pack
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


def blocks(n: int, size: int = 1000, prefix: str = "/k") -> dict[bytes, bytes]:
    return {f"{prefix}{i:04d}".encode(): os.urandom(size) for i in range(n)}


async def put_all(api: Any, items: dict[bytes, bytes]) -> None:
    async def stream() -> Any:
        for k, v in items.items():
            yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))
    await api.Batch(stream())


async def get(api: Any, key: bytes) -> bytes:
    return bytes((await api.Get(pb.GetRequest(key=key))).value)


async def test_flush_packs_everything_and_reads_verify(
        wapi: Any, flusher: Flusher, sql: Any, control: EmulatorControl) -> None:
    items = blocks(60)
    await put_all(wapi, items)
    assert sql("SELECT count(*) FROM {s}.entry_locations WHERE location = 'staged'") == [(60,)]
    done = await flusher.flush_ready(force=True)
    assert sum(o.members for o in done) == 60
    assert len(done) == 4  # 16 KiB packs of 1000-byte values: 15 per pack
    assert sql("SELECT entries, bytes FROM {s}.staged_backlog") == [(0, 0)]
    rows = sql("SELECT location, count(*) FROM {s}.entry_locations GROUP BY location")
    assert rows == [("packed", 60)]
    stored = sql("SELECT count(*), sum(entry_count), min(fill_pct) FROM {s}.pack_fill "
                 "WHERE state = 'stored'")
    assert stored[0][:2] == (4, 60)
    assert stored[0][2] > 90
    reads = (await control.counters())["routes"].get("read", 0)
    # one Lookup of a whole pack's keys reads the pack's run of entries once
    keys = sorted(items)[:15]
    resp = await wapi.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=keys))
    assert [bytes(r.value) for r in resp.results] == [items[k] for k in keys]
    assert (await control.counters())["routes"]["read"] - reads == 1
    for key, value in items.items():
        assert await get(wapi, key) == value
    # Per pack, the 8th read (walrus.prefetch_reads) fetches the pack whole and its other
    # entries come from the cache: 7 ranged reads + 1 whole read per pack (for the first pack
    # the Lookup above was its first read).
    assert (await control.counters())["routes"]["read"] - reads == 4 * 8


async def test_packs_are_self_describing(wapi: Any, flusher: Flusher, sql: Any,
                                         emulator: RunningEmulator) -> None:
    items = blocks(20, size=700)
    await put_all(wapi, items)
    await flusher.flush_ready(force=True)
    seen: dict[bytes, bytes] = {}
    for (blob_id,) in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored'"):
        data = await flusher.store.read_blob(blob_id)
        for entry in parse_pack(data):
            seen[entry.key] = data[entry.offset:entry.offset + entry.size]
            located = sql("SELECT blob_id, \"offset\", size FROM {s}.entry_locations "
                          "WHERE key = %s", entry.key)
            assert located == [(blob_id, entry.offset, entry.size)]
    assert seen == items


async def test_query_values_come_back_across_packs(wapi: Any, flusher: Flusher) -> None:
    items = blocks(50, size=900)
    await put_all(wapi, items)
    await flusher.flush_ready(force=True)
    got: dict[bytes, bytes] = {}
    async for resp in wapi.Query(pb.QueryRequest(prefix=b"/")):
        for e in resp.entries:
            got[bytes(e.key)] = bytes(e.value)
    assert got == items


async def test_identical_put_after_packing_changes_nothing(
        wapi: Any, flusher: Flusher, sql: Any) -> None:
    items = blocks(5)
    await put_all(wapi, items)
    await flusher.flush_ready(force=True)
    await put_all(wapi, items)  # Kubo re-adding the same blocks
    assert sql("SELECT count(*) FROM {s}.entry_locations WHERE location = 'staged'") == [(0,)]


async def test_overwrite_and_delete_during_upload_are_skipped(
        wapi: Any, flusher: Flusher, sql: Any, control: EmulatorControl) -> None:
    items = blocks(10)
    await put_all(wapi, items)
    await control.add_fault("store", "delay", delay=30.0, count=1)
    task = asyncio.create_task(flusher.flush_ready(force=True))
    for _ in range(200):  # until the pack is built and its upload started
        if sql("SELECT count(*) FROM {s}.packs WHERE state = 'building' AND pack_bytes > 0")[0][0]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the flusher never started uploading")
    new = b"new value"
    await wapi.Put(pb.PutRequest(key=b"/k0000", value=new))
    await wapi.Delete(pb.DeleteRequest(key=b"/k0001"))
    await control.clear_faults()  # ends the delay: the upload completes
    done = await task
    # the overwritten value was staged again, so the forced flush packed it next
    assert [(o.members, o.pointed) for o in done] == [(10, 8), (1, 1)]
    assert await get(wapi, b"/k0000") == new
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(wapi, b"/k0001")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for key in sorted(items)[2:]:
        assert await get(wapi, key) == items[key]
    rows = sql("SELECT live_entries, dead_bytes FROM {s}.pack_fill WHERE state = 'stored' "
               "ORDER BY pack_id")
    assert rows == [(8, 2000), (1, 0)]
    assert sql("SELECT count(*) FROM {s}.entry_locations WHERE location = 'staged'") == [(0,)]


async def test_a_stale_claim_is_resumed(wapi: Any, flusher: Flusher, sql: Any) -> None:
    items = blocks(8)
    await put_all(wapi, items)
    packs: PackIndex = flusher.packs
    # a flusher that claimed and then died: its lease runs out
    claimed = await packs.claim("dead-node:1", 0.2, 1 << 20, lambda m: 100 * len(m), 1 << 20)
    assert claimed is not None
    assert len(claimed[1]) == 8
    assert await flusher.flush_ready(force=True) == []  # claimed by someone else, not stale
    await asyncio.sleep(0.3)
    done = await flusher.flush_ready(force=True)
    assert [(o.pack_id, o.pointed) for o in done] == [(claimed[0], 8)]
    for key, value in items.items():
        assert await get(wapi, key) == value


async def test_a_publisher_413_teaches_a_smaller_pack_size(
        config: Config, emulator: RunningEmulator, control: EmulatorControl, sql: Any) -> None:
    await control.set_max_body_size(20_000)
    cfg = walrus_config(config, emulator.url, target_size=64 * 1024)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        api = stub(channel)
        items = blocks(50)
        await put_all(api, items)
        assert svc.backend is not None
        flusher = svc.backend.flusher
        assert flusher is not None
        done = await flusher.flush_ready(force=True)
        assert sum(o.members for o in done) == 50
        assert max(o.pack_bytes for o in done) <= 20_000
        statuses = (await control.counters())["statuses"]["store"]
        assert statuses["413"] == 2  # ~50 KB refused, then ~25 KB, then fits: no loop
        [(learned,)] = sql("SELECT publisher_max_body FROM {s}.walrus_state")
        assert 8_000 < learned <= 20_000
        for key, value in items.items():
            assert await get(api, key) == value
        # a value that can no longer fit any pack is refused when written
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.Put(pb.PutRequest(key=b"/big", value=os.urandom(learned)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "can never be stored on Walrus" in (err.value.details() or "")
    finally:
        await channel.close()
        await svc.stop(grace=0.5)
    # a restarted node remembers the limit
    svc = await Service.start(cfg)
    try:
        assert svc.backend is not None
        assert svc.backend.capacity is not None
        assert svc.backend.capacity.limit == learned
    finally:
        await svc.stop(grace=0.5)


async def test_put_refuses_a_value_larger_than_a_pack(
        config: Config, emulator: RunningEmulator) -> None:
    svc = await Service.start(walrus_config(config, emulator.url))
    channel = open_aio_channel(svc.address)
    try:
        api = stub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.Put(pb.PutRequest(key=b"/big", value=os.urandom(17 * 1024)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "can never be stored on Walrus" in (err.value.details() or "")
        assert not (await api.Has(pb.HasRequest(key=b"/big"))).exists
        await api.Put(pb.PutRequest(key=b"/fits", value=os.urandom(14_000)))
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_two_flushers_never_pack_an_entry_twice(
        packed_config: Config, wapi: Any, flusher: Flusher, sql: Any) -> None:
    items = blocks(300, size=500)
    await put_all(wapi, items)
    one = flusher
    other = Flusher(one.packs, one.store, packed_config,
                    PackCapacity(one.capacity.target), owner="other:2")
    results = await asyncio.gather(one.flush_ready(force=True), other.flush_ready(force=True))
    assert sum(o.members for r in results for o in r) == 300
    keys: list[bytes] = []
    for (blob_id,) in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored'"):
        keys += [e.key for e in parse_pack(await one.store.read_blob(blob_id))]
    assert sorted(keys) == sorted(items)


async def test_transient_upload_failure_keeps_entries_staged(
        wapi: Any, flusher: Flusher, sql: Any, control: EmulatorControl) -> None:
    items = blocks(5)
    await put_all(wapi, items)
    await control.add_fault("store", "status", status=503)
    with pytest.raises(Exception, match="503"):
        await flusher.flush_ready(force=True)
    assert sql("SELECT entries, claimed FROM {s}.staged_backlog") == [(5, 0)]
    assert sql("SELECT state FROM {s}.packs") == [("abandoned",)]
    for key, value in items.items():
        assert await get(wapi, key) == value
    await control.clear_faults()
    assert len(await flusher.flush_ready(force=True)) == 1


async def test_stop_ends_the_loop_even_when_nudged_at_the_same_moment(flusher: Flusher) -> None:
    # A write nudging the idle flusher in the same tick as stop() cancels it: on Python 3.11
    # asyncio.wait_for returned the nudge and lost the cancel, and stop() hung forever.
    for _ in range(3):
        await flusher.start()
        await asyncio.sleep(0.3)  # the loop found nothing to do and waits for a nudge
        task = flusher._task
        assert task is not None
        flusher.nudge()
        stopping = asyncio.ensure_future(flusher.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)
        assert done and task.done(), "the flusher's loop outlived stop()"


async def test_a_corrupt_staged_value_is_quarantined_not_packed_again_and_again(
        wapi: Any, flusher: Flusher, sql: Any, control: EmulatorControl) -> None:
    items = blocks(6)
    await put_all(wapi, items)
    bad = sorted(items)[2]
    sql("UPDATE {s}.entries SET value = overlay(value PLACING '\\x00'::bytea FROM 1 FOR 1) "
        "WHERE key = %s", bad)  # bit rot under Postgres: same length, other bytes
    async with asyncio.timeout(60):  # it used to rebuild and re-upload the same pack forever
        done = await flusher.flush_ready(force=True)
        assert [(o.members, o.pointed) for o in done] == [(5, 5)]
        assert await flusher.flush_ready(force=True) == []
    assert (await control.counters())["statuses"]["store"] == {"200": 1}
    [(kind, key)] = sql("SELECT kind, key FROM {s}.data_loss_events")
    assert (kind, bytes(key)) == ("corrupt", bad)
    assert sql("SELECT entries, claimed FROM {s}.staged_backlog") == [(1, 1)]  # set aside
    for key, value in items.items():
        if key != bad:
            assert await get(wapi, key) == value
    # a Delete clears it for good; the key can be written again and is packed as usual
    await wapi.Delete(pb.DeleteRequest(key=bad))
    await wapi.Put(pb.PutRequest(key=bad, value=items[bad]))
    assert [o.pointed for o in await flusher.flush_ready(force=True)] == [1]
    assert await get(wapi, bad) == items[bad]
