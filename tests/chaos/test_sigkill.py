"""SIGKILL of ``walrusds serve`` while four clients stream large Batches (and its flusher packs
them to the emulator), several times over, each at a random moment.

After each restart: every Batch that was acknowledged is fully present, byte for byte; every
Batch whose client never heard back is all there or not there at all; and the rest of the
invariants hold (tests.chaos.invariants). The time from the restart to SERVING is recorded.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.chaos.conftest import Figures, chaos_examples
from tests.chaos.invariants import (
    Ledger,
    Target,
    assert_invariants,
    check_invariants,
    quiesce,
)
from tests.support.serve import Processes, serve_env
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

CLIENTS = 4
ROUNDS = chaos_examples(3, 0.1)  # make chaos: 20 kills, as the plan's test 1 asks


class Client:
    """Streams Batches of Kubo blocks (new keys) and deletes of its own earlier keys."""

    def __init__(self, api: Any, ledger: Ledger, rng: random.Random) -> None:
        self.api, self.ledger, self.rng = api, ledger, rng
        self.mine: list[bytes] = []
        self.acked = self.failed = 0
        self.bytes_acked = 0

    def next_batch(self) -> dict[bytes, bytes | None]:
        ops: dict[bytes, bytes | None] = {}
        for _ in range(self.rng.randint(20, 120)):
            value = os.urandom(self.rng.randint(1, 8 * 1024))
            ops[block_key(value)] = value
        if self.mine and self.rng.random() < 0.5:
            for _ in range(min(len(self.mine), self.rng.randint(1, 8))):
                ops[self.mine.pop(self.rng.randrange(len(self.mine)))] = None
        return ops

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            ops = self.next_batch()

            async def stream(ops: dict[bytes, bytes | None] = ops
                             ) -> AsyncIterator[pb.BatchRequest]:
                for k, v in ops.items():
                    yield (pb.BatchRequest(delete=pb.BatchDelete(key=k)) if v is None
                           else pb.BatchRequest(put=pb.BatchPut(key=k, value=v)))
            try:
                await self.api.Batch(stream(), timeout=60)
            except grpc.aio.AioRpcError:
                self.ledger.write(ops, ok=False)  # unknown: the server may have committed
                self.failed += 1
                return  # the server is gone; this client waits for the restart
            self.ledger.write(ops, ok=True)
            self.acked += 1
            self.bytes_acked += sum(len(v) for v in ops.values() if v is not None)
            self.mine += [k for k, v in ops.items() if v is not None]


@pytest.mark.timeout(max(600, 90 * ROUNDS))
async def test_sigkill_during_large_batches_loses_nothing(
        pg_dsn: str, schema: str, emulator: RunningEmulator, control: EmulatorControl,
        processes: Processes, figures: Figures) -> None:
    server = await processes.serve("killed", serve_env(
        pg_dsn, schema, emulator.url, WALRUSDS_PACK_TARGET_SIZE=str(1 << 20)))
    api = processes.api(server)
    ledger = Ledger()
    target = Target(api, pg_dsn, schema, control, emulator.url)
    rounds = ROUNDS
    to_serving: list[float] = []
    clients = [Client(api, ledger, random.Random(100 + i)) for i in range(CLIENTS)]
    rng = random.Random(20)
    for _ in range(rounds):
        stop = asyncio.Event()
        load = [asyncio.create_task(c.run(stop)) for c in clients]
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        server.kill()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*load), 90)
        server.start()
        to_serving.append(await server.wait_serving())
        # Nothing lost so far: the checker after every crash, not only at the end (once the
        # restarted flusher took over what the killed one was building).
        await quiesce(target)
        assert_invariants(await check_invariants(target, ledger, verify=False))
    acked = sum(c.acked for c in clients)
    assert acked > 0
    assert sum(c.failed for c in clients) > 0  # the kills did interrupt Batches
    figures.record("SIGKILL: time from restart to SERVING (s)",
                   [round(t, 2) for t in to_serving],
                   median=round(sorted(to_serving)[len(to_serving) // 2], 2),
                   max=round(max(to_serving), 2))
    figures.record("SIGKILL: Batches acknowledged / unknown", [acked, ledger.unknown],
                   mib_acked=round(sum(c.bytes_acked for c in clients) / 2**20, 1),
                   kills=rounds)
    started = time.monotonic()
    await quiesce(target)
    found = await check_invariants(target, ledger)
    assert_invariants(found)
    figures.record("SIGKILL: unjournaled blobs (uploads whose journal died with the process)",
                   found.unjournaled_blobs, orphans_reported_by_verify=found.orphans,
                   keys=found.keys, unknown_batches_applied=found.batches_applied,
                   unknown_batches_absent=found.batches_absent,
                   check_seconds=round(time.monotonic() - started, 1), parts=found.seconds)
