"""Prometheus metrics of a running service (docs/observability.md lists every one).

- :mod:`.service` — :class:`ServiceMetrics`, one registry per service, wired by ``server.app``;
- :mod:`.rpc` — gRPC calls by method and code, in flight, refused;
- :mod:`.walrus` — Walrus HTTP requests by operation and outcome; read-path verification;
- :mod:`.workers` — flusher and renewal outcomes (through the workers' hooks);
- :mod:`.index` — gauges from the Postgres views, refreshed in the background;
- :mod:`.pool` — the Postgres connection pool;
- :mod:`.endpoint` — ``GET /metrics`` on the service's asyncio loop (aiohttp);
- :mod:`.address` — parsing ``[metrics] listen``.

No label ever holds a key, a blob ID, an endpoint URL or a secret: labels are method, code,
operation, outcome, state, kind and action names from fixed lists.

Nothing is imported here, so configuration validation can use :mod:`.address` without loading
prometheus_client and the service.
"""
