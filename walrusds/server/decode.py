"""Requests that do not parse: INVALID_ARGUMENT with a plain message, not grpcio's UNKNOWN.

grpcio deserializes a request before any handler runs; when the bytes are not a valid protobuf
message (corrupt, truncated, or sent by a client with another schema), it answers UNKNOWN
"Unexpected <class 'DecodeError'>" and logs a traceback. :class:`RequestDecoding` swaps the
deserializer of every ``walrusds.v1.Datastore`` method for one that returns an
:class:`Undecodable` marker instead of raising, and refuses the call (or, in a client stream
such as Batch or LookupStream, the stream) as :class:`~walrusds.errors.InvalidArgument`, mapped
to a status in the one usual place (``server.status``). A LookupStream message that does not
parse has no readable id to answer, so the stream answers the requests in flight and then ends
with INVALID_ARGUMENT. Nothing has been changed when that happens: a unary
call never reached its handler, and a Batch is applied only after its whole stream was read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from walrusds.errors import InvalidArgument
from walrusds.server.status import describe

if TYPE_CHECKING:
    from walrusds.metrics.rpc import RpcMetrics

__all__ = ["RequestDecoding", "Undecodable"]

SERVICE_PREFIX = "/walrusds.v1.Datastore/"


@dataclass(frozen=True)
class Undecodable:
    """What the lenient deserializer returns for bytes that are not a valid message."""

    type_name: str
    size: int

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            f"the request is not a valid {self.type_name} message ({self.size} bytes that do "
            "not parse as protobuf: corrupt, truncated, or from an incompatible client); "
            "nothing was changed")


def _lenient(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    cls = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(cls, "DESCRIPTOR", None), "name", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable(type_name, len(data))

    return parse


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error()
        yield request


class RequestDecoding(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(SERVICE_PREFIX):
            return handler
        return self._wrap(handler, details.method[len(SERVICE_PREFIX):])

    async def _refuse(self, request: Undecodable, context: grpc.aio.ServicerContext,
                      method: str) -> None:
        code, message = describe(request.error(), method)
        if self._metrics is not None:
            self._metrics.observe(method, code.name, 0.0)
        await context.abort(code, message)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        kwargs = {"request_deserializer": _lenient(handler.request_deserializer),
                  "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: Any) -> AsyncIterator[Any]:
                async with contextlib.aclosing(inner_ss(_checked(requests), context)) as out:
                    async for response in out:
                        yield response

            return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
        if handler.request_streaming:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: Any) -> Any:
                return await inner_su(_checked(requests), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
        if handler.response_streaming:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                if isinstance(request, Undecodable):
                    await self._refuse(request, context, method)
                async with contextlib.aclosing(inner_us(request, context)) as out:
                    async for response in out:
                        yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            if isinstance(request, Undecodable):
                await self._refuse(request, context, method)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
