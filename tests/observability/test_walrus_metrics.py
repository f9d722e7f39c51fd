"""Walrus-side metrics against the emulator: the staged backlog and pack gauges from Postgres,
flush outcomes, Walrus requests by outcome after injected faults, verification failures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.flush.conftest import walrus_config
from tests.observability.conftest import scrape, scrape_until, with_metrics
from walrusds.config import Config
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key


def blocks(n: int, size: int = 1000) -> dict[bytes, bytes]:
    values = [os.urandom(size) for _ in range(n)]
    return {block_key(v): v for v in values}


async def _batch(items: dict[bytes, bytes]) -> AsyncIterator[pb.BatchRequest]:
    for k, v in items.items():
        yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))


@pytest.fixture
async def wsvc(config: Config, emulator: RunningEmulator) -> AsyncIterator[Service]:
    """A service that packs to the emulator with its own (hooked) flusher; triggers are slow,
    so packs are made when a test calls ``flush_ready(force=True)``."""
    cfg = with_metrics(walrus_config(config, emulator.url, idle=3600.0, interval=3600.0))
    svc = await Service.start(cfg)
    try:
        yield svc
    finally:
        await svc.stop(grace=0.5)


@pytest.fixture
async def wapi(wsvc: Service) -> AsyncIterator[Any]:
    channel = open_aio_channel(wsvc.address)
    try:
        yield stub(channel)
    finally:
        await channel.close()


async def flush(svc: Service) -> None:
    assert svc.backend is not None
    assert svc.backend.flusher is not None
    await svc.backend.flusher.flush_ready(force=True)


async def test_index_gauges_follow_the_backlog_and_the_packs(wsvc: Service, wapi: Any) -> None:
    items = blocks(12)  # under the 16 KiB pack target: the flusher waits for the test
    await wapi.Batch(_batch(items))
    staged = sum(len(v) for v in items.values())
    got = await scrape_until(wsvc, lambda s: s.value("walrusds_staged_entries") == 12)
    assert got.value("walrusds_staged_bytes") == staged
    assert got.value("walrusds_staged_oldest_age_seconds") >= 0
    assert got.value("walrusds_packs", state="stored") == 0

    await flush(wsvc)
    got = await scrape_until(wsvc, lambda s: s.value("walrusds_staged_entries") == 0)
    packs = got.value("walrusds_packs", state="stored")
    assert packs == 1
    assert got.value("walrusds_staged_oldest_age_seconds") == 0
    assert got.value("walrusds_pack_entries_avg") == 12
    assert got.value("walrusds_pack_live_bytes") == staged
    assert got.value("walrusds_pack_dead_bytes") == 0
    # The flusher's own counters, from its hook.
    assert got.value("walrusds_flushes_total", outcome="stored") == packs
    assert got.value("walrusds_flushed_entries_total") == 12
    pack_bytes = got.value("walrusds_pack_bytes")
    assert got.value("walrusds_pack_fill_ratio") == pytest.approx(pack_bytes / 16384, abs=1e-3)
    assert got.value("walrusds_flushed_pack_bytes_total") == pack_bytes
    assert got.value("walrusds_walrus_stored_bytes_total") == pack_bytes
    assert got.value("walrusds_walrus_requests_total", operation="store", outcome="ok") == packs
    assert got.value("walrusds_walrus_request_duration_seconds_count", operation="store",
                     outcome="ok") == packs
    # The epoch is known from the store answers; nothing is due with 3 epochs bought.
    assert got.value("walrusds_walrus_epoch") >= 0
    assert got.value("walrusds_pack_min_epochs_left") == 3
    assert got.value("walrusds_packs_renewal_due") == 0

    for key, value in list(items.items())[:5]:
        assert (await wapi.Get(pb.GetRequest(key=key))).value == value
    got = await scrape(wsvc)
    assert got.value("walrusds_walrus_requests_total", operation="read", outcome="ok") >= 1
    assert got.value("walrusds_read_entries_total") == 5
    assert got.value("walrusds_read_whole_packs_total") == 0  # under 8 reads of one pack
    assert got.value("walrusds_read_verification_failures_total", kind="corrupt") == 0


async def test_walrus_outcomes_after_injected_faults(
        wsvc: Service, wapi: Any, control: EmulatorControl) -> None:
    await control.add_fault("store", "status", status=503, count=1)
    await wapi.Batch(_batch(blocks(4)))
    await flush(wsvc)  # the retry layer stores after the 503
    got = await scrape(wsvc)
    assert got.value("walrusds_walrus_requests_total", operation="store",
                     outcome="unavailable") == 1
    assert got.value("walrusds_walrus_requests_total", operation="store", outcome="ok") == 1
    assert got.value("walrusds_flushes_total", outcome="stored") == 1

    # A publisher that refuses the pack size: the flush learns a smaller size and goes on.
    await control.set_max_body_size(6 * 1024)
    await wapi.Batch(_batch(blocks(8)))
    await flush(wsvc)
    got = await scrape(wsvc)
    assert got.value("walrusds_walrus_requests_total", operation="store",
                     outcome="too_large") >= 1
    assert got.value("walrusds_flushes_total", outcome="too_large") >= 1
    assert got.value("walrusds_flushes_total", outcome="stored") >= 3


async def test_verification_failures_and_rereads_are_counted(
        wsvc: Service, wapi: Any, control: EmulatorControl, sql: Any) -> None:
    items = blocks(3)
    await wapi.Batch(_batch(items))
    await flush(wsvc)
    keys = list(items)
    # Corruption on the first read heals on a re-read.
    await control.add_fault("read", "bitflip", count=1)
    assert (await wapi.Get(pb.GetRequest(key=keys[0]))).value == items[keys[0]]
    got = await scrape(wsvc)
    assert got.value("walrusds_read_rereads_total") >= 1
    assert got.value("walrusds_read_verification_failures_total", kind="corrupt") == 0

    # The blob is gone while indexed: DATA_LOSS, counted as lost, recorded in the index.
    (blob_id,) = {r[0] for r in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored'")}
    await control.delete_blob(blob_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await wapi.Get(pb.GetRequest(key=keys[1]))
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    got = await scrape_until(wsvc, lambda s: s.value("walrusds_data_loss_events",
                                                     kind="lost") == 1)
    assert got.value("walrusds_read_verification_failures_total", kind="lost") == 1
    assert got.value("walrusds_walrus_requests_total", operation="read",
                     outcome="not_found") >= 1
    assert blob_id not in got.text  # blob IDs are never labels


async def test_a_node_without_walrus_shows_only_zeros_for_walrus(msvc: Service) -> None:
    got = await scrape(msvc)
    for outcome in ("ok", "unavailable", "too_large", "not_found"):
        assert got.value("walrusds_walrus_requests_total", operation="store",
                         outcome=outcome) == 0
    assert got.value("walrusds_flushes_total", outcome="stored") == 0


async def test_renewal_due_then_done(
        config: Config, emulator: RunningEmulator, control: EmulatorControl) -> None:
    """A pack comes due as the epoch advances; the renewal worker's hooks count the extension.
    The worker's loop made its first pass at start (nothing known yet) and then waits an hour:
    the test runs the next pass itself."""
    cfg = with_metrics(walrus_config(config, emulator.url, idle=3600.0, interval=3600.0))
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        assert svc.backend is not None and svc.backend.renewer is not None
        await stub(channel).Batch(_batch(blocks(3)))
        await flush(svc)
        got = await scrape_until(
            svc, lambda s: s.value("walrusds_packs", state="stored") == 1
            and s.value("walrusds_renewal_passes_total", outcome="ok") == 1)
        epoch = got.value("walrusds_walrus_epoch")
        assert got.value("walrusds_packs_renewal_due") == 0
        # Learn a later epoch the way walrusds does (a store answer): the first pack is due.
        await control.advance_epoch(1)
        await stub(channel).Batch(_batch(blocks(1)))
        await flush(svc)
        got = await scrape_until(svc, lambda s: s.value("walrusds_walrus_epoch") == epoch + 1
                                 and s.value("walrusds_packs_renewal_due") == 1)
        assert got.value("walrusds_pack_min_epochs_left") == 2

        done = await svc.backend.renewer.renew_once()
        assert [d.action.value for d in done] == ["extend"]
        got = await scrape_until(svc, lambda s: s.value("walrusds_packs_renewal_due") == 0)
        assert got.value("walrusds_renewal_actions_total", action="extend", outcome="done") == 1
        assert got.value("walrusds_renewal_actions_total", action="extend",
                         outcome="failed") == 0
        assert got.value("walrusds_pack_min_epochs_left") == 3
        assert got.value("walrusds_renewal_last_success_timestamp_seconds") > 0
    finally:
        await channel.close()
        await svc.stop(grace=0.5)
