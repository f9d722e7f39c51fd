"""go-datastore's dstest port again, with every write packed into tiny 4 KiB packs on the
emulator before it is read: reads, lookups and queries cross many pack boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.dstest import suite
from tests.dstest.client import Client
from tests.flush.conftest import walrus_config
from walrusds.config import Config
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service

Subtest = Callable[[Client], Awaitable[None]]


@pytest.fixture
async def packed_client(config: Config, emulator: RunningEmulator,
                        sql: Any) -> AsyncIterator[Client]:
    cfg = walrus_config(config, emulator.url, flush=False, target_size=4096)
    svc = await Service.start(cfg)
    assert svc.backend is not None
    assert svc.backend.store is not None
    flusher = Flusher(PackIndex(svc.pool, cfg.postgres.schema), svc.backend.store, cfg,
                      PackCapacity(cfg.pack.target_size), owner="dstest:1")

    async def settle() -> None:
        # Packs whatever is staged, this caller's writes included (others may be writing
        # concurrently; their own settle packs theirs).
        await flusher.flush_ready(force=True)

    channel = open_aio_channel(svc.address)
    try:
        yield Client(stub(channel), settle=settle)
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


# The query-heavy basic subtests (prefix, order, limit, filter) re-write 400 entries for every
# query; their queries are all among the Combinations below, which run packed more cheaply.
PACKED_SUBTESTS = tuple(t for t in suite.BASIC_SUBTESTS + suite.BATCH_SUBTESTS
                        if t not in (suite.subtest_prefix, suite.subtest_order,
                                     suite.subtest_limit, suite.subtest_filter))


@pytest.mark.parametrize("subtest", PACKED_SUBTESTS, ids=lambda f: f.__name__)
async def test_subtest_packed(packed_client: Client, subtest: Subtest) -> None:
    await subtest(packed_client)
    await suite.clear(packed_client)


async def test_combinations_packed(packed_client: Client, sql: Any) -> None:
    """All 1151 Combinations queries against packed data: the data of each length is written
    (and packed) once, then every query of that length runs against it."""
    by_length: dict[int, list[Any]] = {}
    for q, length in suite.combinations():
        by_length.setdefault(length, []).append(q)
    assert sum(len(qs) for qs in by_length.values()) == 1151
    for length, queries in by_length.items():
        inp = suite.query_input(length)
        await suite.put_input(packed_client, inp, batched=True)
        for q in queries:
            await suite.check_query(packed_client, q, inp)
        await suite.remove_input(packed_client, inp, batched=True)
    [(packs, per_pack)] = sql("SELECT count(*), max(entry_count) FROM {s}.packs "
                              "WHERE state = 'stored'")
    assert packs >= 10  # 405 entries of ~130 packed bytes: 4 KiB packs of at most ~31
    assert per_pack <= 40  # so a query reads across many packs
