"""The bad-input table of the reliability plan (§10) through gRPC, one row per test id (listed
in docs/bad-input.md): each bad input gets its documented status code and a one-line message
that names the problem, the dataset is exactly as it was (keys and values), and the server
keeps serving every kind of call afterwards.

Inputs the service accepts on purpose (any byte in a key, LIKE wildcards, empty values, unknown
fields...) are checked here where tests/test_bad_input.py does not already."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

from tests.hardening.conftest import (
    Outcome,
    Running,
    assert_readable,
    assert_serving,
    outcome,
    running,
    seed,
    snapshot,
    stream,
)
from walrusds.config import Config, MiB
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
LOOKUP_MODES = (pb.LOOKUP_MODE_HAS, pb.LOOKUP_MODE_SIZE, pb.LOOKUP_MODE_GET)


def _random_key(size: int) -> bytes:
    """A key of exactly ``size`` incompressible bytes (starts with '/', does not end with it)."""
    return b"/" + os.urandom(size - 2) + b"x"


# -- bad keys: every call that takes a key refuses them the same way ----------------------------

BAD_KEYS: dict[str, tuple[bytes, str]] = {
    "key-empty": (b"", "key is empty"),
    "key-no-slash": (b"foo", "does not start with '/'"),
    "key-relative": (b"a/b", "does not start with '/'"),
    "key-trailing-slash": (b"/a/", "ends with '/'"),
    "key-root": (b"/", "ends with '/'"),
    "key-2049-bytes": (b"/" + b"x" * 2048, "longer than the maximum of 2048 bytes"),
    "key-4000-bytes": (_random_key(4000), "longer than the maximum of 2048 bytes"),
    "key-9000-bytes": (_random_key(9000), "longer than the maximum of 2048 bytes"),
    "key-5mib": (_random_key(5 * MiB), "longer than the maximum of 2048 bytes"),
}


@pytest.mark.parametrize("row", list(BAD_KEYS), ids=list(BAD_KEYS))
async def test_bad_key_everywhere(config: Config, row: str) -> None:
    key, words = BAD_KEYS[row]
    async with running(config) as r:
        api = r.api
        before = await seed(api)
        calls = {
            "Put": api.Put(pb.PutRequest(key=key, value=b"v")),
            "Get": api.Get(pb.GetRequest(key=key)),
            "Has": api.Has(pb.HasRequest(key=key)),
            "GetSize": api.GetSize(pb.GetSizeRequest(key=key)),
            "Delete": api.Delete(pb.DeleteRequest(key=key)),
            "Batch put": api.Batch(stream(
                pb.BatchRequest(put=pb.BatchPut(key=b"/fine", value=b"v")),
                pb.BatchRequest(put=pb.BatchPut(key=key, value=b"v")))),
            "Batch delete": api.Batch(stream(
                pb.BatchRequest(delete=pb.BatchDelete(key=b"/seed/a")),
                pb.BatchRequest(delete=pb.BatchDelete(key=key)))),
        }
        for name, call in calls.items():
            got = await outcome(call)
            assert got.code == INVALID, (name, got)
            assert_readable(got.details, words)
        # Lookup answers the other keys and reports the bad one on its own.
        for mode in LOOKUP_MODES:
            resp = await api.Lookup(pb.LookupRequest(mode=mode, keys=[key, b"/seed/a"]))
            bad, good = resp.results
            assert bad.status == pb.LOOKUP_STATUS_ERROR
            assert bad.error_code == INVALID.value[0]
            assert_readable(bad.error_message, words)
            assert good.status == pb.LOOKUP_STATUS_FOUND
        assert await snapshot(api) == before
        await assert_serving(api)


# -- every other bad request -------------------------------------------------------------------

Call = Callable[[Running], Awaitable[Outcome]]


@dataclass(frozen=True)
class Row:
    call: Call
    code: grpc.StatusCode
    words: tuple[str, ...]
    limits: dict[str, Any] = field(default_factory=dict)
    max_message: int | None = None


def _put(key: bytes = b"/k", value: bytes = b"v", **kw: Any) -> Call:
    return lambda r: outcome(r.api.Put(pb.PutRequest(key=key, value=value), **kw))


def _delete(key: bytes, **kw: Any) -> Call:
    return lambda r: outcome(r.api.Delete(pb.DeleteRequest(key=key), **kw))


def _batch(*ops: pb.BatchRequest, **kw: Any) -> Call:
    return lambda r: outcome(r.api.Batch(stream(*ops), **kw))


def _bput(key: bytes, value: bytes = b"v") -> pb.BatchRequest:
    return pb.BatchRequest(put=pb.BatchPut(key=key, value=value))


def _query(req: pb.QueryRequest) -> Call:
    async def consume(r: Running) -> None:
        async for _ in r.api.Query(req):
            pass

    return lambda r: outcome(consume(r))


def _lookup(mode: int, keys: list[bytes]) -> Call:
    return lambda r: outcome(r.api.Lookup(pb.LookupRequest(mode=mode, keys=keys)))  # type: ignore[arg-type]


def _raw_unary(method: str, data: bytes) -> Call:
    def call(r: Running) -> Awaitable[Outcome]:
        multi = r.channel.unary_unary(f"/walrusds.v1.Datastore/{method}")
        return outcome(multi(data))

    return call


def _raw_query(data: bytes) -> Call:
    async def consume(r: Running) -> None:
        async for _ in r.channel.unary_stream("/walrusds.v1.Datastore/Query")(data):
            pass

    return lambda r: outcome(consume(r))


def _raw_batch(*messages: bytes) -> Call:
    def call(r: Running) -> Awaitable[Outcome]:
        multi = r.channel.stream_unary("/walrusds.v1.Datastore/Batch")
        return outcome(multi(stream(*messages)))

    return call


def _filter_key(op: int, key: bytes = b"/a") -> pb.QueryRequest:
    return pb.QueryRequest(filters=[pb.Filter(key_compare=pb.KeyCompareFilter(
        op=op, key=key))])  # type: ignore[arg-type]


def _filter_value(op: int) -> pb.QueryRequest:
    return pb.QueryRequest(filters=[pb.Filter(value_compare=pb.ValueCompareFilter(
        op=op, value=b"v"))])  # type: ignore[arg-type]


_MISMATCHED = block_key(b"the bytes the key names")
_GARBAGE = b"\xff\xff\xff\xff\x0f"
_TRUNCATED_PUT = pb.PutRequest(key=b"/k", value=b"x" * 100).SerializeToString()[:-10]
_TRUNCATED_BATCH = _bput(b"/cut", b"y" * 100).SerializeToString()[:-10]

ROWS: dict[str, Row] = {
    "value-over-limit": Row(_put(b"/v", b"x" * (64 * 1024 + 1)), INVALID,
                            ("value of 65537 bytes", "over the maximum of 65536 bytes"),
                            limits={"max_value_size": 64 * 1024}),
    "value-over-limit-in-batch": Row(_batch(_bput(b"/ok"), _bput(b"/v", b"x" * (64 * 1024 + 1))),
                                     INVALID, ("over the maximum of 65536 bytes",),
                                     limits={"max_value_size": 64 * 1024}),
    "value-100mib": Row(_put(b"/huge", b"x" * (100 * MiB)), EXHAUSTED, ("larger than max",),
                        max_message=128 * MiB),
    "block-key-mismatch": Row(_put(_MISMATCHED, b"other bytes"), INVALID,
                              ("does not match", "multihash")),
    "block-key-mismatch-in-batch": Row(_batch(_bput(b"/ok"), _bput(_MISMATCHED, b"other")),
                                       INVALID, ("does not match",)),
    "query-limit-negative": Row(_query(pb.QueryRequest(limit=-1)), INVALID,
                                ("query limit -1 is negative (0 means no limit)",)),
    "query-offset-negative": Row(_query(pb.QueryRequest(offset=-1)), INVALID,
                                 ("query offset -1 is negative",)),
    "query-order-99": Row(_query(pb.QueryRequest(orders=[99])),  # type: ignore[list-item]
                          INVALID, ("query order 0 has unknown value 99",)),
    "query-order-unspecified": Row(_query(pb.QueryRequest(orders=[pb.ORDER_UNSPECIFIED])),
                                   INVALID, ("unknown value 0",)),
    "query-key-op-99": Row(_query(_filter_key(99)), INVALID,
                           ("query filter 0 has unknown comparison 99",)),
    "query-value-op-99": Row(_query(_filter_value(99)), INVALID, ("unknown comparison 99",)),
    "query-op-unspecified": Row(_query(_filter_key(pb.COMPARE_OP_UNSPECIFIED)), INVALID,
                                ("unknown comparison 0",)),
    "query-filter-empty": Row(_query(pb.QueryRequest(filters=[pb.Filter()])), INVALID,
                              ("query filter 0 is empty",)),
    "lookup-mode-99": Row(_lookup(99, [b"/seed/a"]), INVALID,
                          ("lookup mode 99 is not one of HAS, SIZE, GET",)),
    "lookup-mode-unspecified": Row(_lookup(pb.LOOKUP_MODE_UNSPECIFIED, [b"/seed/a"]), INVALID,
                                   ("lookup mode 0",)),
    "lookup-too-many-keys": Row(_lookup(pb.LOOKUP_MODE_HAS, [b"/seed/a"] * 4097), INVALID,
                                ("lookup of 4097 keys is over the limit of 4096",)),
    "batch-empty-message": Row(_batch(_bput(b"/ok"), pb.BatchRequest()), INVALID,
                               ("neither put nor delete",)),
    "batch-bad-key-midway": Row(_batch(_bput(b"/z1"), _bput(b"/z2"), _bput(b"nope")), INVALID,
                                ("does not start with '/'",)),
    "batch-puts-bad-key": Row(_batch(pb.BatchRequest(puts=[
        pb.BatchPut(key=b"/p1", value=b"v"), pb.BatchPut(key=b"/p2/", value=b"v")])), INVALID,
        ("key '/p2/' ends with '/'",)),
    "batch-over-ops": Row(_batch(*(_bput(f"/b{i}".encode()) for i in range(11))), EXHAUSTED,
                          ("more than 10 operations",), limits={"max_batch_ops": 10}),
    "batch-over-bytes": Row(_batch(_bput(b"/b1", b"x" * 600), _bput(b"/b2", b"x" * 600)),
                            EXHAUSTED, ("more than 1000 bytes",),
                            limits={"max_batch_bytes": 1000}),
    "request-undecodable": Row(_raw_unary("Put", _GARBAGE), INVALID,
                               ("not a valid PutRequest message",)),
    "request-truncated": Row(_raw_unary("Put", _TRUNCATED_PUT), INVALID,
                             ("not a valid PutRequest message", "truncated")),
    "request-undecodable-get": Row(_raw_unary("Get", _GARBAGE), INVALID,
                                   ("not a valid GetRequest message",)),
    "query-undecodable": Row(_raw_query(_GARBAGE), INVALID,
                             ("not a valid QueryRequest message",)),
    "batch-message-truncated": Row(_raw_batch(_bput(b"/first").SerializeToString(),
                                              _TRUNCATED_BATCH), INVALID,
                                   ("not a valid BatchRequest message",)),
    "deadline-expired": Row(_put(b"/late", timeout=1e-6), DEADLINE, ("eadline",)),
    "deadline-1ms-put": Row(_put(b"/late", timeout=0.001), DEADLINE, ("eadline",)),
    "deadline-1ms-delete": Row(_delete(b"/seed/a", timeout=0.001), DEADLINE, ("eadline",)),
    "deadline-1ms-batch": Row(_batch(_bput(b"/late"), timeout=0.001), DEADLINE, ("eadline",)),
}


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
async def test_bad_request(config: Config, row: str) -> None:
    case = ROWS[row]
    async with running(config, max_message=case.max_message, **case.limits) as r:
        before = await seed(r.api)
        got = await case.call(r)
        assert got.code == case.code, got
        assert_readable(got.details, *case.words)
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


# -- inputs that are accepted on purpose -------------------------------------------------------

async def test_query_bounds_longer_than_any_key_are_not_errors(config: Config) -> None:
    """A prefix or filter key far over the key limit is a bound, not a key: the result is what
    the bound selects (never an SQL error about index row sizes)."""
    async with running(config) as r:
        before = await seed(r.api)
        huge = b"/" + b"x" * (5 * MiB)
        high = b"/" + b"\xff" * 9000

        async def keys(req: pb.QueryRequest) -> list[bytes]:
            out: list[bytes] = []
            async for resp in r.api.Query(req):
                out.extend(bytes(e.key) for e in resp.entries)
            return out

        assert await keys(pb.QueryRequest(prefix=huge, keys_only=True)) == []
        assert await keys(_filter_key(pb.COMPARE_OP_EQUAL, _random_key(9000))) == []
        assert await keys(_filter_key(pb.COMPARE_OP_LESS, high)) == [k for k, _ in before]
        assert await keys(pb.QueryRequest(filters=[pb.Filter(
            key_prefix=pb.KeyPrefixFilter(prefix=high))])) == []
        assert await snapshot(r.api) == before
        await assert_serving(r.api)


async def test_like_wildcards_in_filters_are_literal(config: Config) -> None:
    async with running(config) as r:
        for k in (b"/a_b/1", b"/a%b/1", b"/a\\b/1", b"/aXb/1", b"/axb", b"/a_"):
            await r.api.Put(pb.PutRequest(key=k, value=k[1:]))

        async def keys(req: pb.QueryRequest) -> list[bytes]:
            out: list[bytes] = []
            async for resp in r.api.Query(req):
                out.extend(bytes(e.key) for e in resp.entries)
            return out

        def raw_prefix(p: bytes) -> pb.QueryRequest:
            return pb.QueryRequest(filters=[pb.Filter(key_prefix=pb.KeyPrefixFilter(prefix=p))])

        assert await keys(raw_prefix(b"/a_")) == [b"/a_", b"/a_b/1"]
        assert await keys(raw_prefix(b"/a%")) == [b"/a%b/1"]
        assert await keys(raw_prefix(b"/a\\")) == [b"/a\\b/1"]
        assert await keys(raw_prefix(b"%")) == []
        assert await keys(_filter_key(pb.COMPARE_OP_EQUAL, b"/a_b/1")) == [b"/a_b/1"]
        assert await keys(pb.QueryRequest(prefix=b"/a%b")) == [b"/a%b/1"]
        values = pb.QueryRequest(filters=[pb.Filter(value_compare=pb.ValueCompareFilter(
            op=pb.COMPARE_OP_EQUAL, value=b"a_"))])
        assert await keys(values) == [b"/a_"]


def test_keys_values_and_prefixes_are_bytes_in_the_api() -> None:
    """A proto ``string`` would make grpcio refuse invalid UTF-8 before walrusds sees it."""
    checked = 0
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        for f in message.fields:
            if f.name in ("key", "keys", "value", "prefix"):
                assert f.type == FieldDescriptor.TYPE_BYTES, f"{message.name}.{f.name}"
                checked += 1
    assert checked >= 10
