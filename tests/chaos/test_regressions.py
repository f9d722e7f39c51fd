"""Regression tests for the bugs the crash and fault suite found.

1. A Postgres connection that stopped answering (a black-holed link: no RST, no FIN, the
   bytes simply go nowhere) hung the call holding it forever: ``statement_timeout`` is enforced
   by the server, which never saw the statement, and TCP keepalives and the user timeout are
   answered by whatever sits in the path. Health pinged through the same path, so it stayed
   SERVING. Fix (walrusds/index/pool.py ``run``): a client-side bound of
   ``statement_timeout + connect_timeout`` on every attempt, then UNAVAILABLE.
2. ``pool_timeout`` was doubled: psycopg_pool's PoolTimeout is an OperationalError, so it was
   caught as a broken connection and the wait repeated once before UNAVAILABLE (and the
   message said "Postgres is unavailable (PoolTimeout)"). Fix: PoolTimeout is handled first.
3. ``walrusds verify`` (full mode) reported LOST for healthy entries of a pack that a flusher
   committed while the walk ran: the pack was listed while ``building`` (no blob ID) and its
   entries, read later, were judged with that stale listing. Fix
   (walrusds/audit/source.py ``pack_entries``): the pack's facts are read with its entries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import pytest

from tests.flush.conftest import walrus_config
from tests.support.pgproxy import FaultProxy, Mode
from walrusds.audit.source import AuditIndex
from walrusds.config import Config
from walrusds.emulator.runner import RunningEmulator
from walrusds.errors import IndexUnavailable
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index import Index, open_pool
from walrusds.index.packs import PackIndex
from walrusds.pack import pack_size
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


async def test_a_silent_postgres_fails_the_call_instead_of_hanging(
        config: Config, pg_dsn: str, pg_proxy: FaultProxy) -> None:
    dsn = pg_dsn.replace(f"port={pg_proxy.upstream_port}", f"port={pg_proxy.port}")
    cfg = dataclasses.replace(config.postgres, dsn=dsn, statement_timeout=1.0,
                              connect_timeout=1.0, pool_timeout=1.0, pool_min=1, pool_max=1)
    pool = await open_pool(cfg)
    try:
        index = Index(pool, config.postgres.schema)
        await index.ping()
        pg_proxy.set(Mode.BLACKHOLE)
        started = time.monotonic()
        # Before the fix this waited forever; the outer bound only keeps a regression from
        # hanging the suite.
        with pytest.raises(IndexUnavailable, match="did not answer within 2 s"):
            await asyncio.wait_for(index.ping(), 120)
        assert time.monotonic() - started < 60
        pg_proxy.set(Mode.PASS)
        await index.ping()  # the pool serves again once the link heals
    finally:
        pg_proxy.set(Mode.PASS)
        await pool.close()


async def test_waiting_for_a_connection_is_reported_as_such(
        config: Config, pg_dsn: str, pg_proxy: FaultProxy) -> None:
    dsn = pg_dsn.replace(f"port={pg_proxy.upstream_port}", f"port={pg_proxy.port}")
    cfg = dataclasses.replace(config.postgres, dsn=dsn, connect_timeout=1.0, pool_timeout=1.0,
                              pool_min=1, pool_max=1)
    pool = await open_pool(cfg)
    try:
        index = Index(pool, config.postgres.schema)
        async with pool.connection():  # the only connection is taken
            with pytest.raises(IndexUnavailable, match="no Postgres connection became"):
                await index.ping()
    finally:
        await pool.close()


async def test_health_goes_not_serving_when_postgres_goes_silent(
        config: Config, pg_dsn: str, pg_proxy: FaultProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from walrusds.server import app

    monkeypatch.setattr(app, "HEALTH_INTERVAL", 0.2)
    dsn = pg_dsn.replace(f"port={pg_proxy.upstream_port}", f"port={pg_proxy.port}")
    cfg = dataclasses.replace(config, postgres=dataclasses.replace(
        config.postgres, dsn=dsn, statement_timeout=1.0, connect_timeout=1.0,
        pool_timeout=1.0))
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            return int(reply.status)

        pg_proxy.set(Mode.BLACKHOLE)
        deadline = time.monotonic() + 90
        while await status() != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, "health stayed SERVING"
            await asyncio.sleep(0.1)
        pg_proxy.set(Mode.PASS)
        while await status() != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health did not come back"
            await asyncio.sleep(0.1)
        await stub(channel).Put(pb.PutRequest(key=b"/after", value=b"v"), timeout=30)
    finally:
        pg_proxy.set(Mode.PASS)
        await channel.close()
        await svc.stop(grace=0.5)


async def test_verify_judges_entries_by_their_pack_now_not_by_the_listing(
        config: Config, emulator: RunningEmulator, schema: str) -> None:
    cfg = walrus_config(config, emulator.url, flush=False, lease=0.2)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        api = stub(channel)
        for i in range(5):
            await api.Put(pb.PutRequest(key=f"/r/{i}".encode(), value=os.urandom(100)))
        assert svc.backend is not None
        assert svc.backend.store is not None
        packs = PackIndex(svc.pool, schema)
        claimed = await packs.claim("crashed:1", 0.2, cfg.pack.target_size, pack_size, 1 << 20)
        assert claimed is not None
        audit = AuditIndex(svc.pool, schema)
        [listed] = await audit.packs(0, 10)  # verify lists the pack while it is building...
        assert (listed.state, listed.blob_id) == ("building", None)
        await asyncio.sleep(0.3)  # ... its lease runs out, and a flusher finishes it
        flusher = Flusher(packs, svc.backend.store, cfg, PackCapacity(cfg.pack.target_size),
                          owner="test:1")
        [done] = await flusher.flush_ready()
        assert done.pack_id == listed.pack_id
        entries = await audit.pack_entries(listed, (-1, b""), 100)
        assert len(entries) == 5
        assert {(e.pack_state, e.blob_id) for e in entries} == {("stored", done.blob_id)}
    finally:
        await channel.close()
        await svc.stop(grace=0.5)
