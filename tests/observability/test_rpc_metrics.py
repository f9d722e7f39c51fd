"""gRPC metrics scraped over real HTTP: counts and latency histograms by method and status code,
calls in flight, admission refusals, cancelled streams, one registry per service."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.conftest import with_limits
from tests.observability.conftest import Scrape, metrics_url, scrape, scrape_until, with_metrics
from walrusds.config import Config
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


def _buckets(got: Scrape, method: str, code: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram series, in bound order."""
    out = []
    for labels in got.labelsets("walrusds_rpc_duration_seconds_bucket"):
        if labels.get("method") == method and labels.get("code") == code:
            le = labels["le"]
            out.append((float(le), got.value("walrusds_rpc_duration_seconds_bucket", **labels)))
    return sorted(out)


async def test_calls_are_counted_and_timed_by_method_and_code(msvc: Service, mapi: Any) -> None:
    for i in range(3):
        await mapi.Put(pb.PutRequest(key=f"/obs/{i}".encode(), value=b"v" * i))
    await mapi.Get(pb.GetRequest(key=b"/obs/1"))
    await mapi.Has(pb.HasRequest(key=b"/obs/none"))
    assert await _code(mapi.Get(pb.GetRequest(key=b"/obs/none"))) == grpc.StatusCode.NOT_FOUND
    assert await _code(mapi.Get(pb.GetRequest(key=b""))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await _code(mapi.Put(pb.PutRequest(key=b"", value=b"x"))) == (
        grpc.StatusCode.INVALID_ARGUMENT)
    keys = [bytes(e.key) async for r in mapi.Query(pb.QueryRequest(prefix=b"/obs"))
            for e in r.entries]
    assert len(keys) == 3

    got = await scrape(msvc)
    requests = "walrusds_rpc_requests_total"
    assert got.value(requests, method="Put", code="OK") == 3
    assert got.value(requests, method="Put", code="INVALID_ARGUMENT") == 1
    assert got.value(requests, method="Get", code="OK") == 1
    assert got.value(requests, method="Get", code="NOT_FOUND") == 1
    assert got.value(requests, method="Get", code="INVALID_ARGUMENT") == 1
    assert got.value(requests, method="Has", code="OK") == 1
    assert got.value(requests, method="Query", code="OK") == 1
    assert math.isnan(got.get(requests, method="Delete", code="OK"))  # never called
    # Labels are method and code only: no key ever becomes a label.
    assert {frozenset(ls) for ls in got.labelsets(requests)} == {frozenset({"method", "code"})}
    assert "/obs/" not in got.text

    for method, code, n in (("Put", "OK", 3), ("Get", "NOT_FOUND", 1),
                            ("Get", "INVALID_ARGUMENT", 1), ("Query", "OK", 1)):
        buckets = _buckets(got, method, code)
        assert buckets[-1] == (math.inf, float(n))
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "cumulative buckets never decrease"
        assert dict(buckets)[60.0] == n  # every call moved the buckets up to a minute
        assert got.value("walrusds_rpc_duration_seconds_count", method=method, code=code) == n
        assert got.value("walrusds_rpc_duration_seconds_sum", method=method, code=code) > 0
    assert got.value("walrusds_rpc_in_flight") == 0
    assert got.value("walrusds_rpc_in_flight_limit") == msvc.config.limits.max_concurrent_rpcs
    assert got.value("walrusds_health_serving") == 1


async def test_in_flight_calls_and_admission_refusals(config: Config) -> None:
    svc = await Service.start(with_metrics(with_limits(config, max_concurrent_rpcs=1)))
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    release = asyncio.Event()

    async def slow_batch() -> AsyncIterator[pb.BatchRequest]:
        yield pb.BatchRequest(put=pb.BatchPut(key=b"/held", value=b"1"))
        await release.wait()

    try:
        batch = asyncio.ensure_future(api.Batch(slow_batch()))
        await scrape_until(svc, lambda s: s.value("walrusds_rpc_in_flight") == 1)
        code = await _code(api.Get(pb.GetRequest(key=b"/held")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert (await batch).applied == 1
        got = await scrape_until(svc, lambda s: s.value("walrusds_rpc_in_flight") == 0)
        assert got.value("walrusds_rpc_admission_refusals_total", method="Get") == 1
        assert got.value("walrusds_rpc_requests_total", method="Get",
                         code="RESOURCE_EXHAUSTED") == 1
        assert got.value("walrusds_rpc_requests_total", method="Batch", code="OK") == 1
    finally:
        release.set()
        await channel.close()
        await svc.stop(grace=0.5)


async def test_a_cancelled_query_counts_as_cancelled(msvc: Service, mapi: Any) -> None:
    await mapi.Batch(_puts(200))
    call = mapi.Query(pb.QueryRequest(prefix=b"/", page_size=1))
    first = await call.read()
    assert len(first.entries) == 1
    call.cancel()
    got = await scrape_until(
        msvc, lambda s: s.get("walrusds_rpc_requests_total", 0, method="Query",
                              code="CANCELLED") == 1)
    assert got.value("walrusds_rpc_in_flight") == 0
    assert math.isnan(got.get("walrusds_rpc_requests_total", method="Query", code="OK"))


async def _puts(n: int) -> AsyncIterator[pb.BatchRequest]:
    for i in range(n):
        yield pb.BatchRequest(put=pb.BatchPut(key=f"/q/{i:04d}".encode(), value=b"x"))


async def test_two_services_in_one_process_keep_their_own_registries(
        config: Config, msvc: Service, mapi: Any) -> None:
    other = await Service.start(with_metrics(config))
    try:
        assert metrics_url(other) != metrics_url(msvc)
        await mapi.Put(pb.PutRequest(key=b"/only-first", value=b"x"))
        mine, theirs = await scrape(msvc), await scrape(other)
        assert mine.value("walrusds_rpc_requests_total", method="Put", code="OK") == 1
        assert math.isnan(theirs.get("walrusds_rpc_requests_total", method="Put", code="OK"))
    finally:
        await other.stop(grace=0.5)
