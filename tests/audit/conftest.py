"""A rig for the audit tests: a service packing to the emulator, a test-driven flusher, and
helpers to read the index and run verify/reindex in process or as a real ``walrusds`` process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from tests.flush.conftest import walrus_config
from walrusds.audit.reindex import ReindexReport, reindex_dataset
from walrusds.audit.verifier import Report, options_for, verify_dataset
from walrusds.config import Config, RenewConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb

#: The ``sql`` fixture: (query, *params) -> rows.
SQL = Callable[..., list[tuple[Any, ...]]]


class Rig:
    """A service with its own flusher; ``live`` mirrors what every key should read back."""

    def __init__(self, svc: Service, config: Config, control: EmulatorControl,
                 channel: Any) -> None:
        assert svc.backend is not None
        assert svc.backend.store is not None
        self.svc, self.config, self.control, self.channel = svc, config, control, channel
        self.store = svc.backend.store
        self.api = stub(channel)
        self.flusher = Flusher(PackIndex(svc.pool, config.postgres.schema), svc.backend.store,
                               config, PackCapacity(config.pack.target_size), owner="audit:1")
        self.live: dict[bytes, bytes] = {}

    async def put(self, items: dict[bytes, bytes]) -> None:
        for key, value in items.items():
            await self.api.Put(pb.PutRequest(key=key, value=value))
        self.live.update(items)

    async def delete(self, keys: Sequence[bytes]) -> None:
        for key in keys:
            await self.api.Delete(pb.DeleteRequest(key=key))
            self.live.pop(key, None)

    async def flush(self) -> None:
        await self.flusher.flush_ready(force=True)

    async def get(self, key: bytes) -> bytes:
        return bytes((await self.api.Get(pb.GetRequest(key=key))).value)

    async def check_all(self) -> None:
        for key, value in self.live.items():
            assert await self.get(key) == value, key

    async def verify(self, sample: int | None = None, **options: Any) -> Report:
        """verify in process: every entry unless ``sample``."""
        return await verify_dataset(self.config, options_for(self.config, sample=sample,
                                                             **options))

    async def reindex(self, blob_ids: Sequence[str] = (), *, from_packs: bool = False,
                      dry_run: bool = False, epoch: int | None = None) -> ReindexReport:
        return await reindex_dataset(self.config, blob_ids, from_packs=from_packs,
                                     dry_run=dry_run, epoch=epoch)


def audit_config(config: Config, url: str) -> Config:
    """16 KiB packs bought for 3 epochs; no background flusher or renewal worker (tests drive
    both), and an epoch length so long that the known epoch only moves with store answers."""
    cfg = walrus_config(config, url, flush=False)
    return dataclasses.replace(cfg, renew=RenewConfig(
        enabled=False, margin_epochs=2, epochs=6, epoch_seconds=1e9)).validate()


@pytest.fixture
async def rig(config: Config, emulator: RunningEmulator,
              control: EmulatorControl) -> AsyncIterator[Rig]:
    cfg = audit_config(config, emulator.url)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        yield Rig(svc, cfg, control, channel)
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


def blocks(n: int, size: int = 900, tag: str = "") -> dict[bytes, bytes]:
    """``n`` plain (non-block) keys with random values."""
    return {f"/audit/{tag}{i:04d}".encode(): os.urandom(size) for i in range(n)}


def snapshot(sql: SQL) -> tuple[Any, ...]:
    """Every row of every table an audit could touch, in a stable order."""
    return (
        sql("SELECT key, size, digest, value, pack_id, pack_offset, claim_pack_id, staged_at "
            "FROM {s}.entries ORDER BY key"),
        sql("SELECT * FROM {s}.packs ORDER BY id"),
        sql("SELECT * FROM {s}.walrus_state"),
        sql("SELECT * FROM {s}.data_loss_events ORDER BY id"),
    )


def cli_env(rig: Rig, *, aggregators: bool = True) -> dict[str, str]:
    cfg = rig.config
    env = {**os.environ,
           "WALRUSDS_POSTGRES_DSN": cfg.postgres.dsn,
           "WALRUSDS_POSTGRES_SCHEMA": cfg.postgres.schema,
           "WALRUSDS_RENEW_EPOCH_SECONDS": str(cfg.renew.epoch_seconds)}
    env.pop("WALRUSDS_WALRUS_AGGREGATORS", None)
    env.pop("WALRUSDS_CONFIG", None)
    if aggregators:
        env["WALRUSDS_WALRUS_AGGREGATORS"] = ",".join(cfg.walrus.aggregators)
    return env


async def walrusds(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``walrusds ARGS`` as a real process: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walrusds", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
