"""The invariant checker itself: silent on a healthy dataset, and each kind of damage it must
see (a lost key, a resurrected one, a torn Batch, wrong counters, a stray claim, overlapping
entries, a vanished or corrupted blob, an orphan) makes it name the right invariant. A checker
that never fails proves nothing; these are its negative controls."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.chaos.invariants import Findings, Ledger, Target, check_invariants
from tests.flush.conftest import walrus_config
from walrusds.client import HttpBlobStore
from walrusds.config import Config
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key


@dataclass
class Rig:
    api: Any
    target: Target
    ledger: Ledger
    flusher: Flusher
    sql: Callable[..., list[tuple[Any, ...]]]
    control: EmulatorControl

    async def put(self, key: bytes, value: bytes) -> None:
        await self.api.Put(pb.PutRequest(key=key, value=value))
        self.ledger.put(key, value, ok=True)

    async def check(self) -> Findings:
        return await check_invariants(self.target, self.ledger)


@pytest.fixture
async def rig(config: Config, emulator: RunningEmulator, control: EmulatorControl,
              pg_dsn: str, schema: str, sql: Any) -> AsyncIterator[Rig]:
    cfg = walrus_config(config, emulator.url, flush=False)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        assert svc.backend is not None
        assert svc.backend.store is not None
        flusher = Flusher(PackIndex(svc.pool, schema), svc.backend.store, cfg,
                          PackCapacity(cfg.pack.target_size), owner="checker:1")
        rig = Rig(stub(channel), Target(stub(channel), pg_dsn, schema, control, emulator.url),
                  Ledger(), flusher, sql, control)
        for i in range(12):  # one pack of Kubo blocks, one of plain keys, and staged ones
            value = os.urandom(500 + i)
            await rig.put(block_key(value), value)
        await flusher.flush_ready(force=True)
        for i in range(6):
            await rig.put(f"/plain/{i}".encode(), os.urandom(300))
        await flusher.flush_ready(force=True)
        for i in range(4):
            await rig.put(f"/staged/{i}".encode(), os.urandom(200))
        yield rig
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


def names(found: Findings) -> set[str]:
    return {v.split(":", 1)[0] for v in found.violations}


async def test_a_healthy_dataset_passes(rig: Rig) -> None:
    await rig.api.Delete(pb.DeleteRequest(key=b"/plain/0"))
    rig.ledger.delete(b"/plain/0", ok=True)
    found = await rig.check()
    assert found.violations == []
    assert found.keys == 21
    assert rig.sql("SELECT count(*) FROM {s}.packs WHERE state = 'stored'") == [(2,)]


async def test_a_lost_key_is_i1(rig: Rig) -> None:
    rig.sql("DELETE FROM {s}.entries WHERE key = %s", b"/plain/1")
    assert "I1" in names(await rig.check())


async def test_a_resurrected_key_is_i6(rig: Rig) -> None:
    [(value,)] = rig.sql("SELECT value FROM {s}.entries WHERE key = %s", b"/staged/1")
    await rig.api.Delete(pb.DeleteRequest(key=b"/staged/1"))
    rig.ledger.delete(b"/staged/1", ok=True)
    rig.sql("INSERT INTO {s}.entries (key, size, digest, value, staged_at) "
            "VALUES (%s, length(%s), sha256(%s), %s, now())", b"/staged/1", value, value, value)
    assert "I6" in names(await rig.check())


async def test_an_unknown_key_is_flagged_unless_foreign(rig: Rig) -> None:
    await rig.api.Put(pb.PutRequest(key=b"/probe/1", value=b"x"))
    assert "I5/I6" in names(await rig.check())
    rig.ledger.foreign = (b"/probe/",)
    assert (await rig.check()).violations == []


async def test_a_torn_batch_is_i7(rig: Rig) -> None:
    ops = {b"/batch/a": b"1", b"/batch/b": b"2", b"/plain/2": None}
    rig.ledger.write(ops, ok=False)  # the client never heard back
    await rig.api.Put(pb.PutRequest(key=b"/batch/a", value=b"1"))  # half of it "applied"
    assert "I7" in names(await rig.check())


async def test_an_unknown_batch_applied_whole_or_not_at_all_passes(rig: Rig) -> None:
    rig.ledger.write({b"/batch/a": b"1", b"/plain/2": None}, ok=False)
    rig.ledger.write({b"/batch/c": b"3", b"/plain/3": None}, ok=False)

    async def stream() -> AsyncIterator[pb.BatchRequest]:
        yield pb.BatchRequest(put=pb.BatchPut(key=b"/batch/a", value=b"1"))
        yield pb.BatchRequest(delete=pb.BatchDelete(key=b"/plain/2"))

    await rig.api.Batch(stream())
    assert (await rig.check()).violations == []


async def test_a_wrong_read_is_caught_as_it_happens(rig: Rig) -> None:
    rig.ledger.read(b"/plain/3", b"not what was written")
    assert "I4/I7" in names(await rig.check())


async def test_wrong_live_counters(rig: Rig) -> None:
    rig.sql("UPDATE {s}.packs SET live_entries = live_entries + 1 "
            "WHERE id = (SELECT min(id) FROM {s}.packs)")
    assert "counters" in names(await rig.check())


async def test_a_staged_entry_claimed_by_a_stored_pack(rig: Rig) -> None:
    rig.sql("UPDATE {s}.entries SET claim_pack_id = (SELECT min(id) FROM {s}.packs) "
            "WHERE key = %s", b"/staged/2")
    assert "claims" in names(await rig.check())


async def test_a_quarantined_entry_is_not_a_stray_claim(rig: Rig) -> None:
    [(pack,)] = rig.sql("INSERT INTO {s}.packs (state) VALUES ('abandoned') RETURNING id")
    rig.sql("UPDATE {s}.entries SET claim_pack_id = %s WHERE key = %s", pack, b"/staged/2")
    assert "claims" in names(await rig.check())  # no corrupt event recorded: a stray claim
    rig.sql("INSERT INTO {s}.data_loss_events (kind, key, detail) "
            "VALUES ('corrupt', %s, 'test')", b"/staged/2")
    assert "claims" not in names(await rig.check())


async def test_overlapping_entries_are_i3(rig: Rig) -> None:
    rig.sql("UPDATE {s}.entries SET pack_offset = 0 WHERE key = %s", b"/plain/4")
    assert "I3" in names(await rig.check())


async def test_a_vanished_blob_is_i2(rig: Rig) -> None:
    [(blob,)] = rig.sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored' "
                        "ORDER BY id LIMIT 1")
    await rig.control.delete_blob(blob)
    found = names(await rig.check())
    assert "I2" in found
    assert "I1/I4" in found  # the reads fail, and verify counts the loss


async def test_an_expired_blob_under_live_entries_is_i2(rig: Rig) -> None:
    await rig.control.advance_epoch(3)  # walrus.epochs = 3: every blob has ended
    assert "I2" in names(await rig.check())


async def test_a_corrupted_blob_is_caught_by_reads_and_verify(rig: Rig) -> None:
    [(blob,)] = rig.sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored' "
                        "ORDER BY id LIMIT 1")
    await rig.control.corrupt(blob, 10)
    assert "I1/I4" in names(await rig.check())


async def test_orphans_are_reported_by_verify(rig: Rig, emulator: RunningEmulator) -> None:
    # A paid upload nobody recorded (a crash before the journal), then journaled as an
    # abandoned build; and a stored pack whose keys were all deleted.
    store = HttpBlobStore([emulator.url], [emulator.url])
    try:
        stray = await store.store(os.urandom(2000), epochs=3)
    finally:
        await store.aclose()
    found = await rig.check()
    assert (found.violations, found.unjournaled_blobs, found.orphans) == ([], 1, 0)
    rig.sql("INSERT INTO {s}.packs (state, blob_id) VALUES ('abandoned', %s)", stray.blob_id)
    rig.sql("INSERT INTO {s}.packs (state, blob_id) VALUES ('abandoned', %s)", "A" * 43)
    for i in range(6):
        await rig.api.Delete(pb.DeleteRequest(key=f"/plain/{i}".encode()))
        rig.ledger.delete(f"/plain/{i}".encode(), ok=True)
    found = await rig.check()
    # the blob the emulator never had is no orphan: nothing is paid for it
    assert (found.violations, found.unjournaled_blobs, found.orphans) == ([], 0, 2)
