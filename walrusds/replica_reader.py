"""Packed reads at a location a lagging replica reported.

On a retrieval node reading a replica, a packed entry's location may be older than the
primary's: compaction repointed the entry to a new pack and retired the old one, or renewal put
it back in staging. The old blob usually still reads (it lives until its end epoch, and packs
never change, so its bytes verify), but it may be gone. So a read that fails verification or
finds no blob is not yet DATA_LOSS: :class:`RelocatingReader` asks the primary where the
entries are now and reads them there, with the node's own reader, which records a real loss.
The first attempt uses a :class:`ProvisionalReader`, which neither logs nor records a loss
(that would raise a false alarm for a stale location).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from walrusds.datastore import PackedReader
from walrusds.errors import BlobLost, CorruptData, DataLoss
from walrusds.index.entries import Located
from walrusds.keys import show_key
from walrusds.reader import WalrusReader

__all__ = ["ProvisionalReader", "RelocatingReader", "relocating_reader"]

#: The primary's current locations of keys (absent: deleted).
Relocate = Callable[[Sequence[bytes]], Awaitable[dict[bytes, Located]]]


class ProvisionalReader(WalrusReader):
    """A WalrusReader whose failures are only suspected: raised, never logged or recorded."""

    async def _loss(self, kind: str, e: Located, detail: str) -> None:
        where = f"key {show_key(e.key)} (blob {e.blob_id or '?'}, offset {e.pack_offset})"
        if kind == "lost":
            raise BlobLost(f"{where}: {detail}")
        raise CorruptData(f"{where}: {detail}")


class RelocatingReader:
    """Implements :class:`walrusds.datastore.PackedReader`: a provisional read first, then,
    on DATA_LOSS, a read at the primary's location by the node's recording reader."""

    def __init__(self, provisional: PackedReader, reader: PackedReader,
                 relocate: Relocate) -> None:
        self.provisional = provisional
        self.reader = reader
        self.relocate = relocate

    async def read_packed(self, entries: Sequence[Located]) -> dict[bytes, bytes]:
        try:
            return await self.provisional.read_packed(entries)
        except DataLoss:
            pass
        current = await self.relocate([e.key for e in entries])
        out: dict[bytes, bytes] = {}
        packed: list[Located] = []
        for e in entries:
            now = current.get(e.key)
            if now is None:
                continue  # deleted on the primary: the caller answers "not found"
            if now.value is not None:
                out[e.key] = now.value  # back in staging
            else:
                packed.append(now)
        if packed:
            out.update(await self.reader.read_packed(packed))
        return out


def relocating_reader(reader: PackedReader, relocate: Relocate) -> RelocatingReader:
    """Wrap a node's reader; a :class:`WalrusReader` gets a provisional twin on its store."""
    provisional: PackedReader = reader
    if isinstance(reader, WalrusReader):
        twin = ProvisionalReader(reader.store, aggregators=reader.aggregators)
        twin.stats = reader.stats  # the node's read metrics count both
        provisional = twin
    return RelocatingReader(provisional, reader, relocate)
