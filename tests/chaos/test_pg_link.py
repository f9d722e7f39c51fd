"""A broken link between ``walrusds serve`` and PostgreSQL, through the fault proxy.

Put, Get, Has and Batch during a black hole or a reset end with UNAVAILABLE, bounded by the
configured timeouts (``statement_timeout + connect_timeout`` for a connection that stops
answering, ``pool_timeout`` for one that cannot be had, plus the driver's few seconds to give
up on a cancel), never a hang; a Batch is never applied in part; health goes NOT_SERVING while
Postgres is out of reach and SERVING again after; and the same process serves again once the
link heals. A cut after N bytes, at many N, leaves every Batch whole or absent; added latency
changes nothing but time. The invariant checker runs after each test.
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
from tests.chaos.invariants import Ledger, Target, assert_invariants, check_invariants
from tests.support.pgproxy import FaultProxy, Mode
from tests.support.serve import SERVING, Processes, ServeProcess, serve_env
from walrusds.v1 import datastore_pb2 as pb

# Short Postgres timeouts so that a fault resolves in seconds; calls get a client deadline far
# beyond them, so the code a call ends with is the server's, not the client's.
TIMEOUTS = {"WALRUSDS_POSTGRES_STATEMENT_TIMEOUT": "3", "WALRUSDS_POSTGRES_CONNECT_TIMEOUT": "2",
            "WALRUSDS_POSTGRES_POOL_TIMEOUT": "3", "WALRUSDS_POSTGRES_POOL_MIN": "2",
            "WALRUSDS_POSTGRES_POOL_MAX": "6"}
BOUND = 3 + 2 + 10 + 5  # the answer timeout, the driver's cancel and wait, and slack
CLIENT_DEADLINE = 120.0
NOT_SERVING_WITHIN = 90.0


class Link:
    def __init__(self, server: ServeProcess, api: Any, ledger: Ledger, target: Target) -> None:
        self.server, self.api, self.ledger, self.target = server, api, ledger, target
        self.serial = 0

    def ops(self, n: int, size: int = 2000) -> dict[bytes, bytes]:
        out = {}
        for _ in range(n):
            self.serial += 1
            out[f"/link/{self.serial:06d}".encode()] = os.urandom(size)
        return out

    async def batch(self, ops: dict[bytes, bytes | None]) -> grpc.StatusCode:
        async def stream() -> AsyncIterator[pb.BatchRequest]:
            for k, v in ops.items():
                yield (pb.BatchRequest(delete=pb.BatchDelete(key=k)) if v is None
                       else pb.BatchRequest(put=pb.BatchPut(key=k, value=v)))
        try:
            await self.api.Batch(stream(), timeout=CLIENT_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            self.ledger.write(ops, ok=False)
            return exc.code()
        self.ledger.write(ops, ok=True)
        return grpc.StatusCode.OK

    async def put(self, key: bytes, value: bytes) -> grpc.StatusCode:
        try:
            await self.api.Put(pb.PutRequest(key=key, value=value), timeout=CLIENT_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            self.ledger.put(key, value, ok=False)
            return exc.code()
        self.ledger.put(key, value, ok=True)
        return grpc.StatusCode.OK

    async def get(self, key: bytes) -> grpc.StatusCode:
        try:
            got = await self.api.Get(pb.GetRequest(key=key), timeout=CLIENT_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        self.ledger.read(key, bytes(got.value))
        return grpc.StatusCode.OK

    async def has(self, key: bytes) -> grpc.StatusCode:
        try:
            await self.api.Has(pb.HasRequest(key=key), timeout=CLIENT_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    async def health_becomes(self, status: int, within: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            if await self.server.health(wait=5) == status:
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise AssertionError(f"health did not become {status} within {within} s: "
                             f"{self.server.tail()}")

    async def serves_again(self, within: float = 60.0) -> float:
        """Seconds until a Put and a Get succeed on the same process (no restart)."""
        started = time.monotonic()
        key, value = next(iter(self.ops(1).items()))
        while True:
            assert self.server.running(), self.server.tail()
            if await self.put(key, value) == grpc.StatusCode.OK:
                assert await self.get(key) == grpc.StatusCode.OK
                return time.monotonic() - started
            assert time.monotonic() - started < within, self.server.tail()
            await asyncio.sleep(0.2)

    async def check(self) -> None:
        assert_invariants(await check_invariants(self.target, self.ledger))


@pytest.fixture
async def link(pg_dsn: str, schema: str, pg_proxy: FaultProxy, processes: Processes) -> Link:
    dsn = pg_dsn.replace(f"port={pg_proxy.upstream_port}", f"port={pg_proxy.port}")
    server = await processes.serve("linked", serve_env(dsn, schema, **TIMEOUTS))
    link = Link(server, processes.api(server), Ledger(), Target(None, pg_dsn, schema))
    link.target.api = link.api  # the checker reads through the service, SQL goes direct
    assert await link.batch(dict(link.ops(50))) == grpc.StatusCode.OK
    return link


async def outage_calls(link: Link) -> dict[str, tuple[grpc.StatusCode, float]]:
    """Put, Get, Has and two Batches at once; each call's code and seconds."""
    old = next(iter(link.ledger.possible))

    async def timed(name: str, call: Any) -> tuple[str, tuple[grpc.StatusCode, float]]:
        started = time.monotonic()
        code = await call
        return name, (code, time.monotonic() - started)

    key, value = next(iter(link.ops(1).items()))
    pairs = await asyncio.gather(
        timed("Put", link.put(key, value)), timed("Get", link.get(old)),
        timed("Has", link.has(old)), timed("Batch", link.batch(dict(link.ops(200)))),
        timed("Batch+delete", link.batch({**link.ops(20), old: None})))
    return dict(pairs)


