"""LookupStream: many Lookups on one bidirectional stream, against a real service (Postgres and
the Walrus emulator). Every answer equals the unary Lookup's, errors included; requests are
answered by id in any order; a half-close still gets every answer; a cancel leaves no task."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from tests.conftest import with_limits
from tests.flush.conftest import walrus_config
from tests.observability.conftest import scrape, with_metrics
from walrusds.config import Config
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.server.lookup_stream import MAX_IN_FLIGHT
from walrusds.v1 import datastore_pb2 as pb

MODES = (pb.LOOKUP_MODE_HAS, pb.LOOKUP_MODE_SIZE, pb.LOOKUP_MODE_GET)
Stub = Any


async def _puts(items: dict[bytes, bytes]) -> AsyncIterator[pb.BatchRequest]:
    for k, v in items.items():
        yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))


async def exchange(api: Stub, requests: list[pb.LookupStreamRequest],
                   ) -> dict[int, pb.LookupStreamResponse]:
    """Send ``requests`` on one stream, half-close, and return every answer by id."""
    call = api.LookupStream()
    for r in requests:
        await call.write(r)
    await call.done_writing()
    answers: dict[int, pb.LookupStreamResponse] = {}
    async for a in call:
        assert a.id not in answers, f"id {a.id} answered twice"
        answers[a.id] = a
    assert await call.code() == grpc.StatusCode.OK
    return answers


async def unary(api: Stub, request: pb.LookupRequest) -> pb.LookupStreamResponse:
    """What the unary Lookup answers, in the stream's shape (id 0)."""
    try:
        return pb.LookupStreamResponse(response=await api.Lookup(request))
    except grpc.aio.AioRpcError as exc:
        return pb.LookupStreamResponse(code=exc.code().value[0], message=exc.details() or "")


def _same(stream: pb.LookupStreamResponse, want: pb.LookupStreamResponse) -> None:
    got = pb.LookupStreamResponse()
    got.CopyFrom(stream)
    got.id = 0
    assert got == want


async def test_answers_equal_unary_lookup_for_found_missing_staged_and_packed_keys(
        config: Config, emulator: RunningEmulator) -> None:
    cfg = walrus_config(config, emulator.url, flush=False)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        assert "lookup-stream" in (await api.Info(pb.InfoRequest())).features
        packed = {f"/ls/packed/{i}".encode(): os.urandom(700 + i) for i in range(12)}
        await api.Batch(_puts(packed))
        assert svc.backend is not None and svc.backend.store is not None
        flusher = Flusher(PackIndex(svc.pool, cfg.postgres.schema), svc.backend.store, cfg,
                          PackCapacity(cfg.pack.target_size), owner="lookup-stream-test:1")
        await flusher.flush_ready(force=True)
        packed_count = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS,
                                                         keys=list(packed)))
        assert all(r.status == pb.LOOKUP_STATUS_FOUND for r in packed_count.results)
        staged = {f"/ls/staged/{i}".encode(): os.urandom(300 + i) for i in range(5)}
        staged[b"/ls/staged/empty"] = b""
        await api.Batch(_puts(staged))
        missing = [f"/ls/missing/{i}".encode() for i in range(4)]
        keys = [*packed, *staged, *missing]
        requests = []
        for mode in MODES:
            requests.append(pb.LookupRequest(mode=mode, keys=keys))
            requests += [pb.LookupRequest(mode=mode, keys=[k]) for k in keys]
        answers = await exchange(api, [pb.LookupStreamRequest(id=1000 + i, request=r)
                                       for i, r in enumerate(requests)])
        assert sorted(answers) == [1000 + i for i in range(len(requests))]
        for i, r in enumerate(requests):
            answer = answers[1000 + i]
            assert answer.code == 0
            _same(answer, await unary(api, r))
        whole_get = answers[1000 + 2 * (len(keys) + 1)].response.results
        assert [bytes(r.value) for r in whole_get[:len(packed)]] == list(packed.values())
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_bad_input_is_answered_per_request_with_the_unary_code(api: Stub) -> None:
    await api.Put(pb.PutRequest(key=b"/ls/good", value=b"v"))
    requests = {
        1: pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/ls/good"]),
        2: pb.LookupRequest(mode=99, keys=[b"/ls/good"]),  # type: ignore[arg-type]
        3: pb.LookupRequest(mode=pb.LOOKUP_MODE_UNSPECIFIED, keys=[b"/ls/good"]),
        4: pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/ls/good"] * 4097),
        5: pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=[b"no-slash", b"/ls/good"]),
        6: pb.LookupRequest(mode=pb.LOOKUP_MODE_SIZE, keys=[b"/ls/good/"]),
        7: pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=[b"/ls/good"]),
    }
    answers = await exchange(api, [pb.LookupStreamRequest(id=i, request=r)
                                   for i, r in requests.items()])
    assert sorted(answers) == sorted(requests)
    for i, r in requests.items():
        _same(answers[i], await unary(api, r))
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [answers[i].code for i in (2, 3, 4)] == [invalid] * 3
    assert "lookup mode 99 is not one of HAS, SIZE, GET" in answers[2].message
    assert "over the limit of 4096" in answers[4].message
    assert answers[5].response.results[0].error_code == invalid
    assert bytes(answers[7].response.results[0].value) == b"v"
    # a request without a LookupRequest is mode 0, as an empty unary Lookup would be
    empty = await exchange(api, [pb.LookupStreamRequest(id=9)])
    _same(empty[9], await unary(api, pb.LookupRequest()))


