"""WalrusReader: the verified read path for packed entries.

Entries are read with ranged reads of exactly their bytes; entries of one pack that lie close
together (a key-ordered scan over a pack, whose members are laid out in key order) share one
read. A pack read often enough in a short window is fetched whole into the blob cache once
(:mod:`walrusds.prefetch`), so a walk over a file's blocks stops paying a round trip per block.
Every entry is verified before it is returned — against the SHA-256 digest the index
stored at Put time, and against the multihash when the key is a Kubo block key. On a mismatch
the cached copy is dropped and the entry read again, then from each other aggregator; when
every copy is bad the answer is DATA_LOSS (:class:`CorruptData`), never the bad bytes. A blob
the aggregators do not know while the index still points at it is :class:`BlobLost`
(DATA_LOSS), never NOT_FOUND. Both are counted, logged, and recorded in the index's
``data_loss_events`` table so operators see them in ``walrusds stats``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from walrusds.client.protocol import BlobStore
from walrusds.errors import BlobLost, BlobNotFound, CorruptData, DataLoss, WalrusError
from walrusds.index.entries import Located
from walrusds.keys import show_key
from walrusds.prefetch import PackPrefetch
from walrusds.verify import SHA2_256, expected_digest

__all__ = ["ReadStats", "WalrusReader", "plan_reads"]

log = logging.getLogger(__name__)

#: Entries of one pack closer than this share one ranged read...
MERGE_GAP = 64 * 1024
#: ... as long as the read stays under this many bytes.
MERGE_SPAN = 8 * 1024 * 1024
#: Hash in a worker thread above this many bytes (hashlib releases the GIL).
THREAD_HASH_BYTES = 1024 * 1024

#: Records a data-loss event: (kind, key, blob ID, detail).
LossRecorder = Callable[[str, bytes, str, str], Awaitable[None]]


@dataclass
class ReadStats:
    reads: int = 0
    entries: int = 0
    bytes: int = 0
    reread: int = 0
    corrupt: int = 0
    lost: int = 0
    whole_packs: int = 0


@dataclass
class ReadGroup:
    blob_id: str
    start: int
    end: int
    entries: list[Located] = field(default_factory=list)


def plan_reads(entries: Sequence[Located], gap: int = MERGE_GAP,
               span: int = MERGE_SPAN) -> list[ReadGroup]:
    """Group packed entries into ranged reads: one per run of nearby entries of one blob."""
    ordered = sorted((e for e in entries if e.size > 0),
                     key=lambda e: (e.blob_id or "", e.pack_offset or 0))
    groups: list[ReadGroup] = []
    for e in ordered:
        assert e.blob_id is not None
        assert e.pack_offset is not None
        start, end = e.pack_offset, e.pack_offset + e.size
        last = groups[-1] if groups else None
        if (last is not None and last.blob_id == e.blob_id and start - last.end <= gap
                and max(end, last.end) - last.start <= span):
            last.end = max(last.end, end)
            last.entries.append(e)
        else:
            groups.append(ReadGroup(e.blob_id, start, end, [e]))
    return groups


def _intact(entry: Located, value: bytes) -> bool:
    """The value matches the digest stored at Put time and the multihash in a block key."""
    if len(value) != entry.size or hashlib.sha256(value).digest() != entry.digest:
        return False
    promised = expected_digest(entry.key)
    if promised is None or (promised.code == SHA2_256 and promised.digest == entry.digest):
        return True  # nothing more to check, or the same SHA-256 just compared
    return promised.matches(value)


class WalrusReader:
    """Implements :class:`walrusds.datastore.PackedReader` over a :class:`BlobStore`."""

    def __init__(self, store: BlobStore, *, aggregators: int = 1, concurrency: int = 32,
                 record_loss: LossRecorder | None = None,
                 prefetch: PackPrefetch | None = None) -> None:
        self.store = store
        self.aggregators = max(1, aggregators)
        self.stats = ReadStats()
        self._limit = asyncio.Semaphore(concurrency)
        self._record_loss = record_loss
        self._prefetch = prefetch if prefetch is not None and prefetch.enabled else None

    async def read_packed(self, entries: Sequence[Located]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for e in entries:
            if e.pack_state == "lost":
                await self._loss("lost", e, "the pack is marked lost")
            if e.size == 0:
                await self._check_empty(e)
                out[e.key] = b""
        groups = plan_reads(entries)
        for values in await asyncio.gather(*(self._read_group(g) for g in groups)):
            out.update(values)
        return out

    async def _check_empty(self, e: Located) -> None:
        if not _intact(e, b""):
            await self._loss("corrupt", e, "an empty value does not match its digest")

    async def _read_group(self, group: ReadGroup) -> dict[bytes, bytes]:
        async with self._limit:
            data = await self._read_span(group)
        self.stats.reads += 1
        self.stats.bytes += len(data)
        out: dict[bytes, bytes] = {}
        bad: list[Located] = []
        check = await _checker(group.entries, data, group.start)
        for e, ok in zip(group.entries, check, strict=True):
            if ok:
                assert e.pack_offset is not None
                out[e.key] = data[e.pack_offset - group.start:e.pack_offset - group.start + e.size]
            else:
                bad.append(e)
        if bad:
            self.store.forget(group.blob_id)
            for e, value in zip(bad, await asyncio.gather(*(self._reread(e) for e in bad)),
                                strict=True):
                out[e.key] = value
        self.stats.entries += len(out)
        return out

    async def _read_span(self, group: ReadGroup) -> bytes:
        first, length = group.entries[0], group.end - group.start
        if self._prefetch is not None and self._prefetch.whole_pack(
                group.blob_id, first.pack_bytes, length):
            data = await self._from_whole_pack(group)
            if data is not None:
                return data
        return await self._fetch(first, group.blob_id, group.start, length)

    async def _from_whole_pack(self, group: ReadGroup) -> bytes | None:
        """The group's bytes out of the whole pack (fetched once, then cached), or None: the
        whole read failed and the caller reads the range on its own, as without prefetch."""
        try:
            blob = await self.store.read_blob(group.blob_id)
        except WalrusError as exc:
            log.info("could not read pack %s whole (%s); reading its entries by range",
                     group.blob_id, exc)
            return None
        if len(blob) < group.end:
            self.store.forget(group.blob_id)
            log.warning("pack %s read whole has %d bytes, too short for bytes %d-%d; reading "
                        "by range", group.blob_id, len(blob), group.start, group.end - 1)
            return None
        self.stats.whole_packs += 1
        return blob[group.start:group.end]

    async def _reread(self, e: Located) -> bytes:
        """Read one entry again, from each aggregator in turn, until a copy verifies."""
        assert e.blob_id is not None
        assert e.pack_offset is not None
        for attempt in range(self.aggregators + 1):
            self.stats.reread += 1
            async with self._limit:
                value = await self._fetch(e, e.blob_id, e.pack_offset, e.size,
                                          rotate=max(0, attempt - 1))
            if await asyncio.to_thread(_intact, e, value):
                return value
            self.store.forget(e.blob_id)
        await self._loss("corrupt", e, f"its bytes failed verification on {attempt + 1} reads "
                         "from every aggregator")
        raise AssertionError("unreachable")

    async def _fetch(self, e: Located, blob_id: str, offset: int, length: int, *,
                     rotate: int = 0) -> bytes:
        try:
            return await self.store.read_range(blob_id, offset, length, rotate=rotate)
        except BlobNotFound:
            await self._loss("lost", e, "the aggregators do not know its blob (expired or "
                             "wiped)")
            raise AssertionError("unreachable") from None

    async def _loss(self, kind: str, e: Located, detail: str) -> None:
        blob = e.blob_id or "?"
        where = f"key {show_key(e.key)} (blob {blob}, offset {e.pack_offset}, {e.size} bytes)"
        error: DataLoss
        if kind == "lost":
            self.stats.lost += 1
            error = BlobLost(f"{where}: {detail}")
        else:
            self.stats.corrupt += 1
            error = CorruptData(f"{where}: {detail}")
        log.error("DATA LOSS: %s", error)
        if self._record_loss is not None:
            try:
                await self._record_loss(kind, e.key, blob, detail)
            except Exception:  # recording must never hide the loss itself
                log.exception("could not record a data-loss event")
        raise error


async def _checker(entries: list[Located], data: bytes, start: int) -> list[bool]:
    def run() -> list[bool]:
        out = []
        for e in entries:
            assert e.pack_offset is not None
            lo = e.pack_offset - start
            out.append(_intact(e, data[lo:lo + e.size]))
        return out

    if len(data) >= THREAD_HASH_BYTES:
        return await asyncio.to_thread(run)
    return run()
