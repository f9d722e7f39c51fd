"""ReplicaWatch: whether a streaming replica may answer lookups now, and how far behind it is.

Every ``interval`` seconds the watch samples the primary's WAL position
(``pg_current_wal_lsn()``), then asks the replica whether it is still a standby, holds the same
dataset, and how far it has replayed (``pg_last_wal_replay_lsn()``). A sample the replica has
replayed means every commit acknowledged before that sample was taken is visible on the
replica. The lag is the age of the oldest sample not yet replayed (0 when all are), so a Delete
acknowledged on the primary is invisible on the replica for at most about ``max_lag +
interval`` seconds.

The replica is *usable* while it answers, is in recovery (a promoted standby has its own
history: never read it), holds this dataset, and its lag is at most ``max_lag``. A lookup that
fails on the replica marks it unreachable at once (:meth:`failed`); the next good check makes it
usable again. Each change of state is logged once. When the primary cannot be sampled, the
replica is judged against the last sample taken: during a primary outage it keeps answering
what it has.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from walrusds.tasks import cancel_and_wait

__all__ = ["ReplicaStatus", "ReplicaWatch"]

log = logging.getLogger(__name__)

#: Samples kept while the replica lags; beyond this the newest is overwritten (the oldest one,
#: which sets the lag, stays).
MAX_SAMPLES = 4096

STARTING = "starting"
USABLE = "usable"
LAGGING = "lagging"
UNREACHABLE = "unreachable"
NOT_STANDBY = "not a standby"
WRONG_DATASET = "wrong dataset"
STATES = (STARTING, USABLE, LAGGING, UNREACHABLE, NOT_STANDBY, WRONG_DATASET)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    state: str
    #: Seconds of WAL the replica has not replayed (None: never measured).
    lag: float | None
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state == USABLE


class ReplicaWatch:
    """Tracks one replica against its primary; a service worker (``start``/``stop``)."""

    def __init__(self, primary: AsyncConnectionPool[Any], replica: AsyncConnectionPool[Any],
                 schema: str, dataset_id: str, *, max_lag: float, interval: float = 1.0,
                 wait: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.primary = primary
        self.replica = replica
        self.dataset_id = dataset_id
        self.max_lag = max_lag
        self.interval = interval
        self.wait = wait
        self.clock = clock
        self.status = ReplicaStatus(STARTING, None)
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._replica_sql = sql.SQL(
            "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, "
            "(SELECT id::text FROM {}.dataset)").format(sql.Identifier(schema))

    @property
    def usable(self) -> bool:
        return self.status.usable

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def failed(self, exc: BaseException) -> None:
        """A lookup on the replica failed: stop using it until the next good check."""
        if self.status.usable or self.status.state == STARTING:
            self._set(ReplicaStatus(UNREACHABLE, self.status.lag, type(exc).__name__))

    async def check(self) -> ReplicaStatus:
        """One sample of the primary and one look at the replica; returns the new status."""
        taken = self.clock()
        primary_lsn = await self._primary_lsn()
        if primary_lsn is not None:
            if len(self._samples) >= MAX_SAMPLES:
                self._samples.pop()
            self._samples.append((taken, primary_lsn))
        try:
            async with (self.replica.connection(timeout=self.wait) as conn,
                        asyncio.timeout(self.wait)):
                cur = await conn.execute(self._replica_sql)
                row = await cur.fetchone()
        except psycopg.errors.UndefinedTable:
            self._set(ReplicaStatus(WRONG_DATASET, None, "it has no walrusds index"))
            return self.status
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            self._set(ReplicaStatus(UNREACHABLE, self.status.lag, type(exc).__name__))
            return self.status
        in_recovery, replayed, dataset_id = row if row is not None else (False, None, None)
        if not in_recovery or replayed is None:
            self._set(ReplicaStatus(NOT_STANDBY, None, "pg_is_in_recovery() is false"))
        elif dataset_id != self.dataset_id:
            self._set(ReplicaStatus(WRONG_DATASET, None,
                                    "its dataset id differs from the primary's"))
        else:
            lag = self._lag(int(replayed))
            state = USABLE if lag <= self.max_lag else LAGGING
            self._set(ReplicaStatus(state, lag))
        return self.status

    def _lag(self, replayed: int) -> float:
        while self._samples and self._samples[0][1] <= replayed:
            self._samples.popleft()
        if not self._samples:
            return 0.0
        return max(0.0, self.clock() - self._samples[0][0])

    async def _primary_lsn(self) -> int | None:
        try:
            async with (self.primary.connection(timeout=self.wait) as conn,
                        asyncio.timeout(self.wait)):
                cur = await conn.execute(
                    "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
                row = await cur.fetchone()
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            log.debug("replica watch: cannot sample the primary (%s)", type(exc).__name__)
            return None
        return None if row is None else int(row[0])

    def _set(self, status: ReplicaStatus) -> None:
        before, self.status = self.status, status
        if status.state == before.state:
            return
        if status.usable:
            log.info("Postgres replica is usable (lag %.1f s): block-key lookups read it first",
                     status.lag or 0.0)
        elif status.state == LAGGING:
            log.warning("Postgres replica lags %.1f s (over postgres.replica_max_lag %.1f s): "
                        "lookups go to the primary until it catches up", status.lag or 0.0,
                        self.max_lag)
        else:
            log.warning("Postgres replica is %s (%s): lookups go to the primary", status.state,
                        status.detail)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # a bug here must not end the watch
                log.exception("replica check failed")
