"""One benchmark run: every figure of bench/RESULTS.md, side by side, on one stack.

    .venv/bin/python -m bench.run --size quick     # make bench-quick (under ~10 minutes)
    .venv/bin/python -m bench.run --size full      # make bench

Writes bench/results/<size>.json and rewrites bench/RESULTS.md (``--no-report`` skips that;
``--out DIR`` puts the JSON elsewhere). ``--size tiny`` is the smoke test's configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench import ceilings, dataset, gobench, kubo, machine, pyclient, report
from bench.sizes import SIZES, Size
from bench.stack import REPO, Stack, running_stack
from walrusds.emulator.control import EmulatorControl

RESULTS = REPO / "bench" / "results"
SERVICE_LEVEL = {"pack_idle": "3600", "pack_max_age": "3600"}


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def timed(what: str, fn: Callable[[], Any]) -> Any:
    log(what)
    return fn()


def wait_packed(dsn: str, timeout: float = 600) -> None:
    """Until nothing is staged and no pack is being built."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            staged = conn.execute("SELECT count(*) FROM walrusds.entries "
                                  "WHERE pack_id IS NULL").fetchone()
            building = conn.execute("SELECT count(*) FROM walrusds.packs "
                                    "WHERE state = 'building'").fetchone()
            assert staged is not None
            assert building is not None
            if staged[0] == 0 and building[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{staged[0]} entries still staged after {timeout} s")
            time.sleep(0.25)


def pack_figures(dsn: str) -> dict[str, Any]:
    """Fill and entries per pack of the packs the run stored (not the generated rows' pack)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(entry_count), 0), coalesce(avg(entry_count), 0),"
            " coalesce(avg(pack_bytes), 0), coalesce(max(pack_bytes), 0)"
            " FROM walrusds.packs WHERE state = 'stored' AND blob_id <> %s",
            (dataset.PACK_BLOB,)).fetchone()
        full = conn.execute(
            "SELECT count(*), coalesce(avg(entry_count), 0) FROM walrusds.packs"
            " WHERE state = 'stored' AND blob_id <> %s AND pack_bytes >= 0.95 * %s",
            (dataset.PACK_BLOB, 64 * 2**20)).fetchone()
    assert row is not None
    assert full is not None
    return {"packs": int(row[0]), "entries": int(row[1]), "full_packs": int(full[0]),
            "full_entries_per_pack": float(full[1]),
            "entries_per_pack": float(row[2]), "avg_pack_bytes": float(row[3]),
            "max_pack_bytes": int(row[4])}


def lookups(stack: Stack, sz: Size, gen: str, n: int, concurrency: list[int]
            ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in ("has", "getsize"):
        for c in concurrency:
            log(f"go {op} c={c} over {n} keys")
            out[f"go_{op}_c{c}"] = gobench.run(stack.address, "lookup", op=op, gen=gen, lo=0,
                                               hi=n, c=c, duration=f"{sz.lookup_seconds}s")
            log(f"py {op} c={c}")
            out[f"py_{op}_c{c}"] = asyncio.run(pyclient.lookup(
                stack.address, op=op, gen=gen, lo=0, hi=n, conc=c, duration=sz.lookup_seconds))
    return out


def queries(stack: Stack, prefix: str) -> dict[str, Any]:
    assert stack.service is not None
    out: dict[str, Any] = {}
    for client in ("go", "py"):
        stack.service.reset_peak()
        before = stack.service.rss()
        if client == "go":
            r = timed(f"go query {prefix}", lambda: gobench.run(stack.address, "query",
                                                                prefix=prefix))
        else:
            r = timed(f"py query {prefix}", lambda: asyncio.run(
                pyclient.query(stack.address, prefix=prefix)))
        r["service_rss_before"] = before
        r["service_peak_rss"] = stack.service.peak_rss()
        out[client] = r
    return out


def scale_point(stack: Stack, sz: Size, gen: str, n: int, prefix: str) -> dict[str, Any]:
    has = timed(f"scale: go has c=32 over {n}", lambda: gobench.run(
        stack.address, "lookup", op="has", gen=gen, lo=0, hi=n, c=32,
        duration=f"{sz.lookup_seconds}s"))
    return {"keys": n, "has_c32": has, "query": queries(stack, prefix)}


def ingest(stack: Stack, sz: Size) -> dict[str, Any]:
    """Per value size: staging alone (flusher off: the like-for-like figure against the
    staging ceiling), then the shim again with the flusher packing at the size trigger (it
    starts with nothing staged)."""
    out: dict[str, Any] = {}
    for size in sz.value_sizes:
        count = max(64, sz.ingest_bytes // size)
        stack.start_service(pack_flush="false", **SERVICE_LEVEL)
        log(f"go ingest {count} x {size}")
        out[f"go_{size}"] = gobench.run(stack.address, "ingest", prefix=f"/ingest/go{size}",
                                        size=size, count=count, writers=4, batch=64)
        log(f"py ingest {count} x {size}")
        out[f"py_{size}"] = asyncio.run(pyclient.ingest(
            stack.address, prefix=f"/ingest/py{size}", size=size, count=count, writers=4,
            batch=64))
        log(f"postgres staging ceiling {size}")
        out[f"ceiling_{size}"] = ceilings.pg_staging(stack.dsn, size, sz.ingest_bytes)
        stack.start_service(pack_idle="0.5", pack_interval="0.5", pack_max_age="1")
        timed("packing the staged backlog", lambda: wait_packed(stack.dsn))
        stack.start_service(**SERVICE_LEVEL)
        log(f"go ingest {count} x {size} while packing")
        out[f"go_packing_{size}"] = gobench.run(
            stack.address, "ingest", prefix=f"/ingest/gopack{size}", size=size, count=count,
            writers=4, batch=64)
    return out


async def ignore_range(url: str, on: bool) -> None:
    """Make the emulator's reads ignore ``Range`` (whole blobs, so the service caches packs)."""
    async with EmulatorControl(url) as control:
        if on:
            await control.add_fault("read", "ignore_range")
        else:
            await control.clear_faults()


def gets(stack: Stack, sz: Size) -> dict[str, Any]:
    """Staged; packed-cold (prefetch off: every value a ranged read); packed-prefetch (a fresh
    service with the default pack prefetch); packed-warm (whole packs cached)."""
    n, size = sz.get_values, 256 * 1024
    out: dict[str, Any] = {}
    stack.start_service(pack_flush="false")
    gobench.run(stack.address, "ingest", prefix="/get", size=size, count=n, writers=4,
                batch=32)

    def both(kind: str, fresh: dict[str, str] | None = None) -> None:
        """Go then Python; ``fresh``: each on a service started with these settings."""
        if fresh is not None:
            stack.start_service(**fresh)
        out[f"go_{kind}"] = timed(f"go get {kind}", lambda: gobench.run(
            stack.address, "get", prefix="/get", count=n, c=32))
        if fresh is not None:
            stack.start_service(**fresh)
        out[f"py_{kind}"] = timed(f"py get {kind}", lambda: asyncio.run(
            pyclient.get(stack.address, prefix="/get", count=n, conc=32)))

    both("staged")
    stack.start_service(pack_idle="0.5", pack_interval="0.5", pack_max_age="1")
    timed("waiting for the flusher to pack everything", lambda: wait_packed(stack.dsn))
    out["packs"] = pack_figures(stack.dsn)
    both("packed_cold", {**SERVICE_LEVEL, "walrus_prefetch_reads": "0"})
    both("packed_prefetch", SERVICE_LEVEL)
    asyncio.run(ignore_range(stack.emulator_url, True))
    stack.start_service(**SERVICE_LEVEL)
    gobench.run(stack.address, "get", prefix="/get", count=n, c=4)  # fills the pack cache
    both("packed_warm")
    asyncio.run(ignore_range(stack.emulator_url, False))
    return out


def kubo_level(stack: Stack, sz: Size) -> dict[str, Any]:
    kubo.ensure_ipfs()
    stack.start_service(pack_idle="0.5", pack_interval="0.5", pack_max_age="1")
    big, tree, tree_bytes = kubo.make_inputs(stack.tmp / "inputs", sz.kubo_big, sz.kubo_files)
    flat = kubo.init_flatfs(stack.tmp / "ipfs-flatfs")
    on_walrus = kubo.init_walrusds(stack.tmp / "ipfs-walrusds", stack.address)
    f = timed("kubo on flatfs", lambda: kubo.measure(flat, big, tree, lambda: None))

    def pack_then_restart() -> None:
        wait_packed(stack.dsn)
        stack.start_service(**SERVICE_LEVEL)
    w = timed("kubo on walrusds", lambda: kubo.measure(on_walrus, big, tree, pack_then_restart))
    if (f["big_cid"], f["tree_cid"]) != (w["big_cid"], w["tree_cid"]):
        raise RuntimeError("flatfs and walrusds repos gave different CIDs")
    return {"big_bytes": sz.kubo_big, "small_files": sz.kubo_files, "tree_bytes": tree_bytes,
            "flatfs": f, "walrusds": w}


def run(sz: Size) -> dict[str, Any]:
    results: dict[str, Any] = {"size": sz.name, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "machine": machine.describe(), "config": sz.as_dict()}
    timed("building walrusds-bench", gobench.build)
    start = time.monotonic()
    with running_stack() as stack:
        stack.start_service(**SERVICE_LEVEL)
        assert stack.service is not None
        results["service_idle_rss"] = stack.service.rss()
        c: dict[str, Any] = {"sha256": timed("sha256 ceiling", lambda:
                                             ceilings.sha256_rate(sz.ingest_bytes))}
        c["http"] = timed("http ceiling", lambda: ceilings.http_blobs(
            stack.emulator_url, 8 * 2**20, max(4, sz.ingest_bytes // (8 * 2**20))))
        scale: dict[str, Any] = {}
        results["generate_seconds"] = {"100k": timed(
            f"generating {sz.scale_small} rows", lambda: dataset.generate(
                stack.dsn, "/g/a/", 0, sz.scale_small))}
        scale["small"] = scale_point(stack, sz, "/g/a/", sz.scale_small, "/g/a")
        results["generate_seconds"]["1m"] = timed(
            f"generating {sz.lookup_keys - sz.scale_small} more rows", lambda:
            dataset.generate(stack.dsn, "/g/b/", 0, sz.lookup_keys - sz.scale_small))
        results["lookup"] = lookups(stack, sz, "/g/b/", sz.lookup_keys - sz.scale_small,
                                    sz.concurrency)
        c["pg_point"] = timed("postgres point lookups", lambda: ceilings.pg_point_lookups(
            stack.dsn, "/g/b/", sz.lookup_keys - sz.scale_small, sz.lookup_seconds))
        c["pg_any"] = timed("postgres ANY lookups", lambda: ceilings.pg_any_lookups(
            stack.dsn, "/g/b/", sz.lookup_keys - sz.scale_small, sz.lookup_seconds))
        scale["medium"] = scale_point(stack, sz, "/g/b/", sz.lookup_keys - sz.scale_small, "/g")
        scale["medium"]["keys"] = sz.lookup_keys
        results["query"] = scale["medium"]["query"]
        if sz.scale_large > sz.lookup_keys:
            results["generate_seconds"]["large"] = timed(
                f"generating {sz.scale_large - sz.lookup_keys} more rows", lambda:
                dataset.generate(stack.dsn, "/g/c/", 0, sz.scale_large - sz.lookup_keys))
            scale["large"] = scale_point(stack, sz, "/g/c/", sz.scale_large - sz.lookup_keys,
                                         "/g")
            scale["large"]["keys"] = sz.scale_large
        results["scale"] = scale
        results["ceilings"] = c
        results["ingest"] = ingest(stack, sz)
        results["get"] = gets(stack, sz)
        if sz.kubo_big:
            results["kubo"] = kubo_level(stack, sz)
    if sz.packing_values:
        from bench import ingest_packing
        args = argparse.Namespace(values=sz.packing_values, value_size=256 * 1024,
                                  target=64 * 2**20, writers=8, batch=16)
        results["packing"] = timed("ingest_packing", lambda: asyncio.run(
            ingest_packing.main(args)))
    results["seconds"] = time.monotonic() - start
    results["load_after"] = machine.loadavg()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-report", action="store_true", help="do not rewrite bench/RESULTS.md")
    p.add_argument("--report-from", type=Path, metavar="JSON",
                   help="measure nothing: rewrite bench/RESULTS.md from a saved run")
    args = p.parse_args()
    if args.report_from:
        report.write(json.loads(args.report_from.read_text()), REPO / "bench" / "RESULTS.md")
        return
    sz = SIZES[args.size]
    results = run(sz)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{sz.name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {path}")
    if not args.no_report:
        report.write(results, REPO / "bench" / "RESULTS.md")
        log("rewrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
