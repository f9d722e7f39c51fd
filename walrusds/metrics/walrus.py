"""Walrus metrics: HTTP requests by operation and outcome, and the verified read path.

:class:`WalrusMetrics` is the :class:`~walrusds.client.http.HttpObserver` the HTTP client calls
after each request to one endpoint. The client's :class:`~walrusds.client.http.HttpStats` and
the reader's :class:`~walrusds.reader.ReadStats` are plain counters the code already keeps;
:class:`StatsCollector` turns them into Prometheus counters when scraped, so neither module
imports prometheus or needs a hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from walrusds.client.http import OUTCOMES, HttpStats
from walrusds.reader import ReadStats

__all__ = ["WALRUS_BUCKETS", "StatsCollector", "WalrusMetrics", "http_counters",
           "read_counters"]

#: Seconds: a ranged read from a nearby aggregator takes milliseconds, a 64 MiB store minutes.
WALRUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                  120.0, 300.0, 600.0)
OPERATIONS = ("store", "read")


class WalrusMetrics:
    """Counts and times every request to a publisher or aggregator."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "walrusds_walrus_requests",
            "HTTP requests to Walrus endpoints, by operation (store: publisher, read: "
            "aggregator) and outcome", ["operation", "outcome"], registry=registry)
        self.duration = Histogram(
            "walrusds_walrus_request_duration_seconds",
            "Seconds per HTTP request to one Walrus endpoint", ["operation", "outcome"],
            buckets=WALRUS_BUCKETS, registry=registry)
        for op in OPERATIONS:  # zeros from the start, so rate() and alerts see every series
            for outcome in OUTCOMES:
                self.requests.labels(op, outcome)

    def request_done(self, operation: str, outcome: str, seconds: float) -> None:
        self.requests.labels(operation, outcome).inc()
        self.duration.labels(operation, outcome).observe(seconds)


#: (metric name without _total, help, labels, getter) for one counter read at scrape time.
CounterSpec = tuple[str, str, dict[str, str], Callable[[], float]]


class StatsCollector(Collector):
    """Counters read from in-process stats objects when Prometheus scrapes."""

    def __init__(self, specs: Iterable[CounterSpec]) -> None:
        self.specs = list(specs)

    def collect(self) -> Iterator[CounterMetricFamily]:
        families: dict[str, CounterMetricFamily] = {}
        for name, doc, labels, value in self.specs:
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(name, doc, labels=list(labels))
            family.add_metric(list(labels.values()), float(value()))
        yield from families.values()

    def describe(self) -> Iterator[CounterMetricFamily]:
        return self.collect()


def http_counters(stats: HttpStats) -> list[CounterSpec]:
    return [
        ("walrusds_walrus_stored_bytes", "Bytes of blobs publishers accepted (flushes and "
         "renewals)", {}, lambda: stats.stored_bytes),
        ("walrusds_walrus_range_ignored", "Ranged reads answered with the whole blob (the "
         "aggregator ignored Range)", {}, lambda: stats.range_ignored),
        ("walrusds_walrus_failovers", "Requests retried on the next endpoint after one "
         "failed", {}, lambda: stats.failovers),
    ]


def read_counters(stats: ReadStats) -> list[CounterSpec]:
    failures = "Packed entries whose bytes could not be returned intact (DATA_LOSS): corrupt " \
               "on every aggregator, or blob lost"
    return [
        ("walrusds_read_verification_failures", failures, {"kind": "corrupt"},
         lambda: stats.corrupt),
        ("walrusds_read_verification_failures", failures, {"kind": "lost"},
         lambda: stats.lost),
        ("walrusds_read_rereads", "Entries read again because their bytes failed "
         "verification (a success on a re-read is a healed corruption)", {},
         lambda: stats.reread),
        ("walrusds_read_requests", "Ranged reads of packed entries sent to Walrus", {},
         lambda: stats.reads),
        ("walrusds_read_bytes", "Bytes of packed entries read from Walrus", {},
         lambda: stats.bytes),
        ("walrusds_read_entries", "Packed entries returned after verification", {},
         lambda: stats.entries),
        ("walrusds_read_whole_packs", "Reads served from a pack fetched whole because many "
         "of its entries were read in a short window (walrus.prefetch_reads)", {},
         lambda: stats.whole_packs),
    ]