async def test_many_concurrent_requests_are_answered_by_id(api: Stub) -> None:
    items = {f"/ls/many/{i}".encode(): os.urandom(i % 50) for i in range(200)}
    await api.Batch(_puts(items))
    keys = list(items)
    rng = random.Random(7)
    ids = rng.sample(range(1, 1 << 62), 3 * MAX_IN_FLIGHT)  # more than one stream runs at once
    asked: dict[int, list[bytes]] = {}
    call = api.LookupStream()

    async def write() -> None:
        for n, i in enumerate(ids):
            ks = [*rng.sample(keys, rng.randint(1, 5)), f"/ls/none/{n}".encode()]
            asked[i] = ks
            await call.write(pb.LookupStreamRequest(
                id=i, request=pb.LookupRequest(mode=MODES[n % 3], keys=ks)))
        await call.done_writing()

    writer = asyncio.create_task(write())
    order = []
    async for a in call:
        order.append(a.id)
        assert a.code == 0, a.message
        results = a.response.results
        ks = asked[a.id]
        assert len(results) == len(ks)
        for k, r in zip(ks[:-1], results[:-1], strict=True):
            assert r.status == pb.LOOKUP_STATUS_FOUND and r.size == len(items[k])
        assert results[-1].status == pb.LOOKUP_STATUS_NOT_FOUND
    await writer
    assert sorted(order) == sorted(ids)


async def test_half_close_right_after_the_requests_gets_every_answer(
        service: Service, api: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_lookups(service, monkeypatch, delay=lambda: random.uniform(0.0, 0.05))
    ids = list(range(1, 65))
    answers = await exchange(api, [pb.LookupStreamRequest(
        id=i, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_SIZE, keys=[b"/ls/x"]))
        for i in ids])
    assert sorted(answers) == ids
    assert all(a.response.results[0].status == pb.LOOKUP_STATUS_NOT_FOUND
               for a in answers.values())
    assert service.servicer.inflight == 0


def _slow_lookups(service: Service, monkeypatch: pytest.MonkeyPatch,
                  delay: Callable[[], float], started: list[int] | None = None) -> None:
    original = service.datastore.lookup_sizes

    async def slow(keys: list[bytes]) -> Any:
        if started is not None:
            started.append(len(keys))
        await asyncio.sleep(delay())
        return await original(keys)

    monkeypatch.setattr(service.datastore, "lookup_sizes", slow)


def _stream_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("lookup-stream")]


