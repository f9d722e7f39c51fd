"""RenewWorker: ``plan()``, ``renew_once()`` and a thin loop around them.

Every action takes a lease on the pack that only succeeds while the pack is still as planned
(same end epoch, still stored), so any number of workers on any number of nodes act on each
pack once. Each action is safe to repeat after a crash at any point:

- **extend** reads the whole pack (bounded by the pack size), checks it against the SHA-256
  recorded at build time, re-stores it (same bytes → same blob ID) and records the new end epoch
  with a compare-and-set. A crash after the upload leaves the old end epoch: the next pass
  stores again (paid twice, nothing lost).
- **compact** reads the pack's live entries in bounded chunks through the verifying reader and
  moves them back to staging with a compare-and-set on the old pack; the flusher packs them
  into new packs with everything else. A crash before the move leaves them in the old pack,
  still readable until its end epoch, and the next pass moves them.
- **lapse** retires a pack with no live entries: it is never paid again.
- **lost** marks a pack that expired while entries still point at it; reads of it answer
  DATA_LOSS, ``walrusds stats`` counts it, and the log says so loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from walrusds import failpoints
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.errors import ConfigError, CorruptData, DataLoss, WalrusdsError
from walrusds.index.entries import Located
from walrusds.reader import WalrusReader
from walrusds.renew.index import RenewIndex
from walrusds.renew.policy import Action, PlanItem, RenewSettings, plan
from walrusds.tasks import cancel_and_wait

__all__ = ["Done", "RenewWorker"]

log = logging.getLogger(__name__)

#: Hooks for metrics (walrusds.metrics): an action ("extend", "compact", "lapse", "lost") and
#: its outcome ("done", "skipped": another worker had it, "failed"); a whole pass ("ok",
#: "failed").
ActionHook = Callable[[str, str], None]
PassHook = Callable[[str], None]

#: Bytes of live entries a compaction holds in memory at once.
COMPACT_CHUNK_BYTES = 32 * 1024 * 1024
COMPACT_CHUNK_ENTRIES = 4096


@dataclass(frozen=True)
class Done:
    """What one action did: the pack, the action, and a detail for people."""

    pack_id: int
    action: Action
    detail: str


class RenewWorker:
    def __init__(self, pool: AsyncConnectionPool[Any], store: BlobStore | None, config: Config,
                 *, owner: str, reader: WalrusReader | None = None,
                 on_restage: Callable[[], None] | None = None) -> None:
        """``store`` may be None for a worker that only plans (``walrusds renew --dry-run``)."""
        self.index = RenewIndex(pool, config.postgres.schema)
        self._store = store
        self.config = config
        self.owner = owner
        self._reader = reader
        self.on_restage = on_restage
        self.on_action: ActionHook | None = None
        self.on_pass: PassHook | None = None
        rc = config.renew
        self.settings = RenewSettings(margin_epochs=rc.margin_epochs,
                                      epochs=rc.epochs or config.walrus.epochs,
                                      dead_threshold=rc.dead_threshold)
        self._task: asyncio.Task[None] | None = None

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            raise ConfigError("renewing packs needs walrus.publishers and walrus.aggregators")
        return self._store

    @property
    def reader(self) -> WalrusReader:
        if self._reader is None:
            self._reader = WalrusReader(self.store,
                                        aggregators=len(self.config.walrus.aggregators))
        return self._reader

    # -- planning ------------------------------------------------------------------------------

    async def current_epoch(self) -> int | None:
        return await self.index.current_epoch(self.config.renew.epoch_seconds)

    async def plan(self) -> tuple[int | None, list[PlanItem]]:
        """(current epoch, the actions due now). No epoch known yet: nothing was ever stored."""
        epoch = await self.current_epoch()
        if epoch is None:
            return None, []
        packs = await self.index.due(epoch + self.settings.margin_epochs)
        return epoch, plan(packs, epoch, self.settings)

    # -- acting --------------------------------------------------------------------------------

    async def renew_once(self) -> list[Done]:
        """Plan, then carry out every action this worker can lease. Returns what it did."""
        epoch, items = await self.plan()
        done: list[Done] = []
        for item in items:
            assert epoch is not None
            try:
                result = await self._act(item, epoch)
            except DataLoss as exc:
                log.error("renewal of pack %d: %s", item.pack.pack_id, exc)
                self._report(item.action, "failed")
                continue
            except WalrusdsError:
                self._report(item.action, "failed")
                raise
            self._report(item.action, "skipped" if result is None else "done")
            if result is not None:
                done.append(result)
        return done

    def _report(self, action: Action, outcome: str) -> None:
        if self.on_action is not None:
            self.on_action(action.value, outcome)

    async def _act(self, item: PlanItem, epoch: int) -> Done | None:
        p = item.pack
        if not await self.index.lease(p, self.owner, self.config.renew.lease):
            return None  # another worker has it, or it changed since the plan
        try:
            if item.action is Action.LAPSE:
                retired = await self.index.retire(p.pack_id)
                return Done(p.pack_id, Action.LAPSE, "retired" if retired else "still live")
            if item.action is Action.LOST:
                if await self.index.lose(p.pack_id, epoch):
                    log.error("DATA LOSS: pack %d (blob %s) expired at epoch %d with %d live "
                              "entries still indexed; reads of them answer DATA_LOSS",
                              p.pack_id, p.blob_id, p.end_epoch, p.live_entries)
                return Done(p.pack_id, Action.LOST, f"{p.live_entries} entries lost")
            if item.action is Action.EXTEND:
                return await self._extend(item)
            return await self._compact(item)
        finally:
            await self.index.release(p.pack_id, self.owner)

    async def _extend(self, item: PlanItem) -> Done:
        p = item.pack
        data = await self.store.read_blob(p.blob_id)
        expected = await self.index.pack_sha256(p.pack_id)
        actual = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
        if len(data) != p.pack_bytes or (expected is not None and actual != expected):
            self.store.forget(p.blob_id)
            raise CorruptData(f"pack {p.pack_id} (blob {p.blob_id}) read back with "
                              "different bytes than were stored; not re-storing them")
        result = await self.store.store(data, epochs=self.settings.epochs)
        if result.blob_id != p.blob_id:
            raise CorruptData(f"re-storing pack {p.pack_id} gave blob {result.blob_id}, not "
                              f"{p.blob_id}")
        failpoints.hit("renew_after_upload")
        if result.start_epoch is not None:
            await self.index.observe_epoch(result.start_epoch)
        await self.index.extended(p, self.owner, result.end_epoch, result.cost)
        log.info("pack %d (blob %s) extended: end epoch %d → %d", p.pack_id, p.blob_id,
                 p.end_epoch, result.end_epoch)
        return Done(p.pack_id, Action.EXTEND, f"end epoch {p.end_epoch} → {result.end_epoch}")

    async def _compact(self, item: PlanItem) -> Done:
        p = item.pack
        moved = failed = 0
        after: tuple[int, bytes] | None = None
        while True:
            batch = await self.index.live_entries(p.pack_id, after, COMPACT_CHUNK_ENTRIES)
            if not batch:
                break
            chunk: list[Located] = []
            size = 0
            for e in batch:
                if chunk and size + e.size > COMPACT_CHUNK_BYTES:
                    break
                chunk.append(Located(e.key, e.size, e.digest, None, p.pack_id, e.offset,
                                     p.blob_id, "stored", p.end_epoch))
                size += e.size
            after = (chunk[-1].pack_offset or 0, chunk[-1].key)
            try:
                values = await self.reader.read_packed(chunk)
            except DataLoss:
                values = await self._read_each(chunk)
            failed += len(chunk) - len(values)
            failpoints.hit("renew_before_repoint")
            moved += await self.index.restage(
                p.pack_id, [(e.key, values[e.key], e.digest) for e in chunk if e.key in values])
        if self.on_restage is not None:
            self.on_restage()
        retired = await self.index.retire(p.pack_id)
        detail = (f"{moved} live entries moved to new packs"
                  + (f", {failed} unreadable left in place" if failed else "")
                  + ("; pack retired" if retired else ""))
        log.info("pack %d (blob %s) compacted: %s", p.pack_id, p.blob_id, detail)
        return Done(p.pack_id, Action.COMPACT, detail)

    async def _read_each(self, chunk: list[Located]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for e in chunk:
            with contextlib.suppress(DataLoss):
                out.update(await self.reader.read_packed([e]))
        return out

    # -- loop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="renew")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            outcome = "failed"
            try:
                done = await self.renew_once()
                outcome = "ok"
                if done:
                    log.info("renewal pass: %s", ", ".join(
                        f"{d.action.value} pack {d.pack_id}" for d in done))
            except WalrusdsError as exc:
                log.warning("renewal pass failed; next in %.0f s: %s",
                            self.config.renew.interval, exc)
            except Exception:
                log.exception("renewal pass failed unexpectedly")
            if self.on_pass is not None:
                self.on_pass(outcome)
            await asyncio.sleep(self.config.renew.interval)
