"""Fixtures for the emulator tests: a running emulator on loopback and an httpx client for it.

Every test talks to the emulator over real HTTP (httpx → 127.0.0.1). ``start`` starts more
emulators with their own configuration; all of them are stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import Starter
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator, start_emulator


@pytest.fixture
async def start() -> AsyncIterator[Starter]:
    """``await start(**config_fields)`` → a RunningEmulator, stopped at teardown."""
    started: list[RunningEmulator] = []

    async def _start(**fields: Any) -> RunningEmulator:
        running = await start_emulator(EmulatorConfig(**fields))
        started.append(running)
        return running

    yield _start
    for running in started:
        await running.stop()


@pytest.fixture
async def emulator(start: Starter) -> RunningEmulator:
    return await start(seed=1)


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def control(emulator: RunningEmulator) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator.url) as ctl:
        yield ctl
