"""The bad-input table of the reliability plan (§10), as far as it applies to the core service:
each bad input gets the documented code and a message a person understands, changes nothing,
and the server keeps serving."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc
import pytest

from tests.conftest import with_limits
from walrusds.config import Config, MiB
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def status_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except asyncio.CancelledError:
        return grpc.StatusCode.CANCELLED
    except grpc.aio.AioRpcError as exc:
        assert "Traceback" not in (exc.details() or "")
        return exc.code()
    return grpc.StatusCode.OK


async def keys(api: Any) -> list[bytes]:
    out: list[bytes] = []
    async for resp in api.Query(pb.QueryRequest(keys_only=True)):
        out.extend(bytes(e.key) for e in resp.entries)
    return out


@pytest.mark.parametrize("key", [b"", b"foo", b"a/b", b"/a/", b"/", b"/" + b"x" * 2048],
                         ids=["empty", "no-slash", "relative", "trailing-slash", "root",
                              "over-limit"])
async def test_bad_keys_are_invalid_argument_and_change_nothing(api: Any, key: bytes) -> None:
    for call in (api.Put(pb.PutRequest(key=key, value=b"v")),
                 api.Get(pb.GetRequest(key=key)),
                 api.Has(pb.HasRequest(key=key)),
                 api.GetSize(pb.GetSizeRequest(key=key)),
                 api.Delete(pb.DeleteRequest(key=key))):
        assert await status_of(call) == INVALID
    try:
        await api.Put(pb.PutRequest(key=key, value=b"v"))
    except grpc.aio.AioRpcError as exc:
        assert exc.details() and "key" in exc.details()
    assert await keys(api) == []
    # the server keeps serving
    await api.Put(pb.PutRequest(key=b"/ok", value=b"v"))
    assert (await api.Get(pb.GetRequest(key=b"/ok"))).value == b"v"


@pytest.mark.parametrize("key", [b"/a//b", b"/a/../b", b"/a/./b", b"/\x00\xff\x80",
                                 b"/a_b", b"/a%b", b"/a\\b", b"/" + os.urandom(2047)])
async def test_any_bytes_after_the_slash_are_a_key(api: Any, key: bytes) -> None:
    if key.endswith(b"/"):
        key += b"x"
    await api.Put(pb.PutRequest(key=key, value=b"value"))
    assert (await api.Get(pb.GetRequest(key=key))).value == b"value"
    assert await keys(api) == [key]


async def test_like_wildcards_in_prefixes_are_literal(api: Any) -> None:
    for k in (b"/a_b/1", b"/a%b/1", b"/a\\b/1", b"/aXb/1", b"/a-b/1", b"/a_b", b"/a_bc/1"):
        await api.Put(pb.PutRequest(key=k, value=b"v"))
    for prefix, expected in ((b"/a_b", [b"/a_b/1"]), (b"/a%b", [b"/a%b/1"]),
                             (b"/a\\b", [b"/a\\b/1"])):
        got: list[bytes] = []
        async for resp in api.Query(pb.QueryRequest(prefix=prefix, keys_only=True)):
            got.extend(bytes(e.key) for e in resp.entries)
        assert got == expected


async def test_empty_value_is_a_real_value(api: Any) -> None:
    await api.Put(pb.PutRequest(key=b"/empty", value=b""))
    assert (await api.Has(pb.HasRequest(key=b"/empty"))).exists
    assert (await api.GetSize(pb.GetSizeRequest(key=b"/empty"))).size == 0
    assert (await api.Get(pb.GetRequest(key=b"/empty"))).value == b""


async def test_value_size_limit(config: Config) -> None:
    config = with_limits(config, max_value_size=1 * MiB)
    svc = await Service.start(config)
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        await api.Put(pb.PutRequest(key=b"/at-limit", value=os.urandom(MiB)))
        assert len((await api.Get(pb.GetRequest(key=b"/at-limit"))).value) == MiB
        code = await status_of(api.Put(pb.PutRequest(key=b"/over", value=b"x" * (MiB + 1))))
        assert code == INVALID
        # far over the message limit: refused by the transport, nothing stored
        code = await status_of(api.Put(pb.PutRequest(key=b"/huge", value=b"x" * (40 * MiB))))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await keys(api) == [b"/at-limit"]
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_default_limit_accepts_16_mib_values(api: Any) -> None:
    value = os.urandom(16 * MiB)
    await api.Put(pb.PutRequest(key=b"/big", value=value))
    assert (await api.Get(pb.GetRequest(key=b"/big"))).value == value


@pytest.mark.parametrize("req", [pb.QueryRequest(limit=-1), pb.QueryRequest(offset=-1)],
                         ids=["limit", "offset"])
async def test_negative_limit_or_offset(api: Any, req: pb.QueryRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in api.Query(req):
            pass
    assert err.value.code() == INVALID
    assert "negative" in (err.value.details() or "")


async def test_offset_past_the_end_and_limit_zero(api: Any) -> None:
    for i in range(5):
        await api.Put(pb.PutRequest(key=f"/k{i}".encode(), value=b"v"))
    past = [r async for r in api.Query(pb.QueryRequest(offset=10))]
    assert sum(len(r.entries) for r in past) == 0
    everything = [r async for r in api.Query(pb.QueryRequest(limit=0))]
    assert sum(len(r.entries) for r in everything) == 5


@pytest.mark.parametrize("request_", [
    pb.QueryRequest(orders=[99]),  # type: ignore[list-item]
    pb.QueryRequest(orders=[pb.ORDER_UNSPECIFIED]),
    pb.QueryRequest(filters=[pb.Filter(key_compare=pb.KeyCompareFilter(op=99, key=b"/a"))]),  # type: ignore[arg-type]
    pb.QueryRequest(filters=[pb.Filter(value_compare=pb.ValueCompareFilter(
        op=pb.COMPARE_OP_UNSPECIFIED))]),
    pb.QueryRequest(filters=[pb.Filter()]),
], ids=["order-99", "order-unspecified", "op-99", "op-unspecified", "empty-filter"])
async def test_unknown_enum_numbers(api: Any, request_: pb.QueryRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in api.Query(request_):
            pass
    assert err.value.code() == INVALID


async def test_unknown_fields_are_ignored(service: Service) -> None:
    # HasRequest{key="/k"} followed by field 15 (varint 1), which the API does not define.
    raw = pb.HasRequest(key=b"/k").SerializeToString() + bytes([15 << 3, 1])
    channel = open_aio_channel(service.address)
    try:
        await stub(channel).Put(pb.PutRequest(key=b"/k", value=b"v"))
        call = channel.unary_unary("/walrusds.v1.Datastore/Has",
                                   response_deserializer=pb.HasResponse.FromString)
        assert (await call(raw)).exists
    finally:
        await channel.close()


async def test_batch_edge_cases(api: Any) -> None:
    async def batch(*ops: pb.BatchRequest) -> int:
        async def gen() -> Any:
            for op in ops:
                yield op

        return int((await api.Batch(gen())).applied)

    assert await batch() == 0
    def put(k: bytes, v: bytes) -> pb.BatchRequest:
        return pb.BatchRequest(put=pb.BatchPut(key=k, value=v))

    def delete(k: bytes) -> pb.BatchRequest:
        return pb.BatchRequest(delete=pb.BatchDelete(key=k))
    assert await batch(put(b"/x", b"1"), put(b"/x", b"2")) == 1
    assert (await api.Get(pb.GetRequest(key=b"/x"))).value == b"2"
    await batch(put(b"/y", b"1"), delete(b"/y"))
    assert not (await api.Has(pb.HasRequest(key=b"/y"))).exists
    # one bad op fails the whole batch and applies nothing
    code = await status_of(api.Batch(_gen([put(b"/z", b"1"), put(b"nope", b"1")])))
    assert code == INVALID
    code = await status_of(api.Batch(_gen([put(b"/z", b"1"), pb.BatchRequest()])))
    assert code == INVALID
    assert not (await api.Has(pb.HasRequest(key=b"/z"))).exists


async def _gen(items: list[Any]) -> Any:
    for item in items:
        yield item


async def test_batch_over_limits_is_refused_whole(config: Config) -> None:
    config = with_limits(config, max_batch_ops=10, max_batch_bytes=1000)
    svc = await Service.start(config)
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        ops = [pb.BatchRequest(put=pb.BatchPut(key=f"/k{i}".encode(), value=b"v"))
               for i in range(11)]
        assert await status_of(api.Batch(_gen(ops))) == grpc.StatusCode.RESOURCE_EXHAUSTED
        big = [pb.BatchRequest(put=pb.BatchPut(key=b"/big", value=b"x" * 2000))]
        assert await status_of(api.Batch(_gen(big))) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await keys(api) == []
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_cancelled_batch_commits_nothing(api: Any) -> None:
    call = api.Batch()
    await call.write(pb.BatchRequest(put=pb.BatchPut(key=b"/c", value=b"v")))
    call.cancel()
    assert await status_of(call) == grpc.StatusCode.CANCELLED
    await asyncio.sleep(0.2)
    assert not (await api.Has(pb.HasRequest(key=b"/c"))).exists


async def test_cancelled_query_stops(api: Any) -> None:
    ops = [pb.BatchRequest(put=pb.BatchPut(key=f"/q/{i:05d}".encode(), value=b"v"))
           for i in range(3000)]
    await api.Batch(_gen(ops))
    call = api.Query(pb.QueryRequest(prefix=b"/q", keys_only=True, page_size=10))
    first = await call.read()
    assert len(first.entries) == 10
    call.cancel()
    # the server is still healthy
    assert (await api.Has(pb.HasRequest(key=b"/q/00001"))).exists


async def test_expired_deadline_has_no_side_effect(api: Any) -> None:
    code = await status_of(api.Put(pb.PutRequest(key=b"/late", value=b"v"), timeout=1e-6))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)
    assert not (await api.Has(pb.HasRequest(key=b"/late"))).exists


async def test_calls_past_the_concurrency_limit_are_resource_exhausted(config: Config) -> None:
    config = with_limits(config, max_concurrent_rpcs=3)
    svc = await Service.start(config)
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        # open batches stay in flight until their stream ends
        open_calls = [api.Batch() for _ in range(3)]
        for i, call in enumerate(open_calls):
            await call.write(pb.BatchRequest(put=pb.BatchPut(key=f"/b{i}".encode(), value=b"v")))
        for _ in range(500):
            if svc.servicer.inflight == 3:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.Has(pb.HasRequest(key=b"/b0"))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "busy" in (err.value.details() or "")
        for call in open_calls:
            await call.done_writing()
            await call
        assert (await api.Has(pb.HasRequest(key=b"/b0"))).exists
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_ten_thousand_concurrent_calls(api: Any) -> None:
    await api.Put(pb.PutRequest(key=b"/a", value=b"v"))
    codes = await asyncio.gather(*(status_of(api.Has(pb.HasRequest(key=b"/a")))
                                   for _ in range(10_000)))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes.count(grpc.StatusCode.OK) > 0
    assert (await api.Has(pb.HasRequest(key=b"/a"))).exists


async def test_lookup_limits_and_modes(api: Any) -> None:
    await api.Put(pb.PutRequest(key=b"/l", value=b"v"))
    code = await status_of(api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_UNSPECIFIED,
                                                       keys=[b"/l"])))
    assert code == INVALID
    code = await status_of(api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS,
                                                       keys=[b"/l"] * 5000)))
    assert code == INVALID
    # a bad key fails on its own, the others are answered
    resp = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET,
                                             keys=[b"/l", b"bad", b"/missing"]))
    assert [r.status for r in resp.results] == [
        pb.LOOKUP_STATUS_FOUND, pb.LOOKUP_STATUS_ERROR, pb.LOOKUP_STATUS_NOT_FOUND]
    assert resp.results[0].value == b"v"
    assert resp.results[1].error_code == INVALID.value[0]


async def test_read_only_node_refuses_writes(config: Config, service: Service) -> None:
    ro = await Service.start(Config(**{**config.__dict__, "read_only": True}))
    channel = open_aio_channel(ro.address)
    api = stub(channel)
    try:
        code = await status_of(api.Put(pb.PutRequest(key=b"/w", value=b"v")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert await status_of(api.Delete(pb.DeleteRequest(key=b"/w"))) == \
            grpc.StatusCode.FAILED_PRECONDITION
        assert await status_of(api.Batch(_gen([]))) == grpc.StatusCode.FAILED_PRECONDITION
        info = await api.Info(pb.InfoRequest())
        assert info.read_only
        assert not (await api.Has(pb.HasRequest(key=b"/w"))).exists
    finally:
        await channel.close()
        await ro.stop(grace=0.5)
