"""What the hardware and the components underneath allow, measured in the same run.

Every service figure is reported as a fraction of one of these: PostgreSQL point lookups (one
query per key, and 100 keys per ``key = ANY`` query), PostgreSQL staging (COPY of values into a
table shaped like ``entries``, committed synchronously as the service commits), loopback HTTP
PUT and GET of whole blobs against the emulator, and SHA-256 (the service hashes every value).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import threading
import time
from typing import Any

import httpx
import psycopg

from bench.dataset import gen_key
from walrusds.client.responses import parse_store_result


def pg_point_lookups(dsn: str, gen: str, n: int, seconds: float) -> dict[str, Any]:
    """One prepared ``key = $1`` query per key, in a loop: one client, no concurrency."""
    rnd = random.Random(1)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        calls = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            row = conn.execute("SELECT size FROM walrusds.entries WHERE key = %s",
                               (gen_key(gen, rnd.randrange(n)),)).fetchone()
            assert row is not None
            calls += 1
        secs = time.perf_counter() - start
    return {"lookups": calls, "seconds": secs, "lookups_per_s": calls / secs}


def pg_any_lookups(dsn: str, gen: str, n: int, seconds: float, per_query: int = 100
                   ) -> dict[str, Any]:
    """``key = ANY($1)`` with ``per_query`` keys per query, in a loop."""
    rnd = random.Random(2)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        found = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            keys = [gen_key(gen, rnd.randrange(n)) for _ in range(per_query)]
            rows = conn.execute("SELECT key, size FROM walrusds.entries WHERE key = ANY(%s)",
                                (keys,)).fetchall()
            found += len(rows)
        secs = time.perf_counter() - start
    return {"lookups": found, "seconds": secs, "lookups_per_s": found / secs,
            "keys_per_query": per_query}


def pg_staging(dsn: str, size: int, total_bytes: int, batch: int = 64, writers: int = 4
               ) -> dict[str, Any]:
    """Binary COPY of random values into a copy of ``entries``' staged shape: ``writers``
    connections at once (as the service's Batch writers), ``batch`` rows per synchronous
    commit, the SHA-256 of each value computed as the service does."""
    count = max(batch, total_bytes // size)
    values = [os.urandom(size) for _ in range(min(count, 64))]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_staging")
        conn.execute("CREATE TABLE bench_staging (key bytea PRIMARY KEY, size bigint NOT NULL,"
                     " digest bytea NOT NULL, value bytea, staged_at timestamptz)")
        conn.execute("ALTER TABLE bench_staging ALTER COLUMN value SET STORAGE EXTERNAL")
    firsts = iter(range(0, count, batch))
    lock = threading.Lock()

    def writer() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            while True:
                with lock:
                    first = next(firsts, None)
                if first is None:
                    return
                with conn.transaction(), conn.cursor().copy(
                        "COPY bench_staging (key, size, digest, value) FROM STDIN "
                        "(FORMAT BINARY)") as cp:
                    cp.set_types(["bytea", "int8", "bytea", "bytea"])
                    for i in range(first, min(first + batch, count)):
                        value = values[i % len(values)]
                        cp.write_row((f"/stage/{i:08d}".encode(), size,
                                      hashlib.sha256(value).digest(), value))

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        for f in [pool.submit(writer) for _ in range(writers)]:
            f.result()
    secs = time.perf_counter() - start
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_staging")
    return {"blocks": count, "bytes": count * size, "seconds": secs, "writers": writers,
            "blocks_per_s": count / secs, "mb_per_s": count * size / secs / 1e6}


def http_blobs(url: str, blob_size: int, blobs: int) -> dict[str, Any]:
    """PUT ``blobs`` blobs to the emulator's publisher route, then GET each back whole."""
    bodies = [os.urandom(blob_size) for _ in range(min(blobs, 2))]
    ids: list[str] = []
    with httpx.Client(timeout=120) as client:
        start = time.perf_counter()
        for i in range(blobs):
            body = bodies[i % len(bodies)] + i.to_bytes(8, "big")
            r = client.put(f"{url}/v1/blobs", params={"epochs": 1}, content=body)
            r.raise_for_status()
            ids.append(parse_store_result(r.content, len(body), url).blob_id)
        put_secs = time.perf_counter() - start
        start = time.perf_counter()
        got = 0
        for blob_id in ids:
            r = client.get(f"{url}/v1/blobs/{blob_id}")
            r.raise_for_status()
            got += len(r.content)
        get_secs = time.perf_counter() - start
    total = blobs * (blob_size + 8)
    return {"blob_bytes": blob_size, "blobs": blobs, "put_mb_per_s": total / put_secs / 1e6,
            "get_mb_per_s": got / get_secs / 1e6}


def sha256_rate(total_bytes: int, chunk: int = 256 * 1024) -> dict[str, Any]:
    data = os.urandom(chunk)
    n = max(1, total_bytes // chunk)
    start = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(data).digest()
    secs = time.perf_counter() - start
    return {"chunk": chunk, "mb_per_s": n * chunk / secs / 1e6}
