"""gRPC call metrics: count and latency by method and status code, calls in flight, refusals.

``server.service`` calls :meth:`RpcMetrics.observe` once per call from its ``handled`` wrapper
(and the Query stream), with the status code the client saw. Labels are the method name and the
code name only: keys and values never become labels.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RPC_BUCKETS", "RpcMetrics"]

#: Seconds. Has/GetSize answer in well under a millisecond from a warm pool; a Batch of a
#: million keys or a Query of every key takes minutes.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0, 30.0, 60.0, 300.0)


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry, *, limit: int) -> None:
        self.requests = Counter(
            "walrusds_rpc_requests", "gRPC calls handled, by method and status code",
            ["method", "code"], registry=registry)
        self.duration = Histogram(
            "walrusds_rpc_duration_seconds",
            "Seconds from a call's arrival to its status (whole stream for Query and Batch)",
            ["method", "code"], buckets=RPC_BUCKETS, registry=registry)
        self.refused = Counter(
            "walrusds_rpc_admission_refusals",
            "Calls refused with RESOURCE_EXHAUSTED because limits.max_concurrent_rpcs calls "
            "were in flight", ["method"], registry=registry)
        self.in_flight = Gauge("walrusds_rpc_in_flight", "gRPC calls being handled now",
                               registry=registry)
        limit_gauge = Gauge("walrusds_rpc_in_flight_limit",
                            "limits.max_concurrent_rpcs: calls in flight before refusals",
                            registry=registry)
        limit_gauge.set(limit)

    def count_in_flight(self, current: Callable[[], int]) -> None:
        """Read the servicer's own in-flight counter at scrape time (one source of truth)."""
        self.in_flight.set_function(lambda: float(current()))

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.duration.labels(method, code).observe(seconds)

    def refusal(self, method: str) -> None:
        self.refused.labels(method).inc()