async def test_cancel_mid_flight_leaves_no_task_running(
        service: Service, api: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    _slow_lookups(service, monkeypatch, delay=lambda: 3600.0, started=started)
    call = api.LookupStream()
    for i in range(10):
        await call.write(pb.LookupStreamRequest(
            id=i, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/ls/slow"])))
    for _ in range(200):
        if len(started) == 10:
            break
        await asyncio.sleep(0.01)
    assert len(started) == 10 and service.servicer.inflight == 10
    call.cancel()
    for _ in range(300):
        if not _stream_tasks() and service.servicer.inflight == 0:
            break
        await asyncio.sleep(0.01)
    assert _stream_tasks() == []
    assert service.servicer.inflight == 0
    # the service goes on answering, on a new stream
    answers = await exchange(api, [pb.LookupStreamRequest(
        id=1, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=[b"/ls/none"]))])
    assert answers[1].response.results[0].status == pb.LOOKUP_STATUS_NOT_FOUND


async def test_a_message_that_does_not_parse_ends_the_stream_as_invalid_argument(
        service: Service) -> None:
    channel = open_aio_channel(service.address)
    try:
        raw = channel.stream_stream("/walrusds.v1.Datastore/LookupStream",
                                    request_serializer=lambda b: b,
                                    response_deserializer=pb.LookupStreamResponse.FromString)
        call = raw()
        good = pb.LookupStreamRequest(
            id=5, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/ls/a"]))
        await call.write(good.SerializeToString())
        await call.write(b"\xff\xff\xff")
        got = [a async for a in _read_all(call)]
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid LookupStreamRequest" in (await call.details())
        assert [a.id for a in got] in ([5], [])
    finally:
        await channel.close()


async def _read_all(call: Any) -> AsyncIterator[pb.LookupStreamResponse]:
    try:
        async for a in call:
            yield a
    except grpc.aio.AioRpcError:
        return


async def test_stream_lookups_are_counted_and_admitted_like_unary_ones(config: Config) -> None:
    svc = await Service.start(with_metrics(with_limits(config, max_concurrent_rpcs=1)))
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        # one request per stream: two at once would exceed max_concurrent_rpcs=1
        answers = await exchange(api, [pb.LookupStreamRequest(
            id=1, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/m"]))])
        assert answers[1].code == 0
        bad = pb.LookupRequest(mode=99, keys=[b"/m"])  # type: ignore[arg-type]
        answers = await exchange(api, [pb.LookupStreamRequest(id=2, request=bad)])
        assert answers[2].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        got = await scrape(svc)
        total = "walrusds_rpc_requests_total"
        assert got.value(total, method="Lookup", code="OK") == 1
        assert got.value(total, method="Lookup", code="INVALID_ARGUMENT") == 1
        assert got.value(total, method="LookupStream", code="OK") == 2
        assert got.value("walrusds_rpc_in_flight") == 0

        # past limits.max_concurrent_rpcs a stream request is refused like a unary call
        release = asyncio.Event()
        original = svc.datastore.lookup_sizes

        async def held(keys: list[bytes]) -> Any:
            await release.wait()
            return await original(keys)

        svc.datastore.lookup_sizes = held  # type: ignore[method-assign,assignment]
        call = api.LookupStream()
        for i in (1, 2):
            await call.write(pb.LookupStreamRequest(
                id=i, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_SIZE, keys=[b"/m"])))
        first = await call.read()
        assert first.id == 2
        assert first.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "server busy" in first.message
        release.set()
        await call.done_writing()
        rest = await call.read()
        assert rest.id == 1 and rest.code == 0
        assert await call.read() is grpc.aio.EOF
        got = await scrape(svc)
        assert got.value(total, method="Lookup", code="RESOURCE_EXHAUSTED") == 1
        assert got.value("walrusds_rpc_admission_refusals_total", method="Lookup") == 1
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_shutdown_ends_open_streams_after_their_answers(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = await Service.start(config)
    channel = open_aio_channel(svc.address)
    api = stub(channel)
    try:
        _slow_lookups(svc, monkeypatch, delay=lambda: 0.3)
        idle = api.LookupStream()  # an idle client's stream: nothing in flight
        busy = api.LookupStream()
        await busy.write(pb.LookupStreamRequest(
            id=7, request=pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=[b"/ls/x"])))
        for _ in range(200):
            if svc.servicer.inflight == 1 and len(svc.servicer.streams) == 2:
                break
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await svc.stop(grace=30.0)
        assert loop.time() - started < 10.0, "open streams held the shutdown's grace period"
        answer = await busy.read()
        assert answer.id == 7 and answer.code == 0
        assert await busy.read() is grpc.aio.EOF
        assert await busy.code() == grpc.StatusCode.OK
        assert await idle.code() == grpc.StatusCode.OK
    finally:
        await channel.close()
