"""Fixtures for the Walrus data path: an emulator on loopback and a service that packs to it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from walrusds.config import Config, PackConfig, WalrusConfig
from walrusds.emulator.runner import RunningEmulator
from walrusds.flusher import Flusher, PackCapacity
from walrusds.index.packs import PackIndex
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service


def walrus_config(config: Config, url: str, **pack: Any) -> Config:
    """``config`` pointed at an emulator, with 16 KiB packs."""
    pack = {"target_size": 16 * 1024, **pack}
    return dataclasses.replace(
        config,
        walrus=WalrusConfig(publishers=(url,), aggregators=(url,), epochs=3, deadline=20.0),
        pack=dataclasses.replace(PackConfig(), **pack)).validate()


@pytest.fixture
def packed_config(config: Config, emulator: RunningEmulator) -> Config:
    """No background flusher: tests flush with their own :class:`Flusher` when they choose."""
    return walrus_config(config, emulator.url, flush=False)


@pytest.fixture
async def walrus_service(packed_config: Config) -> AsyncIterator[Service]:
    svc = await Service.start(packed_config)
    try:
        yield svc
    finally:
        await svc.stop(grace=0.5)


@pytest.fixture
def flusher(walrus_service: Service, packed_config: Config) -> Flusher:
    """A flusher on the service's pool and Walrus client, driven by the test."""
    assert walrus_service.backend is not None
    assert walrus_service.backend.store is not None
    return Flusher(PackIndex(walrus_service.pool, packed_config.postgres.schema),
                   walrus_service.backend.store, packed_config,
                   PackCapacity(packed_config.pack.target_size), owner="test:1")


@pytest.fixture
async def wapi(walrus_service: Service) -> AsyncIterator[Any]:
    channel = open_aio_channel(walrus_service.address)
    try:
        yield stub(channel)
    finally:
        await channel.close()
