"""The service answers the basic go-datastore calls over gRPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from walrusds.v1 import datastore_pb2 as pb


async def test_put_get_has_size_delete(api: Any) -> None:
    await api.Put(pb.PutRequest(key=b"/foo", value=b"bar"))
    assert (await api.Get(pb.GetRequest(key=b"/foo"))).value == b"bar"
    assert (await api.Has(pb.HasRequest(key=b"/foo"))).exists
    assert (await api.GetSize(pb.GetSizeRequest(key=b"/foo"))).size == 3
    await api.Delete(pb.DeleteRequest(key=b"/foo"))
    assert not (await api.Has(pb.HasRequest(key=b"/foo"))).exists
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.Get(pb.GetRequest(key=b"/foo"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
