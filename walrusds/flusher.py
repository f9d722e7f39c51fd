"""The pack flusher: turns staged values into packfiles on Walrus.

Pack size is decoupled from commit size (the prior Go implementation packed per Kubo commit and
got 7.2 blocks per blob). A pack is flushed when the staged bytes reach the target, when the
oldest staged entry is older than ``pack.max_age``, or when writes went idle for ``pack.idle``.
Any number of flushers may run, on any number of nodes: claims use ``FOR UPDATE SKIP LOCKED``
and leases, so an entry is never packed twice.

The protocol (``index.packs``) survives a crash at any line: claim (durable) → build
(deterministic: same members, same bytes, same blob ID) → upload → journal the blob ID →
commit. Before the commit the staged bytes stay in Postgres; a pack left ``building`` is taken
over when its lease expires and resumed with the entries still claimed by it.

When a publisher answers 413, the flusher learns a smaller limit (half the refused size, kept
in the index for every node) and packs the same entries again in smaller packs at once: the
limit halves on every 413, so this converges in a few steps instead of retrying the same size.
Below ``MIN_PACK_BYTES`` it stops shrinking and reports it; Put refuses values that can no
longer fit, and entries staged before the limit was learned that cannot fit stay staged (never
lost, never retried), counted by ``walrusds stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from walrusds import failpoints
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.errors import PayloadTooLarge, WalrusdsError
from walrusds.index.packs import Member, PackIndex, StagedStats, StoredBlob
from walrusds.pack import build_pack, pack_size
from walrusds.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Told the outcome of every pack flush attempt ("stored", "too_large", "failed",
#: "lease_lost", "empty"), the packfile bytes stored (0 unless stored), its entries and the
#: seconds it took: metrics hook in here (walrusds.metrics), the flusher does not know them.
FlushHook = Callable[[str, int, int, float], None]

# A learned publisher limit never goes below this: smaller packs defeat packing (and such a
# publisher is misconfigured or broken, not small).
MIN_PACK_BYTES = 4 * 1024


@dataclass(frozen=True)
class FlushOutcome:
    pack_id: int
    blob_id: str
    members: int
    pointed: int
    pack_bytes: int


class PackCapacity:
    """The largest packfile this node may upload: the configured target, lowered by what a
    publisher's 413 taught (shared with Put, which refuses values that could never fit)."""

    def __init__(self, target: int, learned: int | None = None) -> None:
        self.target = target
        self.learned = learned

    @property
    def limit(self) -> int:
        return self.target if self.learned is None else min(self.target, self.learned)

    def max_value(self, key: bytes) -> int:
        """The largest value ``key`` may hold and still fit a pack on its own."""
        return self.limit - pack_size([(key, 0)])

    def max_entry(self, max_key_size: int) -> int:
        """A value size that fits a pack whatever its key (up to ``max_key_size`` bytes)."""
        return self.limit - pack_size([(b"/" * max_key_size, 0)])


