"""A go-datastore-shaped Python client over the gRPC API, planning queries like the Go shim:
known filters and orders are pushed to the service; anything else (OrderByFunction, custom
filters) is fetched with the prefix only and applied client-side with the naive helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from tests.dstest import naive
from walrusds.v1 import datastore_pb2 as pb

_OPS = {"==": pb.COMPARE_OP_EQUAL, "!=": pb.COMPARE_OP_NOT_EQUAL, ">": pb.COMPARE_OP_GREATER,
        ">=": pb.COMPARE_OP_GREATER_OR_EQUAL, "<": pb.COMPARE_OP_LESS,
        "<=": pb.COMPARE_OP_LESS_OR_EQUAL}
_ORDERS = {"key": pb.ORDER_BY_KEY, "key-desc": pb.ORDER_BY_KEY_DESCENDING,
           "value": pb.ORDER_BY_VALUE, "value-desc": pb.ORDER_BY_VALUE_DESCENDING}


class NotFoundError(Exception):
    pass


class Client:
    def __init__(self, api: Any, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.api = api
        # Called before the first read after writes, when a test wants what was written
        # packed (moved out of staging) before it is read.
        self.settle = settle
        self._dirty = False

    async def _before_read(self) -> None:
        if self._dirty and self.settle is not None:
            self._dirty = False
            await self.settle()

    async def put(self, key: bytes, value: bytes) -> None:
        await self.api.Put(pb.PutRequest(key=key, value=value))
        self._dirty = True

    async def get(self, key: bytes) -> bytes:
        await self._before_read()
        try:
            return bytes((await self.api.Get(pb.GetRequest(key=key))).value)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError(key) from None
            raise

    async def has(self, key: bytes) -> bool:
        await self._before_read()
        return bool((await self.api.Has(pb.HasRequest(key=key))).exists)

    async def get_size(self, key: bytes) -> int:
        await self._before_read()
        try:
            return int((await self.api.GetSize(pb.GetSizeRequest(key=key))).size)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return -1
            raise

    async def delete(self, key: bytes) -> None:
        await self.api.Delete(pb.DeleteRequest(key=key))

    async def sync(self, prefix: bytes) -> None:
        await self.api.Sync(pb.SyncRequest(prefix=prefix))

    async def batch(self, ops: Sequence[tuple[bytes, bytes | None]]) -> int:
        async def stream() -> Any:
            for key, value in ops:
                if value is None:
                    yield pb.BatchRequest(delete=pb.BatchDelete(key=key))
                else:
                    yield pb.BatchRequest(put=pb.BatchPut(key=key, value=value))

        resp = await self.api.Batch(stream())
        self._dirty = True
        return int(resp.applied)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        await self._before_read()
        resp = await self.api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=keys))
        out: dict[bytes, bytes] = {}
        for key, r in zip(keys, resp.results, strict=True):
            if r.status == pb.LOOKUP_STATUS_FOUND:
                out[key] = bytes(r.value)
            elif r.status == pb.LOOKUP_STATUS_DEFERRED:
                out[key] = await self.get(key)
            elif r.status == pb.LOOKUP_STATUS_ERROR:
                raise AssertionError(f"lookup of {key!r} failed: {r.error_message}")
        return out

    async def query(self, q: naive.Query) -> list[naive.Entry]:
        await self._before_read()
        pushable = all(isinstance(f, (naive.KeyCompare, naive.KeyPrefix, naive.ValueCompare))
                       for f in q.filters) and all(isinstance(o, str) for o in q.orders)
        req = pb.QueryRequest(prefix=q.prefix, keys_only=q.keys_only,
                              returns_sizes=q.returns_sizes)
        if pushable:
            req.limit, req.offset = q.limit, q.offset
            for f in q.filters:
                if isinstance(f, naive.KeyCompare):
                    req.filters.add(key_compare=pb.KeyCompareFilter(op=_OPS[f.op], key=f.key))
                elif isinstance(f, naive.KeyPrefix):
                    req.filters.add(key_prefix=pb.KeyPrefixFilter(prefix=f.prefix))
                else:
                    req.filters.add(value_compare=pb.ValueCompareFilter(op=_OPS[f.op],
                                                                        value=f.value))
            req.orders.extend(_ORDERS[o] for o in q.orders)  # type: ignore[index]
        else:
            req.keys_only = False  # the client needs values to apply the rest itself
        entries: list[naive.Entry] = []
        async for resp in self.api.Query(req):
            for e in resp.entries:
                entries.append(naive.Entry(bytes(e.key), None if q.keys_only and pushable
                                           else bytes(e.value), int(e.size)))
        if pushable:
            return entries
        rest = naive.Query(filters=q.filters, orders=q.orders, limit=q.limit, offset=q.offset)
        out = naive.naive_query_apply(rest, entries)
        if q.keys_only:
            for e in out:
                e.value = None
        return out
