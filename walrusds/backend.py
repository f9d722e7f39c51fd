"""WalrusBackend: the Walrus side of one node, assembled from its configuration.

- the BlobStore (HTTP client with retries) when publishers or aggregators are configured;
- the verified reader for packed entries (needs aggregators);
- the pack flusher (needs publishers; upload nodes only: ``pack.flush`` and not read-only);
- the renewal worker (needs publishers and aggregators; ``renew.enabled``, not read-only);
- the pack capacity that Put checks values against, so a value that can never fit a pack the
  publisher accepts is refused when it is written, not discovered at flush time.

A node with no Walrus endpoints keeps every value staged in Postgres (and says so at start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from walrusds.client import open_blob_store
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.flusher import Flusher, PackCapacity, node_owner
from walrusds.index.events import LossLog
from walrusds.index.packs import PackIndex
from walrusds.prefetch import PackPrefetch
from walrusds.reader import WalrusReader
from walrusds.renew import RenewWorker

__all__ = ["WalrusBackend"]

log = logging.getLogger(__name__)


class _CloseStore:
    """A worker whose stop closes the HTTP client (after the flusher stopped)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.store.aclose()


@dataclass
class WalrusBackend:
    store: BlobStore | None
    reader: WalrusReader | None
    flusher: Flusher | None
    capacity: PackCapacity | None
    renewer: RenewWorker | None = None

    @classmethod
    async def open(cls, config: Config, pool: AsyncConnectionPool[Any],
                   store: BlobStore | None = None) -> WalrusBackend:
        """Build the parts this node's configuration asks for. ``store`` overrides the HTTP
        client built from ``config.walrus`` (benchmarks and tests)."""
        wcfg = config.walrus
        store = store or open_blob_store(wcfg)
        schema = config.postgres.schema
        owner = node_owner()
        reader = flusher = capacity = None
        if store is not None and (wcfg.aggregators or not wcfg.publishers):
            loss_log = LossLog(pool, schema, owner)
            prefetch = PackPrefetch(reads=wcfg.prefetch_reads, window=wcfg.prefetch_window,
                                    cache_bytes=wcfg.cache_bytes)
            reader = WalrusReader(store, aggregators=len(wcfg.aggregators),
                                  record_loss=loss_log.record, prefetch=prefetch)
        if store is not None and wcfg.publishers and config.pack.flush and not config.read_only:
            packs = PackIndex(pool, schema)
            _, learned = await packs.walrus_state()
            capacity = PackCapacity(config.pack.target_size, learned)
            flusher = Flusher(packs, store, config, capacity, owner=owner)
        renewer = None
        if (store is not None and reader is not None and wcfg.publishers
                and config.renew.enabled and not config.read_only):
            renewer = RenewWorker(pool, store, config, owner=owner, reader=reader,
                                  on_restage=flusher.nudge if flusher else None)
        if store is None:
            log.warning("no Walrus publisher or aggregator is configured: values stay staged "
                        "in Postgres")
        elif flusher is None and not config.read_only:
            log.info("this node does not flush packs (no publisher, or pack.flush is off)")
        return cls(store, reader, flusher, capacity, renewer)

    @property
    def workers(self) -> list[Any]:
        """Started in order, stopped in reverse: the client closes after the flusher."""
        out: list[Any] = []
        if self.store is not None:
            out.append(_CloseStore(self.store))
        if self.flusher is not None:
            out.append(self.flusher)
        if self.renewer is not None:
            out.append(self.renewer)
        return out

    def value_limit(self, max_key_size: int) -> Callable[[bytes], int] | None:
        capacity = self.capacity
        if capacity is None:
            return None
        return lambda _key: capacity.max_entry(max_key_size)

    def nudge(self) -> None:
        if self.flusher is not None:
            self.flusher.nudge()
