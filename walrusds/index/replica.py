"""Replica-first lookups for read-only retrieval nodes (``postgres.replica_dsn``).

A retrieval node may read the index from a PostgreSQL streaming replica and keep the primary
for everything else. The rules, which keep read-after-write across nodes:

- Only **block keys** (a Kubo key naming a multihash walrusds checks: Put refuses bytes that
  do not match it) are looked up on the replica, because their value can never change: the
  replica's answer, when it has the key, is the primary's too. Any other key may be
  overwritten, so it always goes to the primary.
- A block key the replica does not have is asked of the primary before the answer is
  "missing": a key written a moment ago, not yet replayed, is found.
- The replica is used only while :class:`ReplicaWatch` says it is usable (a standby of this
  dataset, reachable, at most ``replica_max_lag`` seconds behind). A lookup that fails on it
  is answered by the primary and marks it unreachable until the next good check.
- Deletes and pack moves reach the replica within its lag: a block deleted on the primary may
  still be found here for that long. A packed read at a location the primary has since moved
  or retired is retried at the primary's location (:mod:`walrusds.replica_reader`).
- Query runs on the primary unless ``replica_queries`` is on and the replica is usable when
  the query starts (its result may then lag like the replica).
- Writes, the flusher, renewal and migrations never see the replica: the node is read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool

from walrusds.config import Config
from walrusds.errors import ConfigError, IndexUnavailable
from walrusds.index.entries import Index, Located
from walrusds.index.immutable import is_immutable
from walrusds.index.pool import new_pool, redact_dsn
from walrusds.index.replica_watch import ReplicaWatch

__all__ = ["REPLICA_WAIT", "Replica", "ReplicaReads", "ReplicaStats", "check_replica_node"]

log = logging.getLogger(__name__)
V = TypeVar("V")

#: Seconds a lookup waits for a replica connection before the primary answers it instead.
REPLICA_WAIT = 2.0
#: Milliseconds of unacknowledged traffic after which a replica connection is dropped (TCP user
#: timeout): a replica that vanishes from the network mid-query fails the call within this,
#: and the primary answers it, instead of waiting for the statement timeout.
REPLICA_TCP_TIMEOUT_MS = 5000

Fetch = Callable[[Index, Sequence[bytes]], Awaitable[dict[bytes, V]]]


@dataclass
class ReplicaStats:
    """Counters of where lookups went (exported by walrusds.metrics.replica)."""

    #: block keys the replica answered
    replica: int = 0
    #: block keys the replica did not have, then asked of the primary
    after_miss: int = 0
    #: block keys sent to the primary because the replica was not usable
    skipped: int = 0
    #: other keys, which always go to the primary
    mutable: int = 0
    queries_replica: int = 0
    queries_primary: int = 0
    #: packed reads that failed at the replica's location and were retried at the primary's
    relocated: int = 0


def check_replica_node(config: Config) -> None:
    """A replica serves read-only retrieval nodes only. Checked at start, after the command
    line applied ``--read-only``."""
    if config.postgres.replica_dsn and not config.read_only:
        raise ConfigError(
            "postgres.replica_dsn is for read-only retrieval nodes: set read_only = true "
            "(WALRUSDS_READ_ONLY or serve --read-only) or remove postgres.replica_dsn")


class ReplicaReads:
    """Sizes and locations of keys, from the replica first (see the module's rules)."""

    def __init__(self, primary: Index, replica: Index, watch: ReplicaWatch, *,
                 queries: bool = False) -> None:
        self.primary = primary
        self.replica = replica
        self.watch = watch
        self.queries = queries
        self.stats = ReplicaStats()

    async def sizes(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        return await self._route(keys, _sizes)

    async def locate(self, keys: Sequence[bytes]) -> dict[bytes, Located]:
        return await self._route(keys, _locate)

    async def relocate(self, keys: Sequence[bytes]) -> dict[bytes, Located]:
        """Where the primary says the keys are now (a read at the replica's location failed)."""
        self.stats.relocated += len(keys)
        return await self.primary.locate(keys)

    def query_index(self) -> Index | None:
        """The replica's index when a Query may run there now; None: run it on the primary."""
        if self.queries and self.watch.usable:
            self.stats.queries_replica += 1
            return self.replica
        self.stats.queries_primary += 1
        return None

    def replica_failed(self, exc: BaseException) -> None:
        self.watch.failed(exc)

    async def _route(self, keys: Sequence[bytes], fetch: Fetch[V]) -> dict[bytes, V]:
        blocks = [k for k in keys if is_immutable(k)]
        self.stats.mutable += len(keys) - len(blocks)
        if not blocks:
            return await fetch(self.primary, keys)
        if not self.watch.usable:
            self.stats.skipped += len(blocks)
            return await fetch(self.primary, keys)
        try:
            found = await fetch(self.replica, blocks)
        except IndexUnavailable as exc:
            self.watch.failed(exc)
            self.stats.skipped += len(blocks)
            return await fetch(self.primary, keys)
        self.stats.replica += len(found)
        self.stats.after_miss += len(blocks) - len(found)
        rest = [k for k in keys if k not in found]
        if rest:
            found.update(await fetch(self.primary, rest))
        return found


async def _sizes(index: Index, keys: Sequence[bytes]) -> dict[bytes, int]:
    return await index.sizes(keys)


async def _locate(index: Index, keys: Sequence[bytes]) -> dict[bytes, Located]:
    return await index.locate(keys)


@dataclass
class Replica:
    """The replica's pool, its watch and the routed reads; a service worker whose stop
    closes the pool."""

    pool: AsyncConnectionPool[Any]
    watch: ReplicaWatch
    reads: ReplicaReads

    @classmethod
    async def open(cls, config: Config, primary: Index, dataset_id: str) -> Replica:
        """Open the replica's pool without waiting for it: a replica that is down at start
        is reported by the watch and skipped, and the node serves from the primary."""
        pg = config.postgres
        pool = new_pool(pg, pg.replica_dsn, timeout=min(pg.pool_timeout, REPLICA_WAIT),
                        name="walrusds-replica",
                        settings={"tcp_user_timeout": REPLICA_TCP_TIMEOUT_MS})
        await pool.open(wait=False)
        watch = ReplicaWatch(primary.pool, pool, pg.schema, dataset_id,
                             max_lag=pg.replica_max_lag, interval=min(1.0, pg.replica_max_lag),
                             wait=REPLICA_WAIT)
        reads = ReplicaReads(primary, Index(pool, pg.schema), watch,
                             queries=pg.replica_queries)
        log.info("reading block keys from the Postgres replica at %s first (primary on a miss)",
                 redact_dsn(pg.replica_dsn))
        return cls(pool, watch, reads)

    async def start(self) -> None:
        await self.watch.start()

    async def stop(self) -> None:
        await self.watch.stop()
        await self.pool.close()
