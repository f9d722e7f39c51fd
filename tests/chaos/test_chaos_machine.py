"""A Hypothesis state machine with fault rules, the invariants checked after every step.

The system under test is a real ``walrusds serve`` process on the private PostgreSQL cluster,
writing to the emulator over HTTP. Besides the datastore verbs, rules pack what is staged (a
flusher driven by the test, so packing happens between chosen steps), SIGKILL the server and
start it again (optionally in the middle of a Batch), crash-restart Postgres, corrupt the next
read of a packed entry with the emulator's bit-flip fault, advance the Walrus epoch (then learn
it from a store and run renewal, as the renewal loop would), and run renewal on its own. The
model is the ledger of tests.chaos.invariants: what each key may hold.

``make test`` runs 6 examples of 15 steps from a fixed seed (WALRUSDS_MACHINE_SEED, default 7,
chosen so that every fault rule runs: the test says so if a change to the machine stops
that); ``make chaos`` runs WALRUSDS_CHAOS_EXAMPLES fresh random examples.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar, TypeVar

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.chaos.conftest import Figures, PrivateCluster, chaos_examples
from tests.chaos.invariants import Ledger, Target, assert_invariants, check_invariants
from tests.support.serve import Processes, ServeProcess, serve_env
from walrusds.client import open_blob_store
from walrusds.client.protocol import BlobStore
from walrusds.config import (
    Config,
    MetricsConfig,
    PackConfig,
    PostgresConfig,
    RenewConfig,
    WalrusConfig,
)
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index import open_pool
from walrusds.index.packs import PackIndex
from walrusds.reader import WalrusReader
from walrusds.renew import RenewWorker
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

T = TypeVar("T")
PACK_TARGET = 16 * 1024
EXAMPLES = chaos_examples(6)
STEPS = 15
CHAOS = bool(os.environ.get("WALRUSDS_CHAOS_EXAMPLES", "").strip())
SEED = int(os.environ.get("WALRUSDS_MACHINE_SEED", "7"))
FAULTS = ("kill -9", "kill -9 during a Batch", "restart Postgres", "corrupt the next read",
          "advance epoch", "renew")
DEADLINE = 30.0

# Plain keys take any bytes (empty ones too); block keys name their bytes' multihash.
BLOCK_VALUES = [bytes([i]) * (300 * i + 1) for i in range(1, 7)]
BLOCK_KEYS = [block_key(v) for v in BLOCK_VALUES]
PLAIN_KEYS = [f"/k/{c}".encode() for c in "abcdefgh"] + [b"/k/a/b", b"/k/\x00\xff"]
plain_ops = st.tuples(st.sampled_from(PLAIN_KEYS), st.binary(max_size=3000))
block_ops = st.sampled_from(range(len(BLOCK_KEYS))).map(lambda i: (BLOCK_KEYS[i],
                                                                   BLOCK_VALUES[i]))
any_key = st.sampled_from(PLAIN_KEYS + BLOCK_KEYS)


class Rig:
    """The server process, the test's own flusher and renewal worker, and the model."""

    def __init__(self, cluster: PrivateCluster, schema: str, emulator: RunningEmulator,
                 control: EmulatorControl, processes: Processes) -> None:
        self.cluster, self.schema, self.control = cluster, schema, control
        self.emulator_url = emulator.url
        self.processes = processes
        self.config = Config(
            postgres=PostgresConfig(dsn=cluster.dsn(), schema=schema, pool_min=1, pool_max=4,
                                    statement_timeout=10, connect_timeout=2, pool_timeout=10),
            walrus=WalrusConfig(publishers=(emulator.url,), aggregators=(emulator.url,),
                                epochs=3, deadline=20.0),
            pack=dataclasses.replace(PackConfig(), target_size=PACK_TARGET, flush=False,
                                     lease=2.0),
            renew=RenewConfig(enabled=False, margin_epochs=2, epochs=6, dead_threshold=0.3,
                              epoch_seconds=1e9, lease=5.0),
            metrics=MetricsConfig(listen="")).validate()
        self.env = serve_env(
            cluster.dsn(), schema, emulator.url, WALRUSDS_PACK_FLUSH="0",
            WALRUSDS_PACK_TARGET_SIZE=str(PACK_TARGET),
            WALRUSDS_POSTGRES_STATEMENT_TIMEOUT="10", WALRUSDS_POSTGRES_CONNECT_TIMEOUT="2",
            WALRUSDS_POSTGRES_POOL_TIMEOUT="10")
        self.server: ServeProcess | None = None
        self.api: Any = None
        self.store: BlobStore | None = None
        self.flusher: Flusher | None = None
        self.worker: RenewWorker | None = None
        self.pool: Any = None
        self.ledger = Ledger()
        self.steps: dict[str, int] = {}
        self.serial = 0

    async def start(self) -> None:
        self.server = await self.processes.serve("machine", self.env)
        self.api = self.processes.api(self.server)
        self.pool = await open_pool(self.config.postgres)
        self.store = open_blob_store(self.config.walrus)
        assert self.store is not None
        self.flusher = Flusher(PackIndex(self.pool, self.schema), self.store, self.config,
                               PackCapacity(PACK_TARGET), owner="machine:flusher")
        self.worker = RenewWorker(self.pool, self.store, self.config, owner="machine:renew",
                                  reader=WalrusReader(self.store))

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.store is not None:
            await self.store.aclose()

    def count(self, step: str) -> None:
        self.steps[step] = self.steps.get(step, 0) + 1

    def target(self) -> Target:
        return Target(self.api, self.cluster.dsn(), self.schema, self.control,
                      self.emulator_url)

    # -- steps (coroutines on the test's event loop) ------------------------------------------

    async def reset(self) -> None:
        """A fresh model: delete every key (packs from earlier examples stay, as on a node)."""
        await self.control.clear_faults()
        keys = [bytes(e.key) async for r in self.api.Query(pb.QueryRequest(keys_only=True),
                                                            timeout=DEADLINE)
                for e in r.entries]
        if keys:
            await self.batch({k: None for k in keys}, strict=True)
        self.ledger = Ledger()

    async def batch(self, ops: dict[bytes, bytes | None], *, strict: bool = False) -> bool:
        async def stream() -> AsyncIterator[pb.BatchRequest]:
            for k, v in ops.items():
                yield (pb.BatchRequest(delete=pb.BatchDelete(key=k)) if v is None
                       else pb.BatchRequest(put=pb.BatchPut(key=k, value=v)))
        try:
            await self.api.Batch(stream(), timeout=DEADLINE)
        except grpc.aio.AioRpcError:
            if strict:
                raise
            self.ledger.write(ops, ok=False)
            return False
        self.ledger.write(ops, ok=True)
        return True

    async def put(self, key: bytes, value: bytes) -> None:
        await self.api.Put(pb.PutRequest(key=key, value=value), timeout=DEADLINE)
        self.ledger.put(key, value, ok=True)

    async def delete(self, key: bytes) -> None:
        await self.api.Delete(pb.DeleteRequest(key=key), timeout=DEADLINE)
        self.ledger.delete(key, ok=True)

    async def get(self, key: bytes) -> None:
        try:
            value: bytes | None = bytes(
                (await self.api.Get(pb.GetRequest(key=key), timeout=DEADLINE)).value)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            value = None
        self.ledger.read(key, value, settle=True)

    async def flush(self) -> None:
        assert self.flusher is not None
        await self.flusher.flush_ready(force=True)

    async def kill_and_restart(self, during_batch: bool, after: float) -> None:
        assert self.server is not None
        if during_batch:
            self.serial += 1
            ops: dict[bytes, bytes | None] = {
                f"/big/{self.serial}/{i}".encode(): os.urandom(6000) for i in range(60)}
            call = asyncio.create_task(self.batch(ops))
            await asyncio.sleep(after)
            self.server.kill()
            await call  # acknowledged before the kill, or unknown
        else:
            self.server.kill()
        self.server.start()
        await self.server.wait_serving()

    async def restart_postgres(self) -> None:
        await asyncio.to_thread(self.cluster.stop_immediate)
        await asyncio.to_thread(self.cluster.start)
        await self.serving_again()
        await self.pool.check()  # the test's own pool drops connections the crash broke

    async def serving_again(self, within: float = 60.0) -> None:
        """Until a few calls in a row succeed: pooled connections the crash broke fail once
        each (a call retries once), then the server answers as before."""
        deadline = time.monotonic() + within
        good = 0
        while good < 6:
            assert time.monotonic() < deadline, "the server did not serve again"
            try:
                await self.api.Has(pb.HasRequest(key=b"/probe"), timeout=DEADLINE)
                good += 1
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                good = 0
                await asyncio.sleep(0.1)

    async def corrupt_next_read(self, pick: int) -> bool:
        """Flip a bit in the next read of one packed entry's blob; the read path must notice,
        read again and return the right bytes (a transient corruption heals)."""
        async with await psycopg.AsyncConnection.connect(self.cluster.dsn(),
                                                         autocommit=True) as conn:
            cur = await conn.execute(
                f'SELECT e.key, p.blob_id FROM "{self.schema}".entries e JOIN '
                f'"{self.schema}".packs p ON p.id = e.pack_id WHERE e.size > 0 ORDER BY e.key')
            rows = await cur.fetchall()
        if not rows:
            return False
        key, blob_id = rows[pick % len(rows)]
        fault = await self.control.add_fault("aggregator", "bitflip", count=1, blob_id=blob_id)
        try:
            await self.get(bytes(key))  # the right bytes, or the ledger check fails
            [rule] = [f for f in await self.control.faults() if f["id"] == fault]
            assert rule["fired"] == 1, rule  # the read did go to Walrus and was corrupted
        finally:
            await self.control.remove_fault(fault)
        return True

    async def advance_epoch(self) -> None:
        """The network moves on an epoch; the node learns it from its next store (a probe
        write, packed) and renewal acts on what is due, as the renewal loop would."""
        assert self.worker is not None
        await self.control.advance_epoch(1)
        self.serial += 1
        probe = f"/probe/{self.serial}".encode()
        await self.put(probe, os.urandom(100))
        await self.flush()
        epoch, _ = await self.worker.plan()
        assert epoch == await self.control.epoch()
        await self.worker.renew_once()
        await self.delete(probe)

    async def renew(self) -> None:
        assert self.worker is not None
        await self.worker.renew_once()

    async def check(self) -> None:
        assert_invariants(await check_invariants(self.target(), self.ledger))


