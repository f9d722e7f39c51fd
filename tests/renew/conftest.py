"""A rig for the renewal tests: a service, a test-driven flusher and renewal worker, and the
emulator's epoch clock."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.flush.conftest import walrus_config
from walrusds.config import Config, RenewConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.renew import RenewWorker
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


class Rig:
    def __init__(self, svc: Service, config: Config, control: EmulatorControl,
                 channel: Any) -> None:
        assert svc.backend is not None
        assert svc.backend.store is not None
        assert svc.backend.reader is not None
        self.svc, self.config, self.control = svc, config, control
        self.api = stub(channel)
        self.channel = channel
        self.flusher = Flusher(PackIndex(svc.pool, config.postgres.schema), svc.backend.store,
                               config, PackCapacity(config.pack.target_size), owner="rig:1")
        self.worker = RenewWorker(svc.pool, svc.backend.store, config, owner="rig:1",
                                  reader=svc.backend.reader)
        self.live: dict[bytes, bytes] = {}
        self.serial = 0

    async def put(self, n: int, size: int = 1000) -> list[bytes]:
        keys = []
        for _ in range(n):
            self.serial += 1
            key, value = f"/r/{self.serial:06d}".encode(), os.urandom(size)
            await self.api.Put(pb.PutRequest(key=key, value=value))
            self.live[key] = value
            keys.append(key)
        return keys

    async def delete(self, keys: list[bytes]) -> None:
        for key in keys:
            await self.api.Delete(pb.DeleteRequest(key=key))
            self.live.pop(key, None)

    async def flush(self) -> None:
        await self.flusher.flush_ready(force=True)

    async def next_epoch(self, n: int = 1) -> int:
        """Advance the network's epoch; walrusds learns it from its next store response."""
        return int(await self.control.advance_epoch(n))

    async def learn_epoch(self) -> None:
        """A store happens (a small write is packed), so the store response reports the epoch.
        The probe key is deleted again: its pack lapses, it is not part of the test's data."""
        [key] = await self.put(1, size=10)
        await self.flush()
        await self.delete([key])

    async def check_all_readable(self) -> None:
        for key, value in self.live.items():
            got = await self.api.Get(pb.GetRequest(key=key))
            assert bytes(got.value) == value, key


def rig_config(config: Config, url: str, **renew: Any) -> Config:
    cfg = walrus_config(config, url, flush=False)
    return dataclasses.replace(cfg, renew=dataclasses.replace(
        RenewConfig(enabled=False, margin_epochs=2, epochs=6, dead_threshold=0.3,
                    epoch_seconds=1e9), **renew)).validate()


@pytest.fixture
async def rig(config: Config, emulator: RunningEmulator,
              control: EmulatorControl) -> AsyncIterator[Rig]:
    cfg = rig_config(config, emulator.url)
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        yield Rig(svc, cfg, control, channel)
    finally:
        await channel.close()
        await svc.stop(grace=0.5)
