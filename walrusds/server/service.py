"""The gRPC servicer: translates walrusds.v1 messages to :class:`Datastore` calls and back.

Every handler goes through :func:`handled`, which refuses calls whose deadline already passed
(before any side effect) and turns exceptions into status codes via ``server.status``. Each call
is reported once to :class:`~walrusds.metrics.rpc.RpcMetrics` (when the service has metrics)
with the status code the client saw and its duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

from walrusds import __version__
from walrusds.datastore import FEATURES, Datastore, LookupResult
from walrusds.errors import InvalidArgument
from walrusds.query.spec import (
    CompareOp,
    Filter,
    KeyCompare,
    KeyPrefix,
    Order,
    QuerySpec,
    ValueCompare,
)
from walrusds.server.lookup_stream import LookupStreamState, lookup_stream
from walrusds.server.status import code_for, describe
from walrusds.v1 import datastore_pb2 as pb
from walrusds.v1 import datastore_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from walrusds.metrics.rpc import RpcMetrics

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# A call that arrives with less time than this left is refused as DEADLINE_EXCEEDED: it could
# not finish in time, and a write started anyway might commit after its caller gave up. grpc
# rounds the deadline it carries up (a 1 ms deadline arrives with up to ~1.6 ms left), so the
# margin is a few milliseconds, not one.
MIN_REMAINING = 0.005
# Bytes of entries per Query response message (well under the message size limit).
QUERY_MESSAGE_BYTES = 4 * 1024 * 1024

_COMPARE_OPS: dict[int, CompareOp] = {
    pb.COMPARE_OP_EQUAL: CompareOp.EQUAL,
    pb.COMPARE_OP_NOT_EQUAL: CompareOp.NOT_EQUAL,
    pb.COMPARE_OP_GREATER: CompareOp.GREATER,
    pb.COMPARE_OP_GREATER_OR_EQUAL: CompareOp.GREATER_OR_EQUAL,
    pb.COMPARE_OP_LESS: CompareOp.LESS,
    pb.COMPARE_OP_LESS_OR_EQUAL: CompareOp.LESS_OR_EQUAL,
}
_ORDERS: dict[int, Order] = {
    pb.ORDER_BY_KEY: Order.KEY,
    pb.ORDER_BY_KEY_DESCENDING: Order.KEY_DESCENDING,
    pb.ORDER_BY_VALUE: Order.VALUE,
    pb.ORDER_BY_VALUE_DESCENDING: Order.VALUE_DESCENDING,
}


def handled(fn: F) -> F:
    """Wrap a unary or client-streaming handler with deadline checks and error mapping."""
    method = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: DatastoreService, request: Any,
                      context: grpc.aio.ServicerContext) -> Any:
        with self.observed(method, context):
            await refuse_expired(context)
            await self.admit(context, method)
            try:
                return await fn(self, request, context)
            except Exception as exc:  # mapped to a status in one place
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                code, message = describe(exc, method)
                await context.abort(code, message)
            finally:
                self.inflight -= 1

    return cast(F, wrapper)


async def refuse_expired(context: grpc.aio.ServicerContext) -> None:
    """End a call whose deadline (nearly) passed before it started, before any side effect.

    gRPC carries the remaining time, not the client's clock, so a call whose deadline already
    expired arrives with a tiny remainder: less than MIN_REMAINING counts as expired.
    """
    remaining = context.time_remaining()
    if remaining is not None and remaining < MIN_REMAINING:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                            "the deadline expired before the call started")


def _code_name(context: grpc.aio.ServicerContext) -> str:
    """The status an aborted call ended with (set by ``context.abort``)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):  # some grpcio versions keep the number
        for known in grpc.StatusCode:
            if known.value[0] == code:
                return str(known.name)
    return "UNKNOWN"


