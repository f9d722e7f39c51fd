"""A retrieval node on a PostgreSQL streaming replica (docs/scaling.md, "Read replicas").

Two real clusters — a primary and a hot standby made by pg_basebackup — and two ``walrusds
serve`` processes: an upload node on the primary, flushing packs to the emulator, and a
read-only retrieval node whose ``replica_dsn`` is the standby. Replay on the standby is paused
with ``pg_wal_replay_pause()`` so "before the standby replays" is a fact, not a race.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.scale.cluster import Clusters, sql, wait_replayed
from tests.scale.serve import ServeProcess
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

REPLICA = 'walrusds_replica_lookup_keys_total{answer="replica"}'
AFTER_MISS = 'walrusds_replica_lookup_keys_total{answer="primary_after_miss"}'
UNUSABLE = 'walrusds_replica_lookup_keys_total{answer="primary_replica_unusable"}'
RELOCATED = "walrusds_replica_relocated_reads_total"


def blocks(n: int) -> dict[bytes, bytes]:
    values = [os.urandom(900 + i) for i in range(n)]
    return {block_key(v): v for v in values}


async def put_batch(api: Any, items: dict[bytes, bytes]) -> None:
    async def stream() -> Any:
        for k, v in items.items():
            yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))

    await api.Batch(stream())


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def read_everything(api: Any, items: dict[bytes, bytes]) -> None:
    """Get, Has and GetSize of each key at once, and one Lookup of them all."""
    keys = list(items)
    gets, hases, sizes = await asyncio.gather(
        asyncio.gather(*(api.Get(pb.GetRequest(key=k)) for k in keys)),
        asyncio.gather(*(api.Has(pb.HasRequest(key=k)) for k in keys)),
        asyncio.gather(*(api.GetSize(pb.GetSizeRequest(key=k)) for k in keys)))
    for key, got, has, size in zip(keys, gets, hases, sizes, strict=True):
        assert bytes(got.value) == items[key]
        assert has.exists
        assert size.size == len(items[key])
    looked = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=keys))
    assert [bytes(r.value) for r in looked.results] == [items[k] for k in keys]


@pytest.mark.timeout(120)
async def test_a_retrieval_node_reads_the_standby_and_falls_back_to_the_primary(
        clusters: Clusters, emulator: RunningEmulator, control: EmulatorControl,
        tmp_path: Path, servers: list[ServeProcess]) -> None:
    primary, standby = clusters.primary, clusters.standby
    schema = f"r_{uuid.uuid4().hex[:10]}"
    common = {"WALRUSDS_POSTGRES_DSN": primary.dsn(), "WALRUSDS_POSTGRES_SCHEMA": schema,
              "WALRUSDS_WALRUS_AGGREGATORS": emulator.url}
    upload_env = {**common, "WALRUSDS_WALRUS_PUBLISHERS": emulator.url,
                  "WALRUSDS_RENEW_ENABLED": "false", "WALRUSDS_PACK_TARGET_SIZE": "16384",
                  "WALRUSDS_PACK_IDLE": "0.2", "WALRUSDS_PACK_INTERVAL": "0.1"}
    servers.append(upload_node := ServeProcess(tmp_path, "upload", upload_env))
    upload = await upload_node.ready()
    servers.append(retrieval_node := ServeProcess(tmp_path, "retrieval", {
        **common, "WALRUSDS_READ_ONLY": "true",
        "WALRUSDS_POSTGRES_REPLICA_DSN": standby.dsn(),
        # long enough that pausing replay below never makes the node skip the replica
        "WALRUSDS_POSTGRES_REPLICA_MAX_LAG": "120"}, metrics=True))
    retrieval = await retrieval_node.ready()

    async def metric(name: str) -> float:
        return (await retrieval_node.metrics()).get(name, 0.0)

    async def usable() -> bool:
        return await metric("walrusds_replica_usable") == 1.0

    async def state_is(state: str) -> bool:
        return await metric(f'walrusds_replica_state{{state="{state}"}}') == 1.0

    async def all_packed() -> bool:
        return sql(primary.dsn(), f'SELECT count(*) FROM "{schema}".entries '
                                  "WHERE pack_id IS NULL") == [(0,)]

    # an idle primary: the standby has replayed everything, so it is usable
    await until(usable, "the replica is usable")

    # 1. packed blocks the standby has replayed: answered by the replica
    old = blocks(40)
    await put_batch(upload, old)
    await until(all_packed, "everything is packed")
    wait_replayed(primary, standby)
    before = await metric(REPLICA)
    await read_everything(retrieval, old)
    assert await metric(REPLICA) - before >= len(old)

    # 2. replay paused: blocks written now are not on the standby, yet found at once
    sql(standby.dsn(), "SELECT pg_wal_replay_pause()")
    new = blocks(25)
    await put_batch(upload, new)
    misses = await metric(AFTER_MISS)
    await read_everything(retrieval, new)
    assert await metric(AFTER_MISS) - misses >= len(new)
    assert sql(standby.dsn(), f'SELECT count(*) FROM "{schema}".entries WHERE key = ANY(%s)',
               list(new)) == [(0,)], "the standby replayed after all"
    assert await usable()  # the replica was asked (and missed), not skipped

    # 3. the primary moved entries out of a pack and retired it; its blob is gone since; the
    #    paused standby still points at the old pack. (The upload node is stopped meanwhile: its
    #    flusher would pack the same members again, into the same blob ID.)
    await upload_node.stop()
    rows = sql(primary.dsn(), f'SELECT e.key, p.id, p.blob_id FROM "{schema}".entries e '
                              f'JOIN "{schema}".packs p ON p.id = e.pack_id WHERE e.key = ANY(%s)',
               list(old))
    pack_id, blob_id = rows[0][1], rows[0][2]
    moved = {bytes(k): old[bytes(k)] for k, p, _ in rows if p == pack_id}
    for key, value in moved.items():  # what a compaction that restages its entries leaves
        sql(primary.dsn(), f'UPDATE "{schema}".entries SET value = %s, pack_id = NULL, '
                           "pack_offset = NULL, staged_at = now() WHERE key = %s", value, key)
    sql(primary.dsn(), f"UPDATE \"{schema}\".packs SET state = 'retired' WHERE id = %s", pack_id)
    await control.delete_blob(str(blob_id))
    relocated = await metric(RELOCATED)
    got = await asyncio.gather(*(retrieval.Get(pb.GetRequest(key=k)) for k in moved))
    assert [bytes(g.value) for g in got] == list(moved.values())
    assert await metric(RELOCATED) - relocated >= len(moved)
    assert sql(primary.dsn(), f'SELECT count(*) FROM "{schema}".data_loss_events') == [(0,)]
    servers.append(upload_node := ServeProcess(tmp_path, "upload-again", upload_env))
    upload = await upload_node.ready()

    # 4. a Delete: visible on the retrieval node once the standby replays it
    gone = list(new)[:5]
    await asyncio.gather(*(upload.Delete(pb.DeleteRequest(key=k)) for k in gone))
    sql(standby.dsn(), "SELECT pg_wal_replay_resume()")
    wait_replayed(primary, standby)
    for key in gone:
        assert not (await retrieval.Has(pb.HasRequest(key=key))).exists
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await retrieval.Get(pb.GetRequest(key=key))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    kept = {k: v for k, v in (old | new).items() if k not in gone}
    await read_everything(retrieval, kept)

    # 5. the standby stopped: the retrieval node answers from the primary
    standby.stop("fast")
    try:
        later = blocks(10)
        await put_batch(upload, later)
        await read_everything(retrieval, kept | later)
        await until(lambda: state_is("unreachable"), "the replica is unreachable")
        skipped = await metric(UNUSABLE)
        await read_everything(retrieval, later)
        assert await metric(UNUSABLE) - skipped >= len(later)
    finally:
        standby.start()
    # 6. back: the watch finds it usable again and the replica answers
    await until(usable, "the replica is usable again")
    wait_replayed(primary, standby)
    before = await metric(REPLICA)
    await read_everything(retrieval, later)
    assert await metric(REPLICA) - before >= len(later)
    assert "Postgres replica is unreachable" in retrieval_node.log.read_text()
