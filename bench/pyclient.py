"""The same measurements as shim/cmd/walrusds-bench, through a Python gRPC (asyncio) client.

One unary call per Has/GetSize/Get (the server coalesces concurrent ones), client-streamed
Batch for ingest, a keys-only Query stream. The client runs in the harness process, apart from
the service, so its own cost shows in the figures exactly as any Python caller would pay it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.dataset import gen_key
from walrusds.rpc import open_aio_channel, stub
from walrusds.v1 import datastore_pb2 as pb


def seq_key(prefix: str, i: int) -> bytes:
    return f"{prefix}/{i:08d}".encode()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))]


async def ingest(addr: str, *, prefix: str, size: int, count: int, writers: int,
                 batch: int) -> dict[str, Any]:
    channel = open_aio_channel(addr)
    api = stub(channel)
    counter = iter(range(count))

    async def writer() -> None:
        while True:
            keys = [k for _, k in zip(range(batch), counter, strict=False)]
            if not keys:
                return

            async def stream(keys: list[int] = keys) -> AsyncIterator[pb.BatchRequest]:
                # as the shim does: puts grouped up to ~1 MiB per message (feature batch-puts)
                per_message = max(1, (1 << 20) // max(size, 1))
                for i in range(0, len(keys), per_message):
                    yield pb.BatchRequest(puts=[
                        pb.BatchPut(key=seq_key(prefix, k), value=os.urandom(size))
                        for k in keys[i:i + per_message]])
            await api.Batch(stream())

    try:
        start = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        secs = time.perf_counter() - start
    finally:
        await channel.close()
    return {"blocks": count, "bytes": count * size, "seconds": secs,
            "blocks_per_s": count / secs, "mb_per_s": count * size / secs / 1e6}


async def lookup(addr: str, *, op: str, gen: str, lo: int, hi: int, conc: int,
                 duration: float) -> dict[str, Any]:
    channel = open_aio_channel(addr)
    api = stub(channel)
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def caller(seed: int) -> None:
        rnd = random.Random(seed)
        while time.perf_counter() < deadline:
            key = gen_key(gen, rnd.randrange(lo, hi))
            t = time.perf_counter()
            if op == "getsize":
                await api.GetSize(pb.GetSizeRequest(key=key))
            else:
                answer = await api.Has(pb.HasRequest(key=key))
                if not answer.exists:
                    raise AssertionError(f"generated key {key!r} is missing")
            latencies.append(time.perf_counter() - t)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(conc)))
        secs = time.perf_counter() - start
    finally:
        await channel.close()
    latencies.sort()
    return {"calls": len(latencies), "seconds": secs, "calls_per_s": len(latencies) / secs,
            "p50_ms": percentile(latencies, 0.5) * 1e3,
            "p99_ms": percentile(latencies, 0.99) * 1e3}


async def get(addr: str, *, prefix: str, count: int, conc: int) -> dict[str, Any]:
    channel = open_aio_channel(addr)
    api = stub(channel)
    keys = iter(range(count))
    total = 0

    async def reader() -> None:
        nonlocal total
        for i in keys:
            answer = await api.Get(pb.GetRequest(key=seq_key(prefix, i)))
            total += len(answer.value)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(conc)))
        secs = time.perf_counter() - start
    finally:
        await channel.close()
    return {"blocks": count, "bytes": total, "seconds": secs, "blocks_per_s": count / secs,
            "mb_per_s": total / secs / 1e6}


async def query(addr: str, *, prefix: str) -> dict[str, Any]:
    channel = open_aio_channel(addr)
    api = stub(channel)
    n = 0
    try:
        start = time.perf_counter()
        async for page in api.Query(pb.QueryRequest(prefix=prefix.encode(), keys_only=True)):
            n += len(page.entries)
        secs = time.perf_counter() - start
    finally:
        await channel.close()
    return {"keys": n, "seconds": secs, "keys_per_s": n / secs}
