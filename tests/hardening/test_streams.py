"""Streams that end badly, and more calls than the server admits (plan §10, stream and load
rows): a Batch cancelled, cut mid-message by the network, or overtaken by its deadline applies
nothing; a cancelled or cut Query stops its work; a slow reader holds up no one else; 10,000
calls at once get RESOURCE_EXHAUSTED past ``limits.max_concurrent_rpcs`` and the server keeps
serving. After each, no call is left in flight."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import grpc

from tests.hardening.conftest import (
    CuttingProxy,
    assert_readable,
    assert_serving,
    outcome,
    running,
    seed,
    settled,
    snapshot,
)
from walrusds.config import Config
from walrusds.rpc import open_aio_channel, stub
from walrusds.v1 import datastore_pb2 as pb

# What the client library reports when its connection dies under a call (not a server status:
# grpc core says INTERNAL when the link breaks while it is writing a message).
DEAD_LINK = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)


def _op(i: int, size: int = 1000) -> pb.BatchRequest:
    return pb.BatchRequest(put=pb.BatchPut(key=f"/s/{i:06d}".encode(), value=os.urandom(size)))


async def _fill(api: Any, n: int) -> None:
    async def ops() -> AsyncIterator[pb.BatchRequest]:
        for i in range(n):
            yield pb.BatchRequest(put=pb.BatchPut(key=f"/q/{i:05d}".encode(), value=b"v" * 64))

    assert (await api.Batch(ops())).applied == n


async def test_cancelled_batch_applies_nothing(config: Config) -> None:
    async with running(config) as r:
        before = await seed(r.api)
        call = r.api.Batch()
        for i in range(50):
            await call.write(_op(i))
        call.cancel()
        assert (await outcome(call)).code == grpc.StatusCode.CANCELLED
        await settled(r.svc)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_batch_cut_mid_message_applies_nothing(config: Config) -> None:
    """The connection dies inside a BatchRequest (as behind a failing router or a killed
    client): the server never sees the end of the stream and commits nothing."""
    async with running(config) as r:
        before = await seed(r.api)
        async with CuttingProxy(r.svc.address, cut_after=60_000 + 333) as proxy:
            channel = open_aio_channel(proxy.address)
            try:
                call = stub(channel).Batch()
                try:
                    for i in range(200):  # 200 KB: far past the cut
                        await call.write(_op(i))
                    await call.done_writing()
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    pass
                got = await outcome(call)
            finally:
                await channel.close()
        assert proxy.cuts == 1
        assert got.code in DEAD_LINK, got
        await settled(r.svc)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_batch_deadline_mid_stream_applies_nothing(config: Config) -> None:
    async with running(config) as r:
        before = await seed(r.api)
        call = r.api.Batch(timeout=0.5)
        for i in range(20):
            await call.write(_op(i))
        # the client never half-closes: the deadline ends the stream
        got = await outcome(call)
        assert got.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert_readable(got.details, "eadline")
        await settled(r.svc)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_cancelled_query_stops_its_work(config: Config) -> None:
    async with running(config) as r:
        await _fill(r.api, 3000)
        before = await snapshot(r.api)
        call = r.api.Query(pb.QueryRequest(prefix=b"/q", page_size=10))
        assert len((await call.read()).entries) == 10
        call.cancel()
        assert (await outcome(call)).code == grpc.StatusCode.CANCELLED
        await settled(r.svc)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_query_cut_by_the_network_stops_its_work(config: Config) -> None:
    async with running(config) as r:
        await _fill(r.api, 3000)
        before = await snapshot(r.api)
        async with CuttingProxy(r.svc.address, cut_after=None) as proxy:
            channel = open_aio_channel(proxy.address)
            try:
                call = stub(channel).Query(pb.QueryRequest(prefix=b"/q", page_size=10))
                assert len((await call.read()).entries) == 10
                proxy.cut()
                got = await outcome(call)
                assert got.code in DEAD_LINK, got
            finally:
                await channel.close()
        await settled(r.svc)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_slow_reader_holds_up_no_one(config: Config) -> None:
    """A consumer that reads one message now and then: other calls are answered at once, and
    the server's memory stays bounded by flow control (it does not run ahead of the reader)."""
    async with running(config) as r:
        await _fill(r.api, 2000)
        call = r.api.Query(pb.QueryRequest(prefix=b"/q", page_size=1))
        for _ in range(3):
            assert len((await call.read()).entries) == 1
            started = asyncio.get_running_loop().time()
            found = await asyncio.gather(*(r.api.Has(pb.HasRequest(key=b"/q/00001"))
                                           for _ in range(50)))
            assert all(f.exists for f in found)
            assert asyncio.get_running_loop().time() - started < 5.0
            await asyncio.sleep(0.2)
        call.cancel()
        await settled(r.svc)
        await assert_serving(r.api)


async def test_ten_thousand_calls_past_the_in_flight_limit(config: Config) -> None:
    """With all 64 slots of ``limits.max_concurrent_rpcs`` taken (open Batch streams), 10,000
    Puts at once are each refused with RESOURCE_EXHAUSTED and a message that says to back off,
    and store nothing; the held calls then finish normally and the server keeps serving."""
    async with running(config, max_concurrent_rpcs=64) as r:
        before = await seed(r.api)
        held = [r.api.Batch() for _ in range(64)]
        for i, call in enumerate(held):
            await call.write(pb.BatchRequest(put=pb.BatchPut(key=f"/held/{i:02d}".encode(),
                                                             value=b"h")))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while r.svc.servicer.inflight < 64:
            assert loop.time() < deadline, r.svc.servicer.inflight
            await asyncio.sleep(0.01)
        got = await asyncio.gather(*(
            outcome(r.api.Put(pb.PutRequest(key=f"/load/{i:05d}".encode(), value=b"v")))
            for i in range(10_000)))
        assert {o.code for o in got} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert_readable(got[0].details, "server busy", "64 calls in flight", "backoff")
        assert await outcome(r.api.Has(pb.HasRequest(key=b"/seed/a"))) == got[0]
        for call in held:
            await call.done_writing()
        assert [(await call).applied for call in held] == [1] * 64
        await settled(r.svc)
        held_keys = [(f"/held/{i:02d}".encode(), b"h") for i in range(64)]
        assert await snapshot(r.api) == sorted(before + held_keys)
        await assert_serving(r.api)
