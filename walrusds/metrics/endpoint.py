"""The Prometheus endpoint: ``GET /metrics`` on the service's own asyncio loop (aiohttp).

prometheus_client's thread server is not used: one loop, one concurrency model, and the
collectors (pool statistics, in-process counters) are read on the loop that writes them.

An address already in use does not stop the service (the datastore matters more than its
metrics, and a restart on the same host may briefly overlap the old process): the endpoint
logs a warning and tries to bind again every ``RETRY_SECONDS`` until it succeeds or stops.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from walrusds.metrics.address import MetricsAddress
from walrusds.tasks import cancel_and_wait

__all__ = ["MetricsEndpoint"]

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
#: The classic text format: every Prometheus version reads it (names here are plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry, address: MetricsAddress) -> None:
        self.registry = registry
        self.address = address
        self.bound: MetricsAddress | None = None
        self._runner: web.AppRunner | None = None
        self._retry: asyncio.Task[None] | None = None

    @property
    def url(self) -> str | None:
        """``http://host:port/metrics`` once listening (the real port when 0 was asked)."""
        return None if self.bound is None else f"http://{self.bound}/metrics"

    async def start(self) -> None:
        if not self.address.loopback:
            log.warning("metrics endpoint on %s is reachable from other hosts; metrics carry "
                        "no secrets, but restrict access with a firewall if that matters",
                        self.address)
        if not await self._bind():
            self._retry = asyncio.get_running_loop().create_task(self._bind_later(),
                                                                 name="metrics-bind")

    async def stop(self) -> None:
        retry, self._retry = self._retry, None
        await cancel_and_wait(retry)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.bound = None

    async def _bind(self) -> bool:
        app = web.Application()
        app.router.add_get("/metrics", self._serve, allow_head=False)
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.address.host, self.address.port).start()
        except OSError as exc:
            await runner.cleanup()
            if self._retry is None:
                log.warning("metrics endpoint cannot listen on %s (%s); retrying every "
                            "%.0f s", self.address, exc.strerror or exc, RETRY_SECONDS)
            return False
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self.bound = MetricsAddress(str(host), int(port))
        log.info("metrics on %s", self.url)
        return True

    async def _bind_later(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            if await self._bind():
                return

    async def _serve(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
