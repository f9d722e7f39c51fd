"""The subtests of go-datastore's dstest (BasicSubtests, Combinations, RunBatch*), ported.

Each function takes a :class:`Client` and raises AssertionError on a difference from
go-datastore's reference semantics. Same keys, values (64 random bytes), prefixes, offsets,
limits, filters and orders as the Go suite.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterator

import grpc

from tests.dstest import naive
from tests.dstest.client import Client, NotFoundError
from walrusds.v1 import datastore_pb2 as pb

ELEM_COUNT = 100
CONCURRENCY = 16


def rand_value() -> bytes:
    return os.urandom(64)


def query_input(count: int) -> list[naive.Entry]:
    entries = []
    for fmt in ("/{i}key{i}", "/prefix/{i}key{i}", "/prefix/sub/{i}key{i}",
                "/capital/{i}KEY{i}"):
        for i in range(count):
            v = rand_value()
            entries.append(naive.Entry(fmt.format(i=i).encode(), v, len(v)))
    return entries


async def _each(fn: Callable[[naive.Entry], object], entries: list[naive.Entry]) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(e: naive.Entry) -> None:
        async with sem:
            await fn(e)  # type: ignore[misc]

    await asyncio.gather(*(one(e) for e in entries))


async def subtest_query(ds: Client, q: naive.Query, count: int, *, batched: bool = False) -> None:
    """dstest's subtestQuery: put, read back, query, compare with NaiveQueryApply, delete."""
    inp = query_input(count)
    await put_input(ds, inp, batched=batched)
    await check_query(ds, q, inp)
    await remove_input(ds, inp, batched=batched)


async def put_input(ds: Client, inp: list[naive.Entry], *, batched: bool) -> None:
    """Write the entries, then read each back."""
    if batched:
        await ds.batch([(e.key, e.value) for e in inp])
        got = await ds.get_many([e.key for e in inp]) if inp else {}
        for e in inp:
            assert got.get(e.key) == e.value, f"get {e.key!r} after put"
        return
    await _each(lambda e: ds.put(e.key, e.value or b""), inp)

    async def check(e: naive.Entry) -> None:
        assert await ds.get(e.key) == e.value, f"get {e.key!r} after put"

    await _each(check, inp)


async def check_query(ds: Client, q: naive.Query, inp: list[naive.Entry]) -> None:
    """Run ``q`` and compare with NaiveQueryApply over the input."""
    actual = await ds.query(q)
    expected = naive.naive_query_apply(q, inp)
    assert len(actual) == len(expected), (
        f"{q}: expected {len(expected)} results, got {len(actual)}")
    if not q.orders:
        naive.sort(["key"], actual)
        naive.sort(["key"], expected)
    for i, (a, x) in enumerate(zip(actual, expected, strict=True)):
        assert a.key == x.key, f"{q}: result {i}: expected key {x.key!r}, got {a.key!r}"
        if not q.keys_only:
            assert a.value == x.value, f"{q}: value mismatch for result {i} ({x.key!r})"
        if q.returns_sizes:
            assert a.size > 0, f"{q}: result {i} has size {a.size} with ReturnsSizes"


async def remove_input(ds: Client, inp: list[naive.Entry], *, batched: bool) -> None:
    if batched:
        await ds.batch([(e.key, None) for e in inp])
    else:
        await _each(lambda e: ds.delete(e.key), inp)


async def clear(ds: Client) -> None:
    """dstest's clearDs: delete every key a keys-only query returns."""
    keys = [e.key for e in await ds.query(naive.Query(keys_only=True))]
    await _each(lambda e: ds.delete(e.key), [naive.Entry(k) for k in keys])


# -- BasicSubtests ------------------------------------------------------------------------------

async def subtest_basic_put_get(ds: Client) -> None:
    k, val = b"/foo", b"Hello Datastore!"
    await ds.put(k, val)
    assert await ds.has(k)
    assert await ds.get_size(k) == len(val)
    assert await ds.get(k) == val
    assert await ds.has(k)
    assert await ds.get_size(k) == len(val)
    await ds.delete(k)
    assert not await ds.has(k)
    assert await ds.get_size(k) == -1


async def subtest_not_founds(ds: Client) -> None:
    bad = b"/notreal"
    try:
        await ds.get(bad)
    except NotFoundError:
        pass
    else:
        raise AssertionError("expected NOT_FOUND for a key that does not exist")
    assert not await ds.has(bad)
    assert await ds.get_size(bad) == -1
    await ds.delete(bad)


async def subtest_prefix(ds: Client) -> None:
    for prefix in ("", "/", "/./", "/.././/", "/prefix/../", "/prefix", "/prefix/",
                   "/prefix/sub/", "/0/", "/bad/"):
        await subtest_query(ds, naive.Query(prefix=prefix.encode()), ELEM_COUNT)


def _by_value(a: naive.Entry, b: naive.Entry) -> int:
    av, bv = a.value or b"", b.value or b""
    return (av > bv) - (av < bv)


async def subtest_order(ds: Client) -> None:
    # Go's value and pointer forms are the same on the wire; both exercise the same request.
    for orders in (["key"], ["key"], ["key-desc"], ["key-desc"], ["value"], ["value", "key"],
                   [_by_value]):
        await subtest_query(ds, naive.Query(orders=list(orders)), ELEM_COUNT)


