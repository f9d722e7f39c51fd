"""Graceful shutdown of ``walrusds serve`` on SIGTERM while a Batch streams in and a slow client
reads a long Query: health says NOT_SERVING first (a Watch stream sees it), in-flight calls
finish or are cancelled within the grace, the process exits soon after, and the Batch the
client never heard back from is applied whole or not at all."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.chaos.conftest import Figures
from tests.chaos.invariants import Ledger, Target, assert_invariants, check_invariants, quiesce
from tests.support.serve import Processes, serve_env
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.rpc import open_aio_channel
from walrusds.v1 import datastore_pb2 as pb

GRACE = 2.0


async def test_sigterm_drains_then_exits(
        pg_dsn: str, schema: str, emulator: RunningEmulator, control: EmulatorControl,
        processes: Processes, figures: Figures) -> None:
    server = await processes.serve("draining", serve_env(pg_dsn, schema, emulator.url,
                                                         WALRUSDS_GRACE=str(GRACE)))
    api = processes.api(server)
    ledger = Ledger()
    first: dict[bytes, bytes | None] = {f"/q/{i:05d}".encode(): os.urandom(256)
                                        for i in range(3000)}
    await api.Batch(iter([pb.BatchRequest(put=pb.BatchPut(key=k, value=v))
                          for k, v in first.items() if v is not None]), timeout=60)
    ledger.write(first, ok=True)

    watch_channel = open_aio_channel(server.addr)
    statuses: list[int] = []
    watching = asyncio.Event()

    async def watch() -> None:
        try:
            async for reply in health_pb2_grpc.HealthStub(watch_channel).Watch(
                    health_pb2.HealthCheckRequest(service="")):
                statuses.append(int(reply.status))
                watching.set()
        except grpc.aio.AioRpcError:
            pass  # the server went away: the stream ends

    async def slow_query() -> str:
        try:
            # ~800 KB of entries, more than the transport buffers: the server is still
            # sending when the signal comes, and the slow consumer outlives the grace
            async for _ in api.Query(pb.QueryRequest(page_size=10), timeout=60):
                await asyncio.sleep(0.02)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return "OK"

    pending: dict[bytes, bytes | None] = {f"/late/{i:04d}".encode(): os.urandom(2048)
                                          for i in range(400)}

    async def slow_batch() -> str:
        async def stream() -> AsyncIterator[pb.BatchRequest]:
            for k, v in pending.items():
                assert v is not None
                yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))
                await asyncio.sleep(0.005)
        try:
            await api.Batch(stream(), timeout=60)
        except grpc.aio.AioRpcError as exc:
            ledger.write(pending, ok=False)
            return str(exc.code().name)
        ledger.write(pending, ok=True)
        return "OK"

    try:
        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(watching.wait(), 30)
        assert statuses == [health_pb2.HealthCheckResponse.SERVING]
        query, batch = asyncio.create_task(slow_query()), asyncio.create_task(slow_batch())
        await asyncio.sleep(0.5)
        assert server.pid is not None
        stopped = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)

        async def exit_after() -> float:
            assert server.proc is not None
            while server.proc.poll() is None:
                assert time.monotonic() - stopped < GRACE + 60, server.tail()
                await asyncio.sleep(0.02)
            return time.monotonic() - stopped

        exited = await exit_after()
        outcomes = await asyncio.wait_for(asyncio.gather(query, batch), 60)
        await asyncio.wait_for(watcher, 30)
        code = server.proc.returncode if server.proc is not None else None
    finally:
        await watch_channel.close()
    assert code == 0, server.tail()
    assert exited < GRACE + 5, (exited, server.tail())
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses, statuses  # said first
    assert outcomes[0] in ("OK", "CANCELLED", "UNAVAILABLE"), outcomes
    assert outcomes[1] in ("OK", "CANCELLED", "UNAVAILABLE"), outcomes
    figures.record("SIGTERM: seconds from the signal to exit", round(exited, 2), grace=GRACE,
                   query=outcomes[0], batch=outcomes[1])
    server.start()
    await server.wait_serving()
    target = Target(api, pg_dsn, schema, control, emulator.url)
    await quiesce(target)
    assert_invariants(await check_invariants(target, ledger))
