"""Fixtures for the Walrus client tests: an emulator on loopback and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from walrusds.client import HttpBlobStore, RetryingBlobStore, RetryPolicy
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator, start_emulator

#: Fast backoff for tests; the shape (attempts, deadline) is the production one.
FAST = RetryPolicy(attempts=4, initial=0.01, max_wait=0.05, jitter=0.01, deadline=30.0)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(EmulatorConfig(seed=7))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def control(emulator: RunningEmulator) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator.url) as ctl:
        yield ctl


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[HttpBlobStore]:
    store = HttpBlobStore([emulator.url], [emulator.url], cache_bytes=1 << 20)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
def walrus(http: HttpBlobStore) -> RetryingBlobStore:
    return RetryingBlobStore(http, FAST)