async def subtest_limit(ds: Client) -> None:
    n = ELEM_COUNT
    for offset, limit in ((0, n // 10), (0, 0), (n // 10, 0), (n // 10, n // 10),
                          (n // 10, n // 5), (n // 2, n // 5), (n - 1, n // 5), (n * 2, n // 5),
                          (n * 2, 0), (n - 1, 0), (n - 5, 0)):
        await subtest_query(ds, naive.Query(orders=["key"], offset=offset, limit=limit,
                                            keys_only=True), n)


async def subtest_filter(ds: Client) -> None:
    for f in (naive.KeyCompare("==", b"/0key0"), naive.KeyCompare("<", b"/2"),
              naive.KeyCompare("==", b"/0key0"), naive.KeyPrefix(b"/0key0"),
              naive.KeyPrefix(b"/0key0"), naive.ValueCompare("<", rand_value()),
              naive.CustomFilter(lambda e: len(e.key) % 2 == 0)):
        await subtest_query(ds, naive.Query(filters=[f]), 100)


async def subtest_many_keys_and_query(ds: Client) -> None:
    await subtest_query(ds, naive.Query(keys_only=True), ELEM_COUNT)


async def subtest_return_sizes(ds: Client) -> None:
    await subtest_query(ds, naive.Query(returns_sizes=True), 100)


async def subtest_basic_sync(ds: Client) -> None:
    await ds.sync(b"/prefix")
    await ds.put(b"/prefix", b"foo")
    await ds.sync(b"/prefix")
    await ds.put(b"/prefix/sub", b"bar")
    await ds.sync(b"/prefix")
    await ds.sync(b"/prefix/sub")
    await ds.sync(b"/")


BASIC_SUBTESTS = (subtest_basic_put_get, subtest_not_founds, subtest_prefix, subtest_order,
                  subtest_limit, subtest_filter, subtest_many_keys_and_query,
                  subtest_return_sizes, subtest_basic_sync)


# -- Combinations -------------------------------------------------------------------------------

def combinations() -> Iterator[tuple[naive.Query, int]]:
    """Every combination dstest's SubtestCombinations runs (its perms() skips all-zero)."""
    n = ELEM_COUNT
    offsets = [0, n // 10, n - 5, n]
    limits = [0, 1, n // 10, n]
    filters = [[naive.KeyCompare("==", b"/0key0")], [naive.KeyCompare("<", b"/2")]]
    prefixes = [b"", b"/prefix", b"/0"]
    orders: list[list[naive.OrderT]] = [["key"], ["key-desc"], ["value", "key"], [_by_value]]
    lengths = [0, 1, n]
    for perm in itertools.product(*(range(len(x)) for x in
                                    (offsets, limits, filters, orders, prefixes, lengths))):
        if not any(perm):
            continue
        yield (naive.Query(offset=offsets[perm[0]], limit=limits[perm[1]],
                           filters=list(filters[perm[2]]), orders=list(orders[perm[3]]),
                           prefix=prefixes[perm[4]]), lengths[perm[5]])


# -- Batch tests --------------------------------------------------------------------------------

async def run_batch_test(ds: Client) -> None:
    """20 values of 256 KiB in one batch; not visible before commit; all equal after."""
    blocks = [os.urandom(256 * 1024) for _ in range(20)]
    keys = [b"/" + os.urandom(20).hex().upper().encode() for _ in blocks]
    call = ds.api.Batch()
    for k, v in zip(keys, blocks, strict=True):
        await call.write(pb.BatchRequest(put=pb.BatchPut(key=k, value=v)))
    for k in keys:
        try:
            await ds.get(k)
        except NotFoundError:
            continue
        raise AssertionError("a batched put is visible before commit")
    await call.done_writing()
    assert (await call).applied == len(keys)
    if ds.settle is not None:
        await ds.settle()
    for k, v in zip(keys, blocks, strict=True):
        assert await ds.get(k) == v


async def run_batch_delete_test(ds: Client) -> None:
    keys = [b"/" + os.urandom(16).hex().encode() for _ in range(20)]
    for k in keys:
        await ds.put(k, os.urandom(16))
    await ds.batch([(k, None) for k in keys])
    for k in keys:
        try:
            await ds.get(k)
        except NotFoundError:
            continue
        raise AssertionError("a key deleted in a batch is still there")


async def run_batch_put_and_delete_test(ds: Client) -> None:
    await ds.batch([(b"/a", b"\x01"), (b"/b", b"\x02"), (b"/a", None), (b"/b", None),
                    (b"/b", b"\x03")])
    try:
        await ds.get(b"/a")
    except NotFoundError:
        pass
    else:
        raise AssertionError("/a should be deleted")
    assert await ds.get(b"/b") == b"\x03"


BATCH_SUBTESTS = (run_batch_test, run_batch_delete_test, run_batch_put_and_delete_test)

__all__ = ["BASIC_SUBTESTS", "BATCH_SUBTESTS", "check_query", "clear", "combinations", "grpc",
           "put_input", "query_input", "remove_input", "subtest_query"]