def node_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Flusher:
    def __init__(self, packs: PackIndex, store: BlobStore, config: Config,
                 capacity: PackCapacity, *, owner: str | None = None) -> None:
        self.packs = packs
        self.store = store
        self.config = config
        self.capacity = capacity
        self.owner = owner or node_owner()
        self.on_flush: FlushHook | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        _, learned = await self.packs.walrus_state()
        if learned is not None:
            self.capacity.learned = learned
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="flusher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        # A flush cut short by the stop: give its claims back now rather than after the lease.
        with contextlib.suppress(WalrusdsError):
            await self.packs.abandon_owned(self.owner)

    def nudge(self) -> None:
        """A write happened: check the triggers soon."""
        self._wake.set()

    # -- work ----------------------------------------------------------------------------------

    async def flush_ready(self, *, force: bool = False) -> list[FlushOutcome]:
        """Resume stale packs, then flush packs while a trigger holds (or, with ``force``,
        until nothing is staged). Returns what was flushed."""
        async with self._lock:
            done: list[FlushOutcome] = []
            while (outcome := await self.resume_stale()) is not None:
                done.append(outcome)
            while True:
                stats = await self.packs.staged_stats()
                if stats.entries == 0 or not (force or self.ripe(stats)):
                    return done
                limit = self.capacity.limit
                outcome = await self.flush_one()
                if outcome is None:
                    if self.capacity.limit < limit:
                        continue  # a 413 taught a smaller limit: pack again, smaller
                    return done
                done.append(outcome)

    def ripe(self, stats: StagedStats) -> bool:
        pack = self.config.pack
        if stats.bytes >= self.capacity.limit:
            return True
        if stats.oldest and (stats.now - stats.oldest).total_seconds() >= pack.max_age:
            return True
        return bool(stats.newest and (stats.now - stats.newest).total_seconds() >= pack.idle)

    async def flush_one(self) -> FlushOutcome | None:
        target = self.capacity.limit
        claimed = await self.packs.claim(
            self.owner, self.config.pack.lease, target, pack_size,
            self.capacity.max_entry(self.config.limits.max_key_size))
        if claimed is None:
            return None
        pack_id, members = claimed
        failpoints.hit("flush_after_claim")
        log.debug("claimed %d entries into pack %d", len(members), pack_id)
        return await self._build_and_upload(pack_id)

    async def resume_stale(self) -> FlushOutcome | None:
        taken = await self.packs.take_over_stale(self.owner, self.config.pack.lease)
        if taken is None:
            return None
        log.info("resuming pack %d whose lease expired", taken[0])
        outcome = await self._build_and_upload(taken[0])
        return outcome or await self.resume_stale()

    async def _build_and_upload(self, pack_id: int) -> FlushOutcome | None:
        started = time.monotonic()
        try:
            outcome = await self._upload_pack(pack_id)
        except PayloadTooLarge:
            self._report("too_large", started)
            raise
        except Exception:
            self._report("failed", started)
            raise
        self._report(outcome, started)
        return outcome if isinstance(outcome, FlushOutcome) else None

    def _report(self, outcome: FlushOutcome | str, started: float) -> None:
        if self.on_flush is None:
            return
        seconds = time.monotonic() - started
        if isinstance(outcome, FlushOutcome):
            self.on_flush("stored", outcome.pack_bytes, outcome.members, seconds)
        else:
            self.on_flush(outcome, 0, 0, seconds)

    async def _upload_pack(self, pack_id: int) -> FlushOutcome | str:
        """One pack: build, upload, commit. A string names why nothing was stored."""
        members = await self.packs.members(pack_id)
        corrupt = await asyncio.to_thread(lambda: [m.key for m in members if not _matches(m)])
        if corrupt:
            # Packing them would store bytes that fail every later read, and their commit
            # would never point them: the same pack would be built and paid for again.
            await self.packs.quarantine(pack_id, corrupt, self.owner)
            log.error("pack %d: %d staged value(s) no longer match their digest and are not "
                      "packed (first key %r); see data_loss_events", pack_id, len(corrupt),
                      corrupt[0])
            bad = set(corrupt)
            members = [m for m in members if m.key not in bad]
        if not members:
            await self.packs.abandon(pack_id)
            return "empty"
        built = await asyncio.to_thread(build_pack, [(m.key, m.value) for m in members])
        data = built.data
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
        data_bytes = sum(len(m.value) for m in members)
        if not await self.packs.record_build(pack_id, self.owner, len(data), data_bytes,
                                             len(members), digest):
            log.warning("pack %d is no longer ours before upload; leaving it", pack_id)
            return "lease_lost"
        try:
            async with self._keep_lease(pack_id):
                result = await self.store.store(data, epochs=self.config.walrus.epochs)
        except PayloadTooLarge as exc:
            await self._learn_limit(pack_id, exc, len(data), len(members))
            return "too_large"
        except WalrusdsError:
            await self.packs.abandon(pack_id)
            raise
        failpoints.hit("flush_after_upload")
        await self.packs.record_upload(pack_id, self.owner, result.blob_id)
        failpoints.hit("flush_before_commit")
        blob = StoredBlob(blob_id=result.blob_id, start_epoch=result.start_epoch,
                          end_epoch=result.end_epoch, encoded_size=result.encoded_length,
                          cost=result.cost)
        placed = [(e.key, e.offset, e.digest) for e in built.entries]
        pointed = await self.packs.commit(pack_id, self.owner, blob, placed)
        if pointed is None:
            log.warning("pack %d: lease lost before commit; another flusher finishes it",
                        pack_id)
            return "lease_lost"
        log.info("pack %d stored as blob %s: %d entries (%d still live), %d bytes, epochs "
                 "%d-%d", pack_id, result.blob_id, len(members), pointed, len(data),
                 result.start_epoch, result.end_epoch)
        return FlushOutcome(pack_id, result.blob_id, len(members), pointed, len(data))

    async def _learn_limit(self, pack_id: int, exc: PayloadTooLarge, size: int,
                           members: int) -> None:
        await self.packs.abandon(pack_id)
        limit = size // 2
        if limit < MIN_PACK_BYTES:
            raise PayloadTooLarge(
                f"the publisher refuses even a {size}-byte pack (413); check its "
                "--max-body-size (walrusds will not pack smaller than "
                f"{MIN_PACK_BYTES} bytes)", size=size, endpoint=exc.endpoint) from exc
        log.warning("publisher %s refused a %d-byte pack of %d entries (413): packing at "
                    "most %d bytes from now on", exc.endpoint, size, members, limit)
        self.capacity.learned = min(self.capacity.learned or limit, limit)
        await self.packs.learn_publisher_limit(size, self.capacity.learned)

    @contextlib.asynccontextmanager
    async def _keep_lease(self, pack_id: int):  # type: ignore[no-untyped-def]
        """Extend the pack's lease while a long upload runs."""
        lease = self.config.pack.lease

        async def beat() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                await self.packs.extend_lease(pack_id, self.owner, lease)

        task = asyncio.get_running_loop().create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WalrusdsError):
                await task

    async def _loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self.flush_ready()
                backoff = 1.0
            except WalrusdsError as exc:
                log.warning("flush failed, retrying in %.0f s: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            except Exception:
                log.exception("flusher failed unexpectedly; retrying in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # lands as the event is set (a nudge during stop), and the loop never ended.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.pack.interval):
                    await self._wake.wait()


def _matches(member: Member) -> bool:
    return hashlib.sha256(member.value).digest() == member.digest


def unpackable(sizes: Sequence[tuple[bytes, int]], capacity: PackCapacity) -> int:
    """How many of these (key, size) entries can never fit a pack of the current capacity."""
    return sum(1 for key, size in sizes if size > capacity.max_value(key))
