"""The state behind one running emulator: the network, the faults, the counters, the gates.

Route modules reach it through ``request.app[EMULATOR]``; tests that run the emulator in-process
may also use it directly (``RunningEmulator.emulator``). It holds no HTTP code itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.faults import FaultBook
from walrusds.emulator.shaping import Network
from walrusds.emulator.state import WalrusState

__all__ = ["EMULATOR", "SERVICE_OF_ROUTE", "Emulator", "Gate"]

#: Route names that are counted, and the service whose load-shedding gate they pass.
SERVICE_OF_ROUTE: dict[str, str | None] = {
    "store": "publisher", "read": "aggregator", "byte_range": "aggregator",
    "by_object_id": "aggregator", "status": None, "api": None,
}


@dataclass
class Gate:
    """A concurrency limit plus a bounded buffer, like the daemon's tower layers.

    At most ``concurrency`` calls are processed at once and ``buffer`` more may wait; any call
    beyond that is shed with 429 at once.
    """

    concurrency: int
    buffer: int
    in_flight: int = 0
    semaphore: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.concurrency)

    @property
    def full(self) -> bool:
        return self.in_flight >= self.concurrency + self.buffer


class Emulator:
    """One emulated Walrus network with a publisher and an aggregator in front of it."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = WalrusState(self.config)
        self.faults = FaultBook(self.config.seed)
        #: The distant-network profile in force; the control surface may change it.
        self.network = Network(self.config.network)
        #: The publisher's current ``--max-body-size``; the control surface may change it.
        self.max_body_size = self.config.max_body_size
        self.counters: Counter[str] = Counter()
        self.status_counters: dict[str, Counter[int]] = {}
        self.prefix_counters: dict[str, Counter[str]] = {}
        self.gates = {
            "publisher": Gate(self.config.store_concurrency, self.config.store_buffer),
            "aggregator": Gate(self.config.read_concurrency, self.config.read_buffer),
        }

    def count(self, route: str, prefix: str | None) -> None:
        """Count one call of ``route`` (and under ``prefix`` when the path had one)."""
        self.counters[route] += 1
        if prefix is not None:
            self.prefix_counters.setdefault(prefix, Counter())[route] += 1

    def count_status(self, route: str, status: int) -> None:
        self.status_counters.setdefault(route, Counter())[status] += 1

    def reset_counters(self) -> None:
        self.counters.clear()
        self.status_counters.clear()
        self.prefix_counters.clear()

    def counters_json(self) -> dict[str, Any]:
        """Calls per route, responses per route and status, calls per path prefix, in flight."""
        return {
            "routes": dict(self.counters),
            "statuses": {route: {str(code): n for code, n in sorted(c.items())}
                         for route, c in self.status_counters.items()},
            "prefixes": {p: dict(c) for p, c in self.prefix_counters.items()},
            "in_flight": {name: gate.in_flight for name, gate in self.gates.items()},
        }

    def set_max_body_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("max_body_size must be positive")
        self.max_body_size = size

    def release_waits(self) -> None:
        """End pending fault delays and latencies, stop pacing bodies (shutdown is near)."""
        self.faults.release_delays()
        self.network.stop()

    async def close(self) -> None:
        """Release pending waits and save the state (called when the server stops)."""
        self.release_waits()
        await self.state.save()


EMULATOR = web.AppKey("emulator", Emulator)
