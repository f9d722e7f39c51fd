"""Metrics of the background workers, fed by their hooks (``Flusher.on_flush``,
``RenewWorker.on_action`` and ``on_pass``): the workers do not import prometheus."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FLUSH_OUTCOMES", "FlushMetrics", "RenewMetrics"]

FLUSH_OUTCOMES = ("stored", "too_large", "failed", "lease_lost", "empty")
RENEW_ACTIONS = ("extend", "compact", "lapse", "lost")
RENEW_OUTCOMES = ("done", "skipped", "failed")
FLUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class FlushMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.flushes = Counter(
            "walrusds_flushes", "Pack flush attempts by outcome (stored: committed to the "
            "index; too_large: a 413 taught a smaller pack size; failed: Walrus or Postgres "
            "error; lease_lost: another flusher took the pack; empty: nothing left to pack)",
            ["outcome"], registry=registry)
        self.duration = Histogram(
            "walrusds_flush_duration_seconds", "Seconds per flush attempt (build, upload, "
            "commit)", ["outcome"], buckets=FLUSH_BUCKETS, registry=registry)
        self.bytes = Counter("walrusds_flushed_pack_bytes",
                             "Packfile bytes stored on Walrus and committed by flushes",
                             registry=registry)
        self.entries = Counter("walrusds_flushed_entries",
                               "Entries packed by committed flushes", registry=registry)
        self.last_stored = Gauge("walrusds_flush_last_stored_timestamp_seconds",
                                 "Unix time of the last pack this node stored (0: none yet)",
                                 registry=registry)
        for outcome in FLUSH_OUTCOMES:
            self.flushes.labels(outcome)

    def flushed(self, outcome: str, pack_bytes: int, entries: int, seconds: float) -> None:
        self.flushes.labels(outcome).inc()
        self.duration.labels(outcome).observe(seconds)
        if outcome == "stored":
            self.bytes.inc(pack_bytes)
            self.entries.inc(entries)
            self.last_stored.set(time.time())


class RenewMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "walrusds_renewal_actions", "Renewal actions on packs by action and outcome "
            "(skipped: another worker held the pack, or it changed since the plan)",
            ["action", "outcome"], registry=registry)
        self.passes = Counter("walrusds_renewal_passes", "Renewal worker passes by outcome",
                              ["outcome"], registry=registry)
        self.last_ok = Gauge("walrusds_renewal_last_success_timestamp_seconds",
                             "Unix time of this node's last renewal pass that completed "
                             "(0: none yet)", registry=registry)
        for action in RENEW_ACTIONS:
            for outcome in RENEW_OUTCOMES:
                self.actions.labels(action, outcome)
        for outcome in ("ok", "failed"):
            self.passes.labels(outcome)

    def action(self, action: str, outcome: str) -> None:
        self.actions.labels(action, outcome).inc()

    def finished_pass(self, outcome: str) -> None:
        self.passes.labels(outcome).inc()
        if outcome == "ok":
            self.last_ok.set(time.time())