class ChaosMachine(RuleBasedStateMachine):
    rig: ClassVar[Rig]
    loop: ClassVar[asyncio.AbstractEventLoop]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)

    @initialize()
    def fresh(self) -> None:
        self.epochs = 0
        self.run(self.rig.reset())

    # -- the datastore -----------------------------------------------------------------------

    @rule(op=plain_ops | block_ops)
    def put(self, op: tuple[bytes, bytes]) -> None:
        self.rig.count("put")
        self.run(self.rig.put(*op))

    @rule(key=any_key)
    def get(self, key: bytes) -> None:
        self.rig.count("get")
        self.run(self.rig.get(key))

    @rule(key=any_key)
    def delete(self, key: bytes) -> None:
        self.rig.count("delete")
        self.run(self.rig.delete(key))

    @rule(ops=st.lists(st.one_of(plain_ops, block_ops, any_key.map(lambda k: (k, None))),
                       min_size=1, max_size=8))
    def batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        self.rig.count("batch")
        assert self.run(self.rig.batch(dict(ops)))

    @rule()
    def flush(self) -> None:
        self.rig.count("flush")
        self.run(self.rig.flush())

    # -- faults --------------------------------------------------------------------------------

    @rule(during_batch=st.booleans(), after=st.floats(0.0, 0.3))
    def kill_server(self, during_batch: bool, after: float) -> None:
        self.rig.count("kill -9 during a Batch" if during_batch else "kill -9")
        self.run(self.rig.kill_and_restart(during_batch, after))

    @rule()
    def restart_postgres(self) -> None:
        self.rig.count("restart Postgres")
        self.run(self.rig.restart_postgres())

    @rule(pick=st.integers(0, 1000))
    def corrupt_next_read(self, pick: int) -> None:
        if self.run(self.rig.corrupt_next_read(pick)):
            self.rig.count("corrupt the next read")

    @precondition(lambda self: self.epochs < 6)
    @rule()
    def advance_epoch(self) -> None:
        self.epochs += 1
        self.rig.count("advance epoch")
        self.run(self.rig.advance_epoch())

    @rule()
    def renew(self) -> None:
        self.rig.count("renew")
        self.run(self.rig.renew())

    @invariant()
    def invariants_hold(self) -> None:
        self.run(self.rig.check())