class DatastoreService(pb_grpc.DatastoreServicer):
    def __init__(self, ds: Datastore, metrics: RpcMetrics | None = None) -> None:
        self.ds = ds
        self.inflight = 0
        self.metrics = metrics
        # Open LookupStreams, ended by drain_streams at shutdown.
        self.streams: set[LookupStreamState] = set()
        self.draining = False
        if metrics is not None:
            metrics.count_in_flight(lambda: self.inflight)

    def drain_streams(self) -> None:
        """Shutdown: every LookupStream answers what is in flight and ends; new ones are
        refused as UNAVAILABLE."""
        self.draining = True
        for stream in list(self.streams):
            stream.drain()

    @contextlib.contextmanager
    def observed(self, method: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """Report the call's status code and duration to the metrics, however it ends."""
        if self.metrics is None:
            yield
            return
        started = time.perf_counter()
        code = grpc.StatusCode.OK.name
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            code = grpc.StatusCode.CANCELLED.name
            raise
        except BaseException:
            code = _code_name(context)
            raise
        finally:
            self.metrics.observe(method, code, time.perf_counter() - started)

    async def admit(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """Count a call in, or refuse it past ``limits.max_concurrent_rpcs``.

        grpcio's own ``maximum_concurrent_rpcs`` is not used: its asyncio implementation
        answers CANCELLED and its counter can drift (grpc/grpc#41531).
        """
        refusal = self.try_admit(method)
        if refusal is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)

    def try_admit(self, method: str) -> str | None:
        """Count a call in and return None, or return why it is refused (RESOURCE_EXHAUSTED).

        The caller that was admitted decrements ``inflight`` when the call ends.
        """
        limit = self.ds.config.limits.max_concurrent_rpcs
        if self.inflight >= limit:
            if self.metrics is not None:
                self.metrics.refusal(method)
            return f"server busy: {limit} calls in flight; retry with backoff"
        self.inflight += 1
        return None

    @handled
    async def Put(self, request: pb.PutRequest, context: Any) -> pb.PutResponse:
        await self.ds.put(request.key, request.value)
        return pb.PutResponse()

    @handled
    async def Get(self, request: pb.GetRequest, context: Any) -> pb.GetResponse:
        return pb.GetResponse(value=await self.ds.get(request.key))

    @handled
    async def Has(self, request: pb.HasRequest, context: Any) -> pb.HasResponse:
        return pb.HasResponse(exists=await self.ds.has(request.key))

    @handled
    async def GetSize(self, request: pb.GetSizeRequest, context: Any) -> pb.GetSizeResponse:
        return pb.GetSizeResponse(size=await self.ds.get_size(request.key))

    @handled
    async def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        await self.ds.delete(request.key)
        return pb.DeleteResponse()

    @handled
    async def Lookup(self, request: pb.LookupRequest, context: Any) -> pb.LookupResponse:
        response = pb.LookupResponse()
        await self.lookup(request, response)
        return response

    # An async generator function itself (grpc.aio checks), defined in its own module.
    LookupStream = lookup_stream  # type: ignore[assignment]  # grpc.aio: async iterators

    async def lookup(self, request: pb.LookupRequest, response: pb.LookupResponse) -> None:
        """One Lookup, unary or on a LookupStream: the same validation and errors. The results
        are added to ``response`` in place, once all are known (a value is copied into the
        message once, never again through nested message copies)."""
        keys = list(request.keys)
        if request.mode in (pb.LOOKUP_MODE_HAS, pb.LOOKUP_MODE_SIZE):
            results = await self.ds.lookup_sizes(keys)
        elif request.mode == pb.LOOKUP_MODE_GET:
            results = await self.ds.lookup_values(keys)
        else:
            raise InvalidArgument(f"lookup mode {request.mode} is not one of HAS, SIZE, GET")
        add = response.results.add
        for r in results:
            _add_result(add, r)

    async def Query(self, request: pb.QueryRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[pb.QueryResponse]:
        with self.observed("Query", context):
            async with contextlib.aclosing(self._query(request, context)) as responses:
                async for response in responses:
                    yield response

    async def _query(self, request: pb.QueryRequest,
                     context: grpc.aio.ServicerContext) -> AsyncGenerator[pb.QueryResponse]:
        await refuse_expired(context)
        await self.admit(context, "Query")
        try:
            spec = query_spec(request)
            page = request.page_size or self.ds.config.limits.query_page
            page = min(page, 100_000)
            # Entries are added in place (entries.add): building QueryEntry objects and then
            # QueryResponse(entries=...) copied each one again, twice the cost per key.
            response = pb.QueryResponse()
            add = response.entries.add
            count = nbytes = 0
            async for entries in self.ds.query(spec):
                for e in entries:
                    value = e.value
                    size = len(e.key) + (len(value) if value else 0)
                    if count and (count >= page or nbytes + size > QUERY_MESSAGE_BYTES):
                        yield response
                        response = pb.QueryResponse()
                        add = response.entries.add
                        count = nbytes = 0
                    if value:
                        add(key=e.key, value=value, size=e.size)
                    else:
                        add(key=e.key, size=e.size)
                    count += 1
                    nbytes += size
            if count:
                yield response
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code, message = describe(exc, "Query")
            await context.abort(code, message)
        finally:
            self.inflight -= 1

    @handled
    async def Batch(self, request_iterator: AsyncIterator[pb.BatchRequest],
                    context: Any) -> pb.BatchResponse:
        batch = self.ds.new_batch()
        async for req in request_iterator:
            kind = req.WhichOneof("op")
            if kind == "put":
                batch.put(req.put.key, req.put.value)
            elif kind == "delete":
                batch.delete(req.delete.key)
            elif not req.puts:
                raise InvalidArgument("batch message carries neither put nor delete")
            for put in req.puts:
                batch.put(put.key, put.value)
        if context.cancelled():
            return pb.BatchResponse()
        return pb.BatchResponse(applied=await self.ds.commit(batch))

    @handled
    async def Sync(self, request: pb.SyncRequest, context: Any) -> pb.SyncResponse:
        await self.ds.sync(request.prefix)
        return pb.SyncResponse()

    @handled
    async def DiskUsage(self, request: pb.DiskUsageRequest,
                        context: Any) -> pb.DiskUsageResponse:
        return pb.DiskUsageResponse(bytes=await self.ds.disk_usage())

    @handled
    async def Info(self, request: pb.InfoRequest, context: Any) -> pb.InfoResponse:
        cfg = self.ds.config
        return pb.InfoResponse(
            version=__version__, features=list(FEATURES), read_only=cfg.read_only,
            dataset=self.ds.identity.name, dataset_id=self.ds.identity.id,
            max_key_size=cfg.limits.max_key_size, max_value_size=cfg.limits.max_value_size,
            max_message_size=cfg.max_message_size)


def query_spec(request: pb.QueryRequest) -> QuerySpec:
    """Validate a QueryRequest (proto3 enums are open: unknown numbers arrive as ints)."""
    filters: list[Filter] = []
    for i, f in enumerate(request.filters):
        kind = f.WhichOneof("filter")
        if kind == "key_compare":
            filters.append(KeyCompare(_compare_op(f.key_compare.op, i), f.key_compare.key))
        elif kind == "key_prefix":
            filters.append(KeyPrefix(f.key_prefix.prefix))
        elif kind == "value_compare":
            filters.append(ValueCompare(_compare_op(f.value_compare.op, i),
                                        f.value_compare.value))
        else:
            raise InvalidArgument(f"query filter {i} is empty")
    orders: list[Order] = []
    for i, o in enumerate(request.orders):
        if o not in _ORDERS:
            raise InvalidArgument(f"query order {i} has unknown value {o}")
        orders.append(_ORDERS[o])
    return QuerySpec(prefix=request.prefix, filters=tuple(filters), orders=tuple(orders),
                     limit=request.limit, offset=request.offset, keys_only=request.keys_only)


def _compare_op(op: int, index: int) -> CompareOp:
    try:
        return _COMPARE_OPS[op]
    except KeyError:
        raise InvalidArgument(f"query filter {index} has unknown comparison {op}") from None


def _add_result(add: Callable[..., pb.LookupResult], r: LookupResult) -> None:
    if r.error is not None:
        add(status=pb.LOOKUP_STATUS_ERROR, size=r.size, error_code=code_for(r.error).value[0],
            error_message=str(r.error))
    elif r.deferred:
        add(status=pb.LOOKUP_STATUS_DEFERRED, size=r.size)
    elif not r.found:
        add(status=pb.LOOKUP_STATUS_NOT_FOUND, size=-1)
    else:
        add(status=pb.LOOKUP_STATUS_FOUND, size=r.size, value=r.value or b"")

