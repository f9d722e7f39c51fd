"""LookupStream: many Lookups over one long-lived bidirectional stream.

A unary call costs the client and the service far more than one message on a stream that is
already open (about 1.25 ms against 0.39 ms per round trip with grpc.aio on both sides), and a
lone Kubo caller's Has is one such round trip. Each request on the stream runs exactly as a
unary ``Lookup`` would (``DatastoreService.lookup``: same validation, same errors), with the
same admission (``limits.max_concurrent_rpcs``) and the same metrics: each request is counted
as one ``Lookup`` call with the status code it was answered with, and the stream itself as one
``LookupStream`` call when it ends.

Requests run concurrently, at most :data:`MAX_IN_FLIGHT` per stream: past that the reader
stops reading until an answer has been written (so a client that does not read its answers
stalls its own stream, never the service's memory). Answers are written in completion order by
the one writer, the generator itself (grpc.aio forbids concurrent writes). A request that
fails becomes an error answer carrying the code and message the unary call would have ended
with (``server.status``); the stream goes on. When the client half-closes, the answers in
flight are written and the stream ends with OK; when the call is cancelled, every request in
flight is cancelled and awaited before the handler returns. When the service shuts down
(``DatastoreService.drain_streams``, before the server's grace period), each stream stops
reading, answers what is in flight and ends with OK, so an idle client's stream does not hold
the shutdown for the whole grace period; the client opens its next stream elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from walrusds.server.status import describe
from walrusds.tasks import cancel_and_wait
from walrusds.v1 import datastore_pb2 as pb

if TYPE_CHECKING:
    from walrusds.server.service import DatastoreService

__all__ = ["MAX_IN_FLIGHT", "LookupStreamState", "lookup_stream"]

#: Requests of one stream being answered (or waiting for the writer) at once.
MAX_IN_FLIGHT = 256
METHOD = "LookupStream"
#: The method each request is counted and admitted as, so that dashboards and the in-flight
#: limit see stream lookups exactly like unary ones.
LOOKUP = "Lookup"


async def lookup_stream(service: DatastoreService,
                        requests: AsyncIterator[pb.LookupStreamRequest],
                        context: grpc.aio.ServicerContext,
                        ) -> AsyncIterator[pb.LookupStreamResponse]:
    # Imported here: service.py imports this module.
    from walrusds.server.service import refuse_expired

    with service.observed(METHOD, context):
        await refuse_expired(context)
        if service.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is shutting down")
        stream = LookupStreamState(service)
        reader = asyncio.create_task(stream.read(requests), name="lookup-stream-reader")
        stream.reader = reader
        service.streams.add(stream)
        try:
            while (answer := await stream.answers.get()) is not None:
                yield answer
                stream.slots.release()
            if stream.failure is not None:
                code, message = describe(stream.failure, METHOD)
                await context.abort(code, message)
        finally:
            service.streams.discard(stream)
            await stream.stop(reader)


class LookupStreamState:
    """The state of one LookupStream call: answers waiting for the writer, tasks in flight."""

    def __init__(self, service: DatastoreService) -> None:
        self.service = service
        # None after the last answer: the reader saw the end of the requests (or a request
        # that does not parse, kept in ``failure``) and every task in flight has answered.
        self.answers: asyncio.Queue[pb.LookupStreamResponse | None] = asyncio.Queue()
        # Taken by the reader before it starts a request, given back by the writer once the
        # answer is written.
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.tasks: set[asyncio.Task[None]] = set()
        self.failure: Exception | None = None
        self.reader: asyncio.Task[None] | None = None
        self.draining = False

    def drain(self) -> None:
        """Stop reading requests: answer those in flight, then end the stream with OK."""
        if not self.draining and self.reader is not None:
            self.draining = True
            self.reader.cancel()

    async def read(self, requests: AsyncIterator[pb.LookupStreamRequest]) -> None:
        try:
            async for request in requests:
                await self.slots.acquire()
                task = asyncio.create_task(self._answer(request), name="lookup-stream-request")
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except asyncio.CancelledError:
            if not self.draining:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except Exception as exc:  # a request that does not parse ends the stream (decode.py)
            self.failure = exc
        while self.tasks:
            await asyncio.wait(set(self.tasks))
        self.answers.put_nowait(None)

    async def _answer(self, request: pb.LookupStreamRequest) -> None:
        self.answers.put_nowait(await answer(self.service, request))

    async def stop(self, reader: asyncio.Task[None]) -> None:
        """Cancel the reader and every request in flight, and wait until they have ended."""
        await cancel_and_wait(reader)
        while self.tasks:
            await cancel_and_wait(next(iter(self.tasks)))
            # the done callback runs on the next loop iteration: drop finished tasks now
            self.tasks = {t for t in self.tasks if not t.done()}


async def answer(service: DatastoreService,
                 request: pb.LookupStreamRequest) -> pb.LookupStreamResponse:
    """One request's answer, admitted, counted and mapped to a status like a unary Lookup."""
    started = time.perf_counter()
    code, message = grpc.StatusCode.OK, ""
    answered: pb.LookupStreamResponse | None = None
    refusal = service.try_admit(LOOKUP)
    try:
        if refusal is not None:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, refusal
        else:
            try:
                out = pb.LookupStreamResponse(id=request.id)
                out.response.SetInParent()  # an answer, even with no results
                await service.lookup(request.request, out.response)
                answered = out
            finally:
                service.inflight -= 1
    except asyncio.CancelledError:
        code = grpc.StatusCode.CANCELLED
        raise
    except Exception as exc:  # mapped to a status in the one usual place
        code, message = describe(exc, LOOKUP)
    finally:
        if service.metrics is not None:
            service.metrics.observe(LOOKUP, code.name, time.perf_counter() - started)
    if answered is not None:
        return answered
    return pb.LookupStreamResponse(id=request.id, code=code.value[0], message=message)
