"""Read-after-write across nodes: two ``walrusds serve`` processes on one Postgres schema and
one emulator, both flushing.

A Put acknowledged by one node is readable on the other at once (all read-after-write goes
through Postgres: the documented staleness bound is 0); a Delete acknowledged by one node is
seen by every node at once; and both hold while the flushers move entries from staging into
packs between the write and the read, and while a re-Put restages a packed key.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import grpc

from tests.chaos.conftest import Figures
from tests.chaos.invariants import Ledger, Target, assert_invariants, check_invariants, quiesce
from tests.support.serve import Processes, serve_env
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

ROUNDS = 150


async def get(api: Any, key: bytes) -> bytes | None:
    try:
        return bytes((await api.Get(pb.GetRequest(key=key), timeout=30)).value)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return None


async def sees(api: Any, key: bytes, value: bytes | None) -> None:
    """Get, Has and GetSize on one node all show ``value`` (None: absent)."""
    assert await get(api, key) == value
    assert (await api.Has(pb.HasRequest(key=key), timeout=30)).exists == (value is not None)
    if value is not None:
        assert (await api.GetSize(pb.GetSizeRequest(key=key), timeout=30)).size == len(value)


async def packed(sql: Any, key: bytes, within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        [(pack_id,)] = sql("SELECT pack_id FROM {s}.entries WHERE key = %s", key)
        if pack_id is not None:
            return
        assert loop.time() < deadline, "the flushers did not pack the key"
        await asyncio.sleep(0.05)


async def racing_reads(writer: Any, reader: Any, key: bytes, value: bytes) -> int:
    """Put on ``writer`` while ``reader`` reads the key over and over: every read sees the key
    absent or complete, and the first read after the acknowledgement sees it. Reads made."""
    async def write() -> None:
        await writer.Put(pb.PutRequest(key=key, value=value), timeout=30)

    put = asyncio.create_task(write())
    reads = 0
    while not put.done():
        assert await get(reader, key) in (None, value)
        reads += 1
    await put
    await sees(reader, key, value)
    return reads + 1


async def test_put_on_one_node_get_on_the_other_at_once(
        pg_dsn: str, schema: str, emulator: RunningEmulator, control: EmulatorControl,
        processes: Processes, sql: Any, figures: Figures) -> None:
    env = serve_env(pg_dsn, schema, emulator.url, WALRUSDS_PACK_IDLE="0.05",
                    WALRUSDS_PACK_INTERVAL="0.02")
    a, b = await asyncio.gather(processes.serve("a", env), processes.serve("b", env))
    nodes = [processes.api(a), processes.api(b)]
    ledger = Ledger()
    rng = random.Random(5)
    for i in range(ROUNDS):
        writer, reader = (nodes[0], nodes[1]) if i % 2 == 0 else (nodes[1], nodes[0])
        value = os.urandom(rng.randint(1, 8192))
        key = block_key(value) if i % 3 else f"/plain/{i}".encode()
        await writer.Put(pb.PutRequest(key=key, value=value), timeout=30)
        ledger.put(key, value, ok=True)
        await sees(reader, key, value)  # at once: no wait, no retry
        if i % 5 == 4:  # a key written earlier, likely packed by now, deleted on the other node
            old = rng.choice(sorted(k for k, v in ledger.possible.items() if v != {None}))
            await reader.Delete(pb.DeleteRequest(key=old), timeout=30)
            ledger.delete(old, ok=True)
            await asyncio.gather(sees(writer, old, None), sees(reader, old, None))
    packed_reads = 0
    for i in range(20):
        # the flusher packs between the write and the read: Walrus serves the read
        value = os.urandom(3000 + i)
        key = f"/packed/{i}".encode()
        await nodes[i % 2].Put(pb.PutRequest(key=key, value=value), timeout=30)
        ledger.put(key, value, ok=True)
        await packed(sql, key)
        await sees(nodes[(i + 1) % 2], key, value)
        packed_reads += 1
        # a re-Put on the other node restages the packed key; both nodes see the new bytes
        newer = os.urandom(2000 + i)
        await nodes[(i + 1) % 2].Put(pb.PutRequest(key=key, value=newer), timeout=30)
        ledger.put(key, newer, ok=True)
        await asyncio.gather(*(sees(n, key, newer) for n in nodes))
        if i % 4 == 0:
            await nodes[i % 2].Delete(pb.DeleteRequest(key=key), timeout=30)
            ledger.delete(key, ok=True)
            await asyncio.gather(*(sees(n, key, None) for n in nodes))
    raced = 0
    for i in range(30):
        value = os.urandom(rng.randint(100, 60_000))
        key = block_key(value)
        raced += await racing_reads(nodes[i % 2], nodes[(i + 1) % 2], key, value)
        ledger.put(key, value, ok=True)
    figures.record("multi-node: reads after a write on the other node", ROUNDS + 2 * 20,
                   of_them_from_packs=packed_reads, reads_racing_a_put=raced,
                   staleness_bound_ms=0)
    for node in nodes:
        target = Target(node, pg_dsn, schema, control, emulator.url)
        await quiesce(target)
        assert_invariants(await check_invariants(target, ledger, verify=node is nodes[0]))
