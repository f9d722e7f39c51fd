"""Gauges read from the Postgres index: staged backlog and flush lag, packs by state, pack
fill, renewal due, data-loss events.

They are refreshed by a background task every ``metrics.refresh_interval`` seconds, never on
scrape: a scrape must not cost a query, and several Prometheus servers may scrape. Every query
reads the packs table (one row per Walrus blob), the walrus_state row, the data-loss events or
the partial index of *staged* entries (``index.stats.read_stats`` and the documented views):
never a count over every entry.

The values describe the whole dataset, shared by every node on the same schema: aggregate
them across nodes with ``max``, not ``sum``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.config import Config
from walrusds.errors import WalrusdsError
from walrusds.index.pool import AsyncConn, run
from walrusds.index.stats import IndexStats, read_stats
from walrusds.renew.index import RenewIndex
from walrusds.tasks import cancel_and_wait

__all__ = ["PACK_STATES", "IndexGauges"]

log = logging.getLogger(__name__)

PACK_STATES = ("building", "stored", "retired", "lost", "abandoned")


def _num(value: Any) -> float:
    """A view's number (int, Decimal or NULL) as a float; NULL is 0."""
    return 0.0 if value is None else float(value)


class IndexGauges:
    def __init__(self, registry: CollectorRegistry, pool: AsyncConnectionPool[Any],
                 config: Config) -> None:
        self.pool = pool
        self.config = config
        self.schema = config.postgres.schema
        self._renew = RenewIndex(pool, self.schema)
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._due_sql = sql.SQL(
            "SELECT (SELECT count(*) FROM {s}.packs WHERE state = 'stored' AND end_epoch <= %s),"
            " (SELECT min(end_epoch) FROM {s}.packs WHERE state = 'stored')"
        ).format(s=sql.Identifier(self.schema))

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry)

        self.staged_entries = gauge("walrusds_staged_entries",
                                    "Entries staged in Postgres, waiting for a pack")
        self.staged_bytes = gauge("walrusds_staged_bytes", "Bytes of staged values")
        self.staged_claimed = gauge("walrusds_staged_claimed_entries",
                                    "Staged entries claimed by a pack being built")
        self.flush_lag = gauge("walrusds_staged_oldest_age_seconds",
                               "Age of the oldest staged entry (flush lag; 0: none staged)")
        self.packs = gauge("walrusds_packs", "Packs (Walrus blobs) by state", ("state",))
        for state in PACK_STATES:
            self.packs.labels(state)
        self.entries_per_pack = gauge("walrusds_pack_entries_avg",
                                      "Average entries per stored pack")
        self.fill = gauge("walrusds_pack_fill_ratio",
                          "Average packfile size over its target size, stored packs (0-1)")
        self.pack_bytes = gauge("walrusds_pack_bytes", "Packfile bytes of stored packs")
        self.live_bytes = gauge("walrusds_pack_live_bytes",
                                "Bytes of stored packs still referenced by the index")
        self.dead_bytes = gauge("walrusds_pack_dead_bytes",
                                "Bytes of stored packs overwritten or deleted (paid, unused)")
        self.encoded_bytes = gauge("walrusds_pack_encoded_bytes",
                                   "Encoded (paid-for) size of stored packs on Walrus")
        self.epoch = gauge("walrusds_walrus_epoch",
                           "Current Walrus epoch as walrusds estimates it (NaN: unknown)")
        self.due = gauge("walrusds_packs_renewal_due",
                         "Stored packs whose end epoch is within renew.margin_epochs: the "
                         "renewal worker should act on them")
        self.min_left = gauge("walrusds_pack_min_epochs_left",
                              "Epochs until the stored pack closest to expiry is gone "
                              "(NaN: none stored or epoch unknown)")
        self.loss_events = gauge("walrusds_data_loss_events",
                                 "Data-loss events recorded in the index by every node",
                                 ("kind",))
        self.refreshed = gauge("walrusds_index_metrics_refresh_timestamp_seconds",
                               "Unix time the index gauges were last refreshed")
        self.refresh_errors = Counter("walrusds_index_metrics_refresh_errors",
                                      "Refreshes of the index gauges that failed",
                                      registry=registry)
        for g in (self.epoch, self.min_left):
            g.set(math.nan)

    # -- refreshing ----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the views once and set every gauge."""
        stats = await read_stats(self.pool, self.schema)
        epoch = await self._renew.current_epoch(self.config.renew.epoch_seconds)
        due, soonest = await self._due(epoch)
        self._apply(stats, epoch, due, soonest)
        self.refreshed.set(time.time())

    async def _due(self, epoch: int | None) -> tuple[int, int | None]:
        if epoch is None:
            return 0, None
        horizon = epoch + self.config.renew.margin_epochs

        async def go(conn: AsyncConn) -> tuple[int, int | None]:
            cur = await conn.execute(self._due_sql, (horizon,))
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]), None if row[1] is None else int(row[1])

        return await run(self.pool, go, "renewal due")

    def _apply(self, stats: IndexStats, epoch: int | None, due: int,
               soonest: int | None) -> None:
        staged = stats.staged
        self.staged_entries.set(_num(staged.get("entries")))
        self.staged_bytes.set(_num(staged.get("bytes")))
        self.staged_claimed.set(_num(staged.get("claimed")))
        self.flush_lag.set(max(0.0, _num(staged.get("oldest_age_seconds"))))
        for state in {*PACK_STATES, *stats.packs_by_state}:
            self.packs.labels(state).set(stats.packs_by_state.get(state, 0))
        ratio = stats.pack_ratio
        self.entries_per_pack.set(_num(ratio.get("entries_per_pack")))
        self.fill.set(_num(ratio.get("avg_fill_pct")) / 100.0)
        self.pack_bytes.set(_num(ratio.get("pack_bytes")))
        self.live_bytes.set(_num(ratio.get("live_bytes")))
        self.dead_bytes.set(_num(ratio.get("dead_bytes")))
        self.encoded_bytes.set(_num(ratio.get("encoded_bytes")))
        self.epoch.set(math.nan if epoch is None else epoch)
        self.due.set(due)
        self.min_left.set(math.nan if epoch is None or soonest is None else soonest - epoch)
        for kind in ("corrupt", "lost"):
            self.loss_events.labels(kind).set(_num(stats.data_loss.get(kind)))

    # -- the background task -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                            name="metrics-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
                if self._failing:
                    log.info("index metrics refresh works again")
                self._failing = False
            except Exception as exc:  # a metrics refresh never stops the service
                self.refresh_errors.inc()
                if not self._failing:  # log the first failure of a run, not every one
                    if isinstance(exc, WalrusdsError):
                        log.warning("index metrics refresh failed: %s", exc)
                    else:
                        log.exception("index metrics refresh failed unexpectedly")
                self._failing = True
            await asyncio.sleep(self.config.metrics.refresh_interval)
