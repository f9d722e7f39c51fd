"""A Hypothesis state machine: the gRPC service against a dict model.

Keys are drawn from segments that stress the rules that matter: LIKE wildcards, NUL and 0xff
bytes, prefixes that are byte-prefixes of siblings (``/a`` and ``/ab``), and ``0`` (the byte
after ``/``). Queries are checked against go-datastore's reference semantics (tests.dstest.naive).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from tests.dstest import naive
from walrusds.config import Config
from walrusds.rpc import open_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb

SEGMENTS = [b"a", b"ab", b"a_b", b"%", b"\x00\xff", b"0"]
fresh_keys = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(
    lambda parts: b"/" + b"/".join(parts))
values = st.binary(max_size=48)
ORDER_CODES = {"key": pb.ORDER_BY_KEY, "key-desc": pb.ORDER_BY_KEY_DESCENDING,
               "value": pb.ORDER_BY_VALUE, "value-desc": pb.ORDER_BY_VALUE_DESCENDING}
OP_CODES = {"==": pb.COMPARE_OP_EQUAL, "!=": pb.COMPARE_OP_NOT_EQUAL, "<": pb.COMPARE_OP_LESS,
            "<=": pb.COMPARE_OP_LESS_OR_EQUAL, ">": pb.COMPARE_OP_GREATER,
            ">=": pb.COMPARE_OP_GREATER_OR_EQUAL}


class ServiceThread:
    """Runs a Service on its own event loop so synchronous code can drive it."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service: Service = self._call(Service.start(config))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self._call(self.service.stop(grace=0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def threaded_api(config: Config) -> Iterator[Any]:
    svc = ServiceThread(config)
    channel = open_channel(svc.service.address)
    try:
        yield stub(channel)
    finally:
        channel.close()
        svc.stop()


class DatastoreMachine(RuleBasedStateMachine):
    api: Any = None
    stored = Bundle("stored")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, bytes] = {}

    @initialize()
    def clear(self) -> None:
        existing = [bytes(e.key) for r in self.api.Query(pb.QueryRequest(keys_only=True))
                    for e in r.entries]
        self.api.Batch(iter([pb.BatchRequest(delete=pb.BatchDelete(key=k)) for k in existing]))

    @rule(target=stored, key=fresh_keys, value=values)
    def put(self, key: bytes, value: bytes) -> bytes:
        self.api.Put(pb.PutRequest(key=key, value=value))
        self.model[key] = value
        return key

    @rule(key=fresh_keys | stored)
    def get(self, key: bytes) -> None:
        try:
            got = bytes(self.api.Get(pb.GetRequest(key=key)).value)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert key not in self.model
        else:
            assert self.model.get(key) == got

    @rule(key=fresh_keys | stored)
    def has_and_size(self, key: bytes) -> None:
        assert self.api.Has(pb.HasRequest(key=key)).exists == (key in self.model)
        try:
            size = self.api.GetSize(pb.GetSizeRequest(key=key)).size
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert key not in self.model
        else:
            assert size == len(self.model[key])

    @rule(key=fresh_keys | stored)
    def delete(self, key: bytes) -> None:
        self.api.Delete(pb.DeleteRequest(key=key))
        self.model.pop(key, None)

    @rule(ops=st.lists(st.tuples(fresh_keys | stored, st.none() | values), max_size=8))
    def batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        reqs = [pb.BatchRequest(delete=pb.BatchDelete(key=k)) if v is None
                else pb.BatchRequest(put=pb.BatchPut(key=k, value=v)) for k, v in ops]
        self.api.Batch(iter(reqs))
        for k, v in ops:
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v

    @rule(ks=st.lists(fresh_keys | stored, max_size=6),
          mode=st.sampled_from([pb.LOOKUP_MODE_HAS, pb.LOOKUP_MODE_SIZE, pb.LOOKUP_MODE_GET]))
    def lookup(self, ks: list[bytes], mode: Any) -> None:
        resp = self.api.Lookup(pb.LookupRequest(mode=mode, keys=ks))
        assert len(resp.results) == len(ks)
        for k, r in zip(ks, resp.results, strict=True):
            if k in self.model:
                assert r.status == pb.LOOKUP_STATUS_FOUND
                assert r.size == len(self.model[k])
                if mode == pb.LOOKUP_MODE_GET:
                    assert r.value == self.model[k]
            else:
                assert r.status == pb.LOOKUP_STATUS_NOT_FOUND

    @rule(prefix=st.sampled_from([b"", b"/", b"/./", b"/a/..//"]) | fresh_keys | stored
          | stored.map(lambda k: k + b"/"), keys_only=st.booleans(), limit=st.integers(0, 5),
          offset=st.integers(0, 5),
          orders=st.lists(st.sampled_from(sorted(ORDER_CODES)), max_size=2),
          key_filter=st.none() | st.tuples(st.sampled_from(sorted(OP_CODES)), fresh_keys | stored),
          value_filter=st.none() | st.tuples(st.sampled_from(sorted(OP_CODES)), values),
          raw_prefix=st.none() | fresh_keys | stored)
    def query(self, prefix: bytes, keys_only: bool, limit: int, offset: int, orders: list[str],
              key_filter: tuple[str, bytes] | None, value_filter: tuple[str, bytes] | None,
              raw_prefix: bytes | None) -> None:
        q = naive.Query(prefix=prefix, keys_only=keys_only, limit=limit, offset=offset,
                        orders=list(orders))
        req = pb.QueryRequest(prefix=prefix, keys_only=keys_only, limit=limit, offset=offset,
                              orders=[ORDER_CODES[o] for o in orders])
        if key_filter:
            q.filters.append(naive.KeyCompare(*key_filter))
            req.filters.add(key_compare=pb.KeyCompareFilter(op=OP_CODES[key_filter[0]],
                                                            key=key_filter[1]))
        if value_filter:
            q.filters.append(naive.ValueCompare(*value_filter))
            req.filters.add(value_compare=pb.ValueCompareFilter(op=OP_CODES[value_filter[0]],
                                                                value=value_filter[1]))
        if raw_prefix:
            q.filters.append(naive.KeyPrefix(raw_prefix))
            req.filters.add(key_prefix=pb.KeyPrefixFilter(prefix=raw_prefix))
        got = [(bytes(e.key), bytes(e.value), e.size)
               for r in self.api.Query(req) for e in r.entries]
        entries = [naive.Entry(k, v, len(v)) for k, v in self.model.items()]
        if not orders:
            naive.sort(["key"], entries)
        expected = naive.naive_query_apply(q, entries)
        assert [k for k, _, _ in got] == [e.key for e in expected]
        for (_, value, size), e in zip(got, expected, strict=True):
            assert size == len(e.value or b"")
            if not keys_only:
                assert value == e.value

    @rule(prefix=fresh_keys)
    def sync(self, prefix: bytes) -> None:
        self.api.Sync(pb.SyncRequest(prefix=prefix))


def test_service_matches_a_dict(threaded_api: Any) -> None:
    DatastoreMachine.api = threaded_api
    run_state_machine_as_test(
        DatastoreMachine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))
