"""Pack prefetch: a pack read often in a short window is downloaded whole once, then served
from the cache; every entry is still verified, and a failed or bad whole read changes nothing
for the caller."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from walrusds.client import HttpBlobStore
from walrusds.emulator.control import EmulatorControl
from walrusds.index.entries import Located
from walrusds.prefetch import FRACTION, PackPrefetch
from walrusds.reader import WalrusReader

VALUE = 4096


async def stored_pack(http: HttpBlobStore, n: int, size: int = VALUE) -> list[Located]:
    """A blob of ``n`` random values laid end to end, as the index would locate them."""
    values = [os.urandom(size) for _ in range(n)]
    blob = b"".join(values)
    result = await http.store(blob, epochs=5)
    return [Located(key=f"/k{i:04d}".encode(), size=size, digest=hashlib.sha256(v).digest(),
                    value=None, pack_id=1, pack_offset=i * size, blob_id=result.blob_id,
                    pack_state="stored", end_epoch=result.end_epoch, pack_bytes=len(blob))
            for i, v in enumerate(values)]


def reader_for(http: HttpBlobStore, reads: int = 4) -> WalrusReader:
    prefetch = PackPrefetch(reads=reads, window=60.0, cache_bytes=http.cache.max_bytes)
    return WalrusReader(http, prefetch=prefetch)


async def read_one_by_one(reader: WalrusReader, entries: list[Located]) -> None:
    for e in entries:
        got = await reader.read_packed([e])
        assert hashlib.sha256(got[e.key]).digest() == e.digest


async def test_a_walk_over_a_pack_reads_it_whole_once(http: HttpBlobStore) -> None:
    entries = await stored_pack(http, 64)  # 256 KiB pack, 1 MiB cache
    reader = reader_for(http, reads=4)
    # Scattered order, as a file's blocks lie in a key-ordered pack.
    await read_one_by_one(reader, entries[::7] + entries[1::7] + entries[2::7])
    assert http.stats.range_reads == 3       # the first three reads, then the whole pack
    assert http.stats.whole_reads == 1
    assert reader.stats.whole_packs >= 1
    assert reader.stats.entries == len(entries[::7] + entries[1::7] + entries[2::7])


async def test_concurrent_readers_share_the_whole_download(http: HttpBlobStore) -> None:
    entries = await stored_pack(http, 64)
    reader = reader_for(http, reads=2)
    await read_one_by_one(reader, entries[:1])
    # Every other read of the 30 triggers the prefetch again: one download, shared.
    got = await asyncio.gather(*(reader.read_packed([e]) for e in entries[10:40]))
    assert all(hashlib.sha256(g[e.key]).digest() == e.digest
               for g, e in zip(got, entries[10:40], strict=True))
    assert http.stats.whole_reads == 1
    # Reads that came while the download ran went on by range instead of waiting for it.
    assert http.stats.range_reads <= 1 + 30 - 15


async def test_few_small_reads_never_pull_the_pack(http: HttpBlobStore) -> None:
    # 8 reads of 16 bytes: far below 1/FRACTION of a 256 KiB pack.
    entries = [Located(key=e.key, size=16, digest=b"", value=None, pack_id=1,
                       pack_offset=e.pack_offset, blob_id=e.blob_id, pack_state="stored",
                       end_epoch=e.end_epoch, pack_bytes=e.pack_bytes)
               for e in await stored_pack(http, 64)]
    prefetch = PackPrefetch(reads=4, window=60.0, cache_bytes=http.cache.max_bytes)
    for e in entries[:8]:
        assert e.pack_bytes is not None
        assert not prefetch.whole_pack(e.blob_id or "", e.pack_bytes, e.size)
    assert (entries[0].pack_bytes or 0) > 8 * 16 * FRACTION


async def test_a_pack_larger_than_half_the_cache_is_read_by_range(http: HttpBlobStore) -> None:
    entries = await stored_pack(http, 160)  # 640 KiB > 1 MiB / 2
    reader = reader_for(http, reads=2)
    await read_one_by_one(reader, entries[::5])
    assert http.stats.whole_reads == 0
    assert http.stats.range_reads == len(entries[::5])


async def test_a_failed_whole_read_falls_back_to_ranges(http: HttpBlobStore,
                                                         control: EmulatorControl) -> None:
    entries = await stored_pack(http, 64)
    reader = reader_for(http, reads=2)
    await read_one_by_one(reader, entries[:1])
    await control.add_fault("read", "status", status=503, count=1)
    await read_one_by_one(reader, entries[1:2])  # the whole read fails: the range answers
    assert http.stats.whole_reads == 1
    assert http.stats.range_reads == 2
    assert http.cache.size == 0


async def test_a_corrupt_whole_pack_is_dropped_and_the_entry_reread(
        http: HttpBlobStore, control: EmulatorControl) -> None:
    entries = await stored_pack(http, 64)
    reader = reader_for(http, reads=2)
    await read_one_by_one(reader, entries[:1])
    # Flip a bit inside the entry the whole read is for.
    assert entries[1].pack_offset is not None
    await control.add_fault("read", "bitflip", count=1, at=entries[1].pack_offset + 10)
    await read_one_by_one(reader, entries[1:2])
    assert reader.stats.reread == 1
    assert http.cache.size == 0  # the bad copy was forgotten
    await read_one_by_one(reader, entries[2:6])


async def test_prefetch_off_reads_every_entry_by_range(http: HttpBlobStore) -> None:
    entries = await stored_pack(http, 64)
    reader = reader_for(http, reads=0)
    await read_one_by_one(reader, entries[:20])
    assert http.stats.whole_reads == 0
    assert http.stats.range_reads == 20


def test_the_count_restarts_after_the_window() -> None:
    now = [0.0]
    prefetch = PackPrefetch(reads=3, window=1.0, cache_bytes=1 << 30, clock=lambda: now[0])
    pack = 1 << 20
    assert not prefetch.whole_pack("b", pack, pack)
    assert not prefetch.whole_pack("b", pack, pack)
    now[0] = 1.5  # the window ran out: these two start a new count
    assert not prefetch.whole_pack("b", pack, pack)
    assert not prefetch.whole_pack("b", pack, pack)
    assert prefetch.whole_pack("b", pack, pack)
    assert not prefetch.whole_pack("b", pack, pack)  # counting again from zero
    assert prefetch.triggered == 1


def test_unknown_pack_size_or_no_cache_never_prefetches() -> None:
    assert not PackPrefetch(reads=1, window=1.0, cache_bytes=1 << 30).whole_pack("b", None, 1)
    assert not PackPrefetch(reads=1, window=1.0, cache_bytes=0).whole_pack("b", 10, 10)
    with pytest.raises(ValueError, match="must not be negative"):
        PackPrefetch(reads=-1, window=1.0, cache_bytes=0)
