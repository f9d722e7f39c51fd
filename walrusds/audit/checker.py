"""Reading entries back the way the read path does, and classifying each one.

Packed entries are read with the reader's own plan (``walrusds.reader.plan_reads``: nearby
entries of one blob share one ranged read of at most 8 MiB) and checked with the read path's
rule (:func:`walrusds.audit.classify.value_problem`). An entry whose bytes fail is read again
from each aggregator in turn, the cached copy dropped first, exactly as a Get would; only when
no copy verifies is it CORRUPT. A blob every aggregator answers 404 for is LOST. Unlike the read
path nothing is raised and nothing is recorded in the index: verify reports, it does not act.

Transient trouble (aggregators down, timeouts past the retry deadline) is not a verdict about
the data: it propagates as :class:`walrusds.errors.WalrusError`, and verify stops incomplete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from walrusds.audit.classify import Finding, Verdict, expiry_note, value_problem
from walrusds.client.protocol import BlobStore
from walrusds.errors import BlobNotFound
from walrusds.index.entries import Located
from walrusds.reader import ReadGroup, plan_reads

__all__ = ["EntryChecker"]

#: Hash in a worker thread above this many bytes (hashlib releases the GIL).
THREAD_HASH_BYTES = 1024 * 1024
LOST_404 = "every aggregator answers 404 for the blob (expired, deleted or wiped)"


class EntryChecker:
    def __init__(self, store: BlobStore, *, aggregators: int, current_epoch: int | None,
                 expiring_within: int, concurrency: int = 4) -> None:
        self.store = store
        self.aggregators = max(1, aggregators)
        self.current_epoch = current_epoch
        self.expiring_within = expiring_within
        self.reads = 0
        self.rereads = 0
        self._limit = asyncio.Semaphore(concurrency)

    async def check(self, entries: Sequence[Located]) -> list[Finding]:
        """One finding per entry (staged entries must carry their ``value``)."""
        findings: list[Finding] = []
        packed: list[Located] = []
        for e in entries:
            if e.pack_id is None:
                findings.append(self._staged(e))
            elif e.pack_state == "lost":
                findings.append(Finding.of(e, Verdict.LOST, "its pack is marked lost"))
            elif e.blob_id is None:
                findings.append(Finding.of(e, Verdict.LOST,
                                           f"its pack is {e.pack_state} with no blob ID"))
            elif e.size == 0:
                findings.append(self._judge(e, value_problem(e, b"")))
            else:
                packed.append(e)
        for group in await asyncio.gather(*(self._group(g) for g in plan_reads(packed))):
            findings.extend(group)
        return findings

    def _staged(self, e: Located) -> Finding:
        assert e.value is not None, "staged entries are checked with their bytes"
        problem = value_problem(e, e.value)
        if problem is None:
            return Finding.of(e, Verdict.OK, "staged in Postgres")
        return Finding.of(e, Verdict.CORRUPT, f"staged value: {problem}")

    def _judge(self, e: Located, problem: str | None, reads: int = 1) -> Finding:
        if problem is not None:
            return Finding.of(e, Verdict.CORRUPT,
                              f"{problem}, on every aggregator ({reads} reads)")
        note = expiry_note(e.end_epoch, self.current_epoch, self.expiring_within)
        if note is not None:
            return Finding.of(e, Verdict.EXPIRING, note)
        return Finding.of(e, Verdict.OK, "intact")

    async def _group(self, group: ReadGroup) -> list[Finding]:
        try:
            async with self._limit:
                data = await self.store.read_range(group.blob_id, group.start,
                                                   group.end - group.start)
        except BlobNotFound:
            return [Finding.of(e, Verdict.LOST, LOST_404) for e in group.entries]
        self.reads += 1
        problems = await _problems(group, data)
        del data
        out: list[Finding] = []
        bad: list[Located] = []
        for e, problem in zip(group.entries, problems, strict=True):
            if problem is None:
                out.append(self._judge(e, None))
            else:
                bad.append(e)
        if bad:
            self.store.forget(group.blob_id)
            out.extend(await asyncio.gather(*(self._reread(e) for e in bad)))
        return out

    async def _reread(self, e: Located) -> Finding:
        """Each aggregator in turn, the cache dropped before each read, until a copy verifies."""
        assert e.blob_id is not None
        assert e.pack_offset is not None
        problem: str | None = None
        for rotate in range(self.aggregators):
            self.rereads += 1
            try:
                async with self._limit:
                    value = await self.store.read_range(e.blob_id, e.pack_offset, e.size,
                                                        rotate=rotate)
            except BlobNotFound:
                return Finding.of(e, Verdict.LOST, LOST_404)
            problem = await _off_loop(e, value)
            if problem is None:
                break
            self.store.forget(e.blob_id)
        return self._judge(e, problem, reads=self.aggregators + 1)


async def _problems(group: ReadGroup, data: bytes) -> list[str | None]:
    def run() -> list[str | None]:
        out: list[str | None] = []
        for e in group.entries:
            assert e.pack_offset is not None
            lo = e.pack_offset - group.start
            out.append(value_problem(e, data[lo:lo + e.size]))
        return out

    if len(data) >= THREAD_HASH_BYTES:
        return await asyncio.to_thread(run)
    return run()


async def _off_loop(e: Located, value: bytes) -> str | None:
    if len(value) >= THREAD_HASH_BYTES:
        return await asyncio.to_thread(value_problem, e, value)
    return value_problem(e, value)
