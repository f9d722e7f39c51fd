"""Run the emulator inside the current event loop: for tests, ``walrusds up`` and the CLI.

::

    running = await start_emulator(EmulatorConfig(), port=0)
    ...  # talk to running.url over HTTP; running.emulator gives direct access
    await running.stop()

``RunningEmulator`` is also an async context manager. It is built on aiohttp's ``AppRunner`` and
``TCPSite``; port 0 picks a free port, and ``url`` reports the one chosen.
"""

from __future__ import annotations

import ipaddress
from types import TracebackType

from aiohttp import web

from walrusds.emulator.app import make_app
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.core import Emulator

__all__ = ["RunningEmulator", "is_loopback", "start_emulator"]

#: Seconds ``stop()`` lets in-flight requests finish before closing their connections.
SHUTDOWN_TIMEOUT = 2.0


class RunningEmulator:
    """A started emulator: its base ``url``, the ``emulator`` object, and :meth:`stop`."""

    def __init__(self, emulator: Emulator, runner: web.AppRunner, url: str) -> None:
        self.emulator = emulator
        self.url = url
        self._runner = runner
        self._stopped = False

    async def stop(self) -> None:
        """Stop listening, end pending fault delays, finish in-flight calls, save the state."""
        if self._stopped:
            return
        self._stopped = True
        # Delays, latencies and paced bodies would otherwise hold shutdown for their full length.
        self.emulator.release_waits()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningEmulator:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def start_emulator(config: EmulatorConfig, host: str = "127.0.0.1",
                         port: int = 0) -> RunningEmulator:
    """Start an emulator listening on ``host:port`` (0: a free port) in the running loop."""
    emulator = Emulator(config)
    runner = web.AppRunner(make_app(emulator), handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host.strip("[]"), port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    bound_host, bound_port = str(bound[0]), int(bound[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningEmulator(emulator, runner, f"http://{shown}:{bound_port}")
