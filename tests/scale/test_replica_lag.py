"""The replica's lag bound and Query routing, with in-process services on the two clusters.

An upload service on the primary and a read-only service whose replica is the standby, with
``replica_max_lag = 2`` and ``replica_queries = true``. Replay is paused on the standby, so the
replica falls behind by as much as the test wants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tests.scale.cluster import Clusters, sql, wait_replayed
from walrusds.config import Config, MetricsConfig, PostgresConfig
from walrusds.index.replica_watch import LAGGING, USABLE
from walrusds.query.spec import QuerySpec
from walrusds.server.app import Service
from walrusds.verify import block_key


async def until(check: Callable[[], bool], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pair(clusters: Clusters) -> AsyncIterator[tuple[Service, Service]]:
    upload_config = Config(
        listen="127.0.0.1:0", grace=0.5, metrics=MetricsConfig(listen=""),
        postgres=PostgresConfig(dsn=clusters.primary.dsn(), schema=f"l_{uuid.uuid4().hex[:10]}",
                                pool_min=1, pool_max=4)).validate()
    reader_config = dataclasses.replace(
        upload_config, read_only=True,
        postgres=dataclasses.replace(upload_config.postgres, replica_dsn=clusters.standby.dsn(),
                                     replica_max_lag=2.0, replica_queries=True)).validate()
    upload = await Service.start(upload_config)
    try:
        reader = await Service.start(reader_config)
        try:
            yield upload, reader
        finally:
            await reader.stop(grace=0.1)
    finally:
        await upload.stop(grace=0.1)


async def all_keys(service: Service) -> set[bytes]:
    return {e.key async for page in service.datastore.query(QuerySpec(keys_only=True))
            for e in page}


async def test_a_lagging_replica_is_skipped_and_deletes_show_within_the_bound(
        clusters: Clusters, pair: tuple[Service, Service]) -> None:
    upload, reader = pair
    assert reader.replica is not None
    watch, stats = reader.replica.watch, reader.replica.reads.stats
    first, second = b"first block", b"second block"
    k1, k2 = block_key(first), block_key(second)
    await upload.datastore.put(k1, first)
    wait_replayed(clusters.primary, clusters.standby)
    await until(lambda: watch.status.state == USABLE, "the replica is usable")
    assert await all_keys(reader) == {k1}
    assert stats.queries_replica == 1

    sql(clusters.standby.dsn(), "SELECT pg_wal_replay_pause()")
    try:
        await upload.datastore.put(k2, second)
        assert await reader.datastore.get(k2) == second  # read-after-write: the primary
        # a Query on the replica may lag: it does not list k2 yet
        assert await all_keys(reader) == {k1}
        # within the bound the replica may still report k1 after this Delete; past it, never
        await upload.datastore.delete(k1)
        await until(lambda: watch.status.state == LAGGING, "the replica is marked lagging")
        assert watch.status.lag is not None and watch.status.lag > 2.0
        # past the bound every lookup and Query goes to the primary
        assert not await reader.datastore.has(k1)
        assert await all_keys(reader) == {k2}
        assert stats.queries_primary >= 1
    finally:
        sql(clusters.standby.dsn(), "SELECT pg_wal_replay_resume()")
    await until(lambda: watch.status.state == USABLE, "the replica caught up")
    assert not await reader.datastore.has(k1)
    assert await reader.datastore.get_size(k2) == len(second)
    assert await all_keys(reader) == {k2}


async def test_a_replica_of_something_else_is_never_read(
        clusters: Clusters, pair: tuple[Service, Service]) -> None:
    """The "replica" is the primary itself (not in recovery): the watch refuses it."""
    upload, reader = pair
    assert reader.replica is not None
    watch = reader.replica.watch
    watch.replica = upload.pool  # pretend replica_dsn named a server that is not a standby
    await watch.check()
    assert watch.status.state == "not a standby"
    assert not watch.usable
    await upload.datastore.put(block_key(b"x"), b"x")
    assert await reader.datastore.has(block_key(b"x"))
    assert reader.replica.reads.stats.replica == 0