@pytest.mark.parametrize("mode", [Mode.BLACKHOLE, Mode.RESET])
async def test_an_unreachable_postgres_gives_unavailable_then_serves_again(
        mode: Mode, link: Link, pg_proxy: FaultProxy, figures: Figures) -> None:
    pid = link.server.pid
    pg_proxy.set(mode)
    health = asyncio.create_task(
        link.health_becomes(health_status("NOT_SERVING"), NOT_SERVING_WITHIN))
    calls = await outage_calls(link)
    for name, (code, seconds) in calls.items():
        assert code == grpc.StatusCode.UNAVAILABLE, (name, code)
        assert seconds < BOUND, (name, seconds)  # bounded by the configured timeouts
        figures.record(f"{mode.value}: {name} failed after (s)", round(seconds, 2))
    figures.record(f"{mode.value}: health NOT_SERVING after (s)", round(await health, 2))
    pg_proxy.set(Mode.PASS)
    figures.record(f"{mode.value}: serving again after the link healed (s)",
                   round(await link.serves_again(), 2))
    await link.health_becomes(SERVING, NOT_SERVING_WITHIN)
    assert link.server.pid == pid  # the same process, never restarted
    await link.check()


async def test_a_cut_at_any_byte_leaves_batches_whole_or_absent(
        link: Link, pg_proxy: FaultProxy, figures: Figures) -> None:
    rng = random.Random(7)
    outcomes: dict[str, int] = {}
    for _ in range(chaos_examples(12, 0.25)):
        # A Batch of 40 ops × 2 KiB is about 85 KB on the wire: cut anywhere in or around it.
        pg_proxy.set(Mode.CUT, after_bytes=rng.randrange(0, 120_000))
        ops: dict[bytes, bytes | None] = dict(link.ops(40))
        if link.ledger.possible:
            ops[rng.choice(sorted(link.ledger.possible))] = None
        code = await link.batch(ops)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE), code
        outcomes[code.name] = outcomes.get(code.name, 0) + 1
        pg_proxy.set(Mode.PASS)
        await link.serves_again()
    figures.record("cut: Batch outcomes", outcomes)
    await link.check()  # every Batch whose outcome was unknown is whole or absent


async def test_latency_changes_nothing_but_time(link: Link, pg_proxy: FaultProxy) -> None:
    pg_proxy.set(Mode.DELAY, delay=0.05)
    assert await link.batch(dict(link.ops(30))) == grpc.StatusCode.OK
    key, value = next(iter(link.ops(1).items()))
    assert await link.put(key, value) == grpc.StatusCode.OK
    assert await link.get(key) == grpc.StatusCode.OK
    pg_proxy.set(Mode.PASS)
    await link.check()


def health_status(name: str) -> int:
    from grpc_health.v1 import health_pb2

    return int(health_pb2.HealthCheckResponse.ServingStatus.Value(name))
