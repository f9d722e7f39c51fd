"""The verified read path: every byte from Walrus is checked; bad bytes never reach a caller."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import grpc
import pytest

from tests.flush.conftest import walrus_config
from walrusds.config import Config, WalrusConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.entries import Located
from walrusds.index.packs import PackIndex
from walrusds.reader import plan_reads
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key


async def packed(svc: Service, cfg: Config, items: dict[bytes, bytes]) -> Any:
    """Put ``items`` through a fresh channel, pack them all, return the stub."""
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    await api.Batch(_stream(items))
    assert svc.backend is not None
    assert svc.backend.store is not None
    flusher = Flusher(PackIndex(svc.pool, cfg.postgres.schema), svc.backend.store, cfg,
                      PackCapacity(cfg.pack.target_size), owner="reader-test:1")
    await flusher.flush_ready(force=True)
    return api, channel


async def _stream(items: dict[bytes, bytes]) -> Any:
    for k, v in items.items():
        yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))


def kubo_blocks(n: int) -> dict[bytes, bytes]:
    values = [os.urandom(900) for _ in range(n)]
    return {block_key(v): v for v in values}


async def get_error(api: Any, key: bytes) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.Get(pb.GetRequest(key=key))
    return err.value


async def test_flipped_bits_are_reread_never_returned(
        config: Config, emulator: RunningEmulator, control: EmulatorControl) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    # Every Get a ranged read of its own, so every fault meets a read (no whole-pack cache).
    cfg = dataclasses.replace(cfg, walrus=dataclasses.replace(cfg.walrus, prefetch_reads=0))
    svc = await Service.start(cfg)
    api, channel = await packed(svc, cfg, kubo_blocks(10))
    try:
        items = kubo_blocks(0)
        async for resp in api.Query(pb.QueryRequest(prefix=b"/", keys_only=True)):
            items.update({bytes(e.key): b"" for e in resp.entries})
        for fault in ("bitflip", "wrong_slice", "other_blob"):
            await control.add_fault("read", fault, count=1)
            for key in items:
                value = bytes((await api.Get(pb.GetRequest(key=key))).value)
                assert block_key(value) == key
        assert svc.backend is not None
        assert svc.backend.reader is not None
        assert svc.backend.reader.stats.reread >= 3
        assert svc.backend.reader.stats.corrupt == 0
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_corrupt_bytes_on_every_aggregator_are_data_loss(
        config: Config, emulator: RunningEmulator, control: EmulatorControl, sql: Any) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    svc = await Service.start(cfg)
    items = kubo_blocks(5)
    api, channel = await packed(svc, cfg, items)
    try:
        key = sorted(items)[2]
        [(blob_id, offset)] = sql('SELECT blob_id, "offset" FROM {s}.entry_locations '
                                  "WHERE key = %s", key)
        await control.corrupt(blob_id, offset + 17)
        err = await get_error(api, key)
        assert err.code() == grpc.StatusCode.DATA_LOSS
        assert "failed verification" in (err.details() or "")
        # the rest of the pack still reads, and the loss is recorded for operators
        for other in sorted(items):
            if other != key:
                assert (await api.Get(pb.GetRequest(key=other))).value == items[other]
        assert sql("SELECT kind, key, blob_id FROM {s}.data_loss_events") == [
            ("corrupt", key, blob_id)]
        # Has and GetSize answer from the index: the key exists, its bytes are bad
        assert (await api.Has(pb.HasRequest(key=key))).exists
        resp = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=sorted(items)))
        statuses = [r.status for r in resp.results]
        assert statuses.count(pb.LOOKUP_STATUS_ERROR) == 1
        assert statuses.count(pb.LOOKUP_STATUS_FOUND) == 4
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_a_healthy_aggregator_serves_when_another_corrupts(
        config: Config, emulator: RunningEmulator, control: EmulatorControl) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    cfg = dataclasses.replace(cfg, walrus=dataclasses.replace(
        cfg.walrus, aggregators=(f"{emulator.url}/bad", f"{emulator.url}/good")))
    svc = await Service.start(cfg)
    items = {f"/plain/{i}".encode(): os.urandom(800) for i in range(6)}
    api, channel = await packed(svc, cfg, items)
    try:
        await control.add_fault("read", "bitflip", prefix="bad")
        for key, value in items.items():
            assert (await api.Get(pb.GetRequest(key=key))).value == value
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_a_vanished_blob_is_data_loss_not_not_found(
        config: Config, emulator: RunningEmulator, control: EmulatorControl, sql: Any) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    svc = await Service.start(cfg)
    items = kubo_blocks(3)
    api, channel = await packed(svc, cfg, items)
    try:
        [(blob_id,)] = sql("SELECT DISTINCT blob_id FROM {s}.entry_locations")
        await control.delete_blob(blob_id)
        for key in items:
            err = await get_error(api, key)
            assert err.code() == grpc.StatusCode.DATA_LOSS
            assert "do not know its blob" in (err.details() or "")
        assert sql("SELECT count(*) FROM {s}.data_loss_events WHERE kind = 'lost'") == [(3,)]
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_put_refuses_bytes_that_do_not_match_a_block_key(walrus_service: Service,
                                                               wapi: Any) -> None:
    value = b"hello walrus"
    key = block_key(value)
    await wapi.Put(pb.PutRequest(key=key, value=value))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await wapi.Put(pb.PutRequest(key=block_key(b"other"), value=value))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "multihash" in (err.value.details() or "")


async def test_no_aggregator_means_unavailable_for_packed_entries(
        config: Config, emulator: RunningEmulator) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    svc = await Service.start(cfg)
    items = {b"/x": b"y" * 100}
    _, channel = await packed(svc, cfg, items)
    await channel.close()
    await svc.stop(grace=0.5)
    cfg = dataclasses.replace(cfg, walrus=WalrusConfig(publishers=(emulator.url,)))
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        err = await get_error(stub(channel), b"/x")
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


def test_plan_reads_merges_nearby_entries_of_one_blob() -> None:
    def loc(key: bytes, blob: str, offset: int, size: int) -> Located:
        return Located(key, size, hashlib.sha256(key).digest(), None, 1, offset, blob)

    groups = plan_reads([loc(b"/a", "B" * 43, 0, 100), loc(b"/b", "B" * 43, 100, 50),
                         loc(b"/c", "B" * 43, 1 << 20, 10), loc(b"/d", "C" * 43, 0, 5),
                         loc(b"/e", "B" * 43, 200, 0)])
    assert [(g.blob_id[0], g.start, g.end, len(g.entries)) for g in groups] == [
        ("B", 0, 150, 2), ("B", 1 << 20, (1 << 20) + 10, 1), ("C", 0, 5, 1)]
