"""Batch messages that carry several puts (the "batch-puts" feature)."""

from __future__ import annotations

from typing import Any

import grpc

from walrusds.v1 import datastore_pb2 as pb


async def _gen(items: list[pb.BatchRequest]) -> Any:
    for item in items:
        yield item


def _puts(*pairs: tuple[bytes, bytes]) -> list[pb.BatchPut]:
    return [pb.BatchPut(key=k, value=v) for k, v in pairs]


async def test_info_reports_batch_puts(api: Any) -> None:
    assert "batch-puts" in (await api.Info(pb.InfoRequest())).features


async def test_puts_apply_in_stream_order_with_single_ops(api: Any) -> None:
    await api.Put(pb.PutRequest(key=b"/old", value=b"x"))
    ops = [
        pb.BatchRequest(puts=_puts((b"/a", b"1"), (b"/b", b"1"), (b"/a", b"2"))),
        pb.BatchRequest(delete=pb.BatchDelete(key=b"/b")),
        # `op` first, then `puts`, in order: /old is deleted, then written again
        pb.BatchRequest(delete=pb.BatchDelete(key=b"/old"), puts=_puts((b"/old", b"y"))),
        pb.BatchRequest(puts=_puts((b"/c", b""))),
    ]
    assert (await api.Batch(_gen(ops))).applied == 4  # /a, /b, /old, /c after de-duplication
    assert (await api.Get(pb.GetRequest(key=b"/a"))).value == b"2"
    assert not (await api.Has(pb.HasRequest(key=b"/b"))).exists
    assert (await api.Get(pb.GetRequest(key=b"/old"))).value == b"y"
    assert (await api.GetSize(pb.GetSizeRequest(key=b"/c"))).size == 0


async def test_one_bad_put_in_a_message_applies_nothing(api: Any) -> None:
    ops = [pb.BatchRequest(puts=_puts((b"/ok1", b"1"))),
           pb.BatchRequest(puts=_puts((b"/ok2", b"1"), (b"no-slash", b"1")))]
    try:
        await api.Batch(_gen(ops))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no-slash" in (err.details() or "") or "key" in (err.details() or "")
    else:
        raise AssertionError("a Batch with an invalid key was accepted")
    for key in (b"/ok1", b"/ok2"):
        assert not (await api.Has(pb.HasRequest(key=key))).exists


async def test_large_and_small_values_in_one_batch_apply_together(api: Any) -> None:
    # Values of 128 KiB and more are staged one statement each, smaller ones in arrays: one
    # transaction all the same.
    big = [bytes([i]) * (200 * 1024 + i) for i in range(3)]
    await api.Put(pb.PutRequest(key=b"/big-old", value=big[0]))
    ops = [pb.BatchRequest(puts=_puts((b"/big0", big[0]), (b"/small0", b"s0"))),
           pb.BatchRequest(puts=_puts((b"/big1", big[1]), (b"/big0", big[2]))),
           pb.BatchRequest(delete=pb.BatchDelete(key=b"/big-old"))]
    assert (await api.Batch(_gen(ops))).applied == 4
    assert (await api.Get(pb.GetRequest(key=b"/big0"))).value == big[2]
    assert (await api.Get(pb.GetRequest(key=b"/big1"))).value == big[1]
    assert (await api.Get(pb.GetRequest(key=b"/small0"))).value == b"s0"
    assert not (await api.Has(pb.HasRequest(key=b"/big-old"))).exists

    bad = [pb.BatchRequest(puts=_puts((b"/big2", big[1]), (b"/big0", big[0]))),
           pb.BatchRequest(puts=_puts((b"no-slash", b"x")))]
    try:
        await api.Batch(_gen(bad))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        raise AssertionError("a Batch with an invalid key was accepted")
    assert not (await api.Has(pb.HasRequest(key=b"/big2"))).exists
    assert (await api.Get(pb.GetRequest(key=b"/big0"))).value == big[2]