@pytest.mark.timeout(max(600, 30 * EXAMPLES))
async def test_faults_never_break_the_invariants(
        private_cluster: PrivateCluster, private_schema: str, emulator: RunningEmulator,
        control: EmulatorControl, processes: Processes, figures: Figures) -> None:
    rig = Rig(private_cluster, private_schema, emulator, control, processes)
    await rig.start()
    ChaosMachine.rig = rig
    ChaosMachine.loop = asyncio.get_running_loop()
    examples = EXAMPLES
    # make test: the same examples every run (a fixed cost, and every fault rule runs);
    # make chaos: fresh random ones
    machine = ChaosMachine if CHAOS else seed(SEED)(ChaosMachine)
    try:
        await asyncio.to_thread(
            run_state_machine_as_test, machine,
            settings=settings(max_examples=examples, stateful_step_count=STEPS, deadline=None,
                              suppress_health_check=list(HealthCheck)))
    finally:
        await rig.close()
    figures.record("state machine: steps run", rig.steps, examples=examples)
    if not CHAOS:
        missing = set(FAULTS) - set(rig.steps)
        assert not missing, (f"seed {SEED} no longer reaches {sorted(missing)} (the machine "
                             "changed): pick a seed that does with WALRUSDS_MACHINE_SEED=N")
