"""Read-replica metrics (nodes with ``postgres.replica_dsn``): whether the replica is used,
its lag, and where lookups, queries and relocated reads went. Read from the watch and the
routing's plain counters when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from walrusds.index.replica import ReplicaReads
from walrusds.index.replica_watch import STATES

__all__ = ["ReplicaCollector"]


class ReplicaCollector(Collector):
    def __init__(self, reads: ReplicaReads) -> None:
        self.reads = reads

    def collect(self) -> Iterator[Metric]:
        status = self.reads.watch.status
        yield GaugeMetricFamily("walrusds_replica_usable",
                                "1 while block-key lookups read the Postgres replica first",
                                value=1.0 if status.usable else 0.0)
        state = GaugeMetricFamily("walrusds_replica_state",
                                  "The replica's state (1 for the current one)", labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if status.state == name else 0.0)
        yield state
        yield GaugeMetricFamily("walrusds_replica_lag_seconds",
                                "Seconds of the primary's WAL the replica has not replayed "
                                "(-1: not measured)",
                                value=-1.0 if status.lag is None else status.lag)
        stats = self.reads.stats
        keys = CounterMetricFamily("walrusds_replica_lookup_keys",
                                   "Keys looked up on a replica node, by where the answer came "
                                   "from", labels=["answer"])
        keys.add_metric(["replica"], stats.replica)
        keys.add_metric(["primary_after_miss"], stats.after_miss)
        keys.add_metric(["primary_replica_unusable"], stats.skipped)
        keys.add_metric(["primary_not_block_key"], stats.mutable)
        yield keys
        queries = CounterMetricFamily("walrusds_replica_queries",
                                      "Queries on a replica node, by the server that ran them",
                                      labels=["server"])
        queries.add_metric(["replica"], stats.queries_replica)
        queries.add_metric(["primary"], stats.queries_primary)
        yield queries
        yield CounterMetricFamily("walrusds_replica_relocated_reads",
                                  "Packed entries whose read at the replica's location failed "
                                  "and were read again where the primary says they are",
                                  value=stats.relocated)

    def describe(self) -> Iterator[Metric]:
        return self.collect()
