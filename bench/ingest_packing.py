"""Pack ratio under steady ingest: entries per pack and fill against the target.

Runs the real stack in one process — a private PostgreSQL cluster, the Walrus emulator over
loopback HTTP, the service with its default pack settings (64 MiB target, flusher on) — and
streams ``--values`` random values of ``--value-size`` bytes through gRPC Batch calls from
``--writers`` concurrent writers. When the size-triggered packs are stored it prints the
``pack_ratio`` view (docs/operations.md), the figures an operator would read.

    .venv/bin/python -m bench.ingest_packing [--values 1024] [--value-size 262144]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from walrusds.config import Config, MetricsConfig, PostgresConfig, WalrusConfig
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.runner import start_emulator
from walrusds.localpg import LocalCluster, cluster_os_user
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


async def ingest(api: Any, values: int, size: int, writers: int, batch: int) -> float:
    counter = iter(range(values))

    async def writer() -> None:
        while True:
            keys = [k for _, k in zip(range(batch), counter, strict=False)]
            if not keys:
                return

            async def stream(keys: list[int] = keys) -> Any:
                for k in keys:
                    yield pb.BatchRequest(put=pb.BatchPut(key=f"/bench/{k:08d}".encode(),
                                                          value=os.urandom(size)))

            await api.Batch(stream())

    start = time.monotonic()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.monotonic() - start


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="walrusds-bench-") as tmp:
        if cluster_os_user() is not None:
            os.chmod(tmp, 0o711)
        cluster = LocalCluster(Path(tmp) / "pg")
        cluster.ensure_created()
        cluster.start()
        emulator = await start_emulator(EmulatorConfig(max_body_size=2 * args.target))
        try:
            config = Config(
                listen="127.0.0.1:0",
                postgres=PostgresConfig(dsn=cluster.dsn()),
                walrus=WalrusConfig(publishers=(emulator.url,), aggregators=(emulator.url,)),
                metrics=MetricsConfig(listen=""))  # no fixed port: other services may hold it
            config = dataclasses.replace(
                config, pack=dataclasses.replace(config.pack, target_size=args.target))
            service = await Service.start(config.validate())
            channel = open_aio_channel(service.address)
            try:
                seconds = await ingest(stub(channel), args.values, args.value_size,
                                       args.writers, args.batch)
                ratio = await wait_for_full_packs(cluster.dsn(), args.target)
            finally:
                await channel.close()
                await service.stop(grace=1.0)
        finally:
            await emulator.stop()
            cluster.stop()
    ratio["ingest_seconds"] = round(seconds, 1)
    ratio["ingest_mib_per_second"] = round(args.values * args.value_size / seconds / 2**20, 1)
    return ratio


async def wait_for_full_packs(dsn: str, target: int) -> dict[str, Any]:
    """Until fewer bytes are staged than one pack holds: the size trigger has done its work."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        while True:
            backlog = conn.execute("SELECT bytes, claimed FROM walrusds.staged_backlog").fetchone()
            building = conn.execute("SELECT count(*) AS n FROM walrusds.packs "
                                    "WHERE state = 'building'").fetchone()
            assert backlog is not None
            assert building is not None
            if backlog["bytes"] < target and building["n"] == 0:
                row = conn.execute(
                    "SELECT packs, entries, entries_per_pack, avg_fill_pct, pack_bytes, "
                    "encoded_per_live_byte FROM walrusds.pack_ratio").fetchone()
                assert row is not None
                return {k: (float(v) if hasattr(v, "is_finite") else v) for k, v in row.items()}
            await asyncio.sleep(0.2)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--values", type=int, default=1024)
    p.add_argument("--value-size", type=int, default=256 * 1024)
    p.add_argument("--target", type=int, default=64 * 1024 * 1024)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--batch", type=int, default=16, help="values per Batch call")
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse())), indent=2))
