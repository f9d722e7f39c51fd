"""Postgres connection pool metrics, read from ``psycopg_pool``'s own ``get_stats()`` when
Prometheus scrapes (in memory, no query). The pool keeps counters only for events that
happened, so absent ones read as 0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

__all__ = ["PoolCollector"]

_GAUGES = (
    ("walrusds_postgres_pool_connections", "pool_size",
     "Connections the pool holds now (in use and idle)"),
    ("walrusds_postgres_pool_available", "pool_available", "Idle connections ready for use"),
    ("walrusds_postgres_pool_waiting", "requests_waiting",
     "Callers waiting for a connection now"),
    ("walrusds_postgres_pool_max", "pool_max", "postgres.pool_max"),
)
_COUNTERS = (
    ("walrusds_postgres_pool_requests", "requests_num", "Connections requested from the pool"),
    ("walrusds_postgres_pool_request_errors", "requests_errors",
     "Connection requests that failed (timeout or pool closed)"),
    ("walrusds_postgres_pool_connections_lost", "connections_lost",
     "Connections found broken and discarded"),
    ("walrusds_postgres_pool_connection_errors", "connections_errors",
     "Failed attempts to open a connection"),
)


class PoolCollector(Collector):
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        stats = self.pool.get_stats()
        for name, key, doc in _GAUGES:
            yield GaugeMetricFamily(name, doc, value=float(stats.get(key, 0)))
        for name, key, doc in _COUNTERS:
            yield CounterMetricFamily(name, doc, value=float(stats.get(key, 0)))
        wait = CounterMetricFamily("walrusds_postgres_pool_wait_seconds",
                                   "Seconds callers spent waiting for a connection",
                                   value=stats.get("requests_wait_ms", 0) / 1000.0)
        yield wait

    def describe(self) -> Iterator[Metric]:
        return self.collect()
