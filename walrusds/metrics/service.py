"""ServiceMetrics: every metric of one running service, on its own registry.

A per-service :class:`CollectorRegistry` (never prometheus_client's global one) lets several
services run in one process, as the tests do, without clashing names. The composition root
(``server.app``) creates it first, hands :attr:`rpc` to the gRPC servicer, attaches the pool and
the Walrus backend, and starts the endpoint and the index refresher once the service serves.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.process_collector import ProcessCollector
from psycopg_pool import AsyncConnectionPool

from walrusds import __version__
from walrusds.backend import WalrusBackend
from walrusds.client.http import HttpBlobStore
from walrusds.config import Config
from walrusds.metrics.address import parse_metrics_listen
from walrusds.metrics.endpoint import MetricsEndpoint
from walrusds.metrics.index import IndexGauges
from walrusds.metrics.pool import PoolCollector
from walrusds.metrics.rpc import RpcMetrics
from walrusds.metrics.walrus import StatsCollector, WalrusMetrics, http_counters, read_counters
from walrusds.metrics.workers import FlushMetrics, RenewMetrics

__all__ = ["ServiceMetrics", "find_http_store"]

# `*_created` series double every counter for no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]


def find_http_store(store: object) -> HttpBlobStore | None:
    """The HTTP client inside a stack of wrappers (each keeps the one it wraps in ``inner``)."""
    for _ in range(8):
        if isinstance(store, HttpBlobStore):
            return store
        store = getattr(store, "inner", None)
        if store is None:
            return None
    return None


class ServiceMetrics:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.rpc = RpcMetrics(self.registry, limit=config.limits.max_concurrent_rpcs)
        self.walrus = WalrusMetrics(self.registry)
        self.flush = FlushMetrics(self.registry)
        self.renew = RenewMetrics(self.registry)
        self.serving = Gauge("walrusds_health_serving",
                             "1 while the gRPC health status is SERVING (Postgres answers and "
                             "the service is not shutting down), else 0",
                             registry=self.registry)
        info = Gauge("walrusds_build_info", "walrusds version (value 1)", ["version"],
                     registry=self.registry)
        info.labels(__version__).set(1)
        ProcessCollector(namespace="walrusds", registry=self.registry)
        self.index: IndexGauges | None = None
        address = parse_metrics_listen(config.metrics.listen)
        self.endpoint = None if address is None else MetricsEndpoint(self.registry, address)

    def attach_pool(self, pool: AsyncConnectionPool[Any]) -> None:
        self.registry.register(PoolCollector(pool))
        self.index = IndexGauges(self.registry, pool, self.config)

    def attach_backend(self, backend: WalrusBackend) -> None:
        """Hook into the Walrus client, the reader and the workers this node runs."""
        http = find_http_store(backend.store)
        if http is not None:
            http.observer = self.walrus
            self.registry.register(StatsCollector(http_counters(http.stats)))
        if backend.reader is not None:
            self.registry.register(StatsCollector(read_counters(backend.reader.stats)))
        if backend.flusher is not None:
            backend.flusher.on_flush = self.flush.flushed
        if backend.renewer is not None:
            backend.renewer.on_action = self.renew.action
            backend.renewer.on_pass = self.renew.finished_pass

    async def start(self) -> None:
        """Serve /metrics and refresh the index gauges (only when someone can scrape)."""
        if self.endpoint is None:
            return
        if self.index is not None:
            self.index.start()
        await self.endpoint.start()

    async def stop(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.stop()
        if self.index is not None:
            await self.index.stop()
