"""``walrusds verify``'s walk: which entries to check, in what order, and the report.

Two modes, both bounded in memory whatever the size of the dataset:

- **sample** (the default, 1000 entries): keys drawn at random pages of the entries table
  (:mod:`walrusds.audit.sample`), located in one query per thousand, packed ones read grouped
  by blob;
- **full**: every pack in id order, and within it every entry in offset order (keyset
  pagination on ``(pack_offset, key)`` over the ``entries_pack`` index), so a pack's entries
  are read with a few merged ranged reads; then every staged entry, oldest first, its bytes
  fetched from Postgres in chunks of at most :data:`STAGED_CHUNK_BYTES`.

In both modes the packs table is checked for orphans (a short table: one row per blob). Entries
written, moved or deleted while the walk runs may be checked in their old or new place, or
skipped; verify is a health check of what is there, not a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from walrusds.audit.checker import EntryChecker
from walrusds.audit.classify import PROBLEMS, Finding, Verdict
from walrusds.audit.db import open_audit_pool, open_audit_store
from walrusds.audit.progress import Progress
from walrusds.audit.sample import draw_sample
from walrusds.audit.source import AuditIndex, EpochInfo, PackRef
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.errors import BlobNotFound
from walrusds.index.entries import Located

__all__ = ["ExpiringPack", "Report", "VerifyOptions", "options_for", "run_verify",
           "verify_dataset"]

PACK_PAGE = 200
ENTRY_PAGE = 1000
STAGED_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class VerifyOptions:
    #: Entries to sample; None checks every entry.
    sample: int | None = 1000
    expiring_within: int = 2
    #: Problem lines kept for the report (all are counted).
    max_problems: int = 1000
    #: The network's epoch length, to advance the last recorded epoch by elapsed time.
    epoch_seconds: float = 14 * 24 * 3600.0
    aggregators: int = 1


@dataclass
class ExpiringPack:
    pack_id: int
    blob_id: str | None
    end_epoch: int | None
    entries: int = 0


@dataclass
class Report:
    mode: str
    epoch: EpochInfo
    expiring_within: int
    max_problems: int
    counts: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(Verdict, 0))
    staged: int = 0
    packed: int = 0
    skipped: int = 0
    problems: list[Finding] = field(default_factory=list)
    problems_omitted: int = 0
    expiring: dict[int, ExpiringPack] = field(default_factory=dict)
    orphans_expired: int = 0
    reads: int = 0
    rereads: int = 0

    @property
    def entries(self) -> int:
        return self.staged + self.packed

    @property
    def problem_count(self) -> int:
        return sum(self.counts[v] for v in PROBLEMS)

    @property
    def exit_code(self) -> int:
        """0 when everything is OK or EXPIRING, 1 when any LOST, CORRUPT or ORPHAN."""
        return 1 if self.problem_count else 0

    def add(self, finding: Finding) -> None:
        self.counts[finding.verdict] += 1
        if finding.key is not None:
            if finding.pack_id is None:
                self.staged += 1
            else:
                self.packed += 1
        if finding.verdict is Verdict.EXPIRING and finding.pack_id is not None:
            pack = self.expiring.get(finding.pack_id)
            if pack is None:
                pack = self.expiring[finding.pack_id] = ExpiringPack(
                    finding.pack_id, finding.blob_id, finding.end_epoch)
            pack.entries += 1
        if finding.verdict in PROBLEMS:
            if len(self.problems) < self.max_problems:
                self.problems.append(finding)
            else:
                self.problems_omitted += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "current_epoch": self.epoch.estimated,
            "recorded_epoch": self.epoch.recorded,
            "expiring_within": self.expiring_within,
            "entries": self.entries,
            "staged": self.staged,
            "packed": self.packed,
            "skipped": self.skipped,
            "counts": {v.value: n for v, n in self.counts.items()},
            "expiring_packs": [vars(p) for p in sorted(self.expiring.values(),
                                                       key=lambda p: p.pack_id)],
            "orphans_expired": self.orphans_expired,
            "problems": [f.as_json() for f in self.problems],
            "problems_omitted": self.problems_omitted,
            "reads": self.reads,
            "rereads": self.rereads,
        }


def options_for(config: Config, *, sample: int | None, expiring_within: int = 2,
                max_problems: int = 1000) -> VerifyOptions:
    """Options with the network facts taken from the configuration."""
    return VerifyOptions(sample=sample, expiring_within=expiring_within,
                         max_problems=max_problems, epoch_seconds=config.renew.epoch_seconds,
                         aggregators=len(config.walrus.aggregators))


async def verify_dataset(config: Config, options: VerifyOptions,
                         progress: Progress | None = None) -> Report:
    """The whole command against the configured Postgres (read-only) and aggregators."""
    store = open_audit_store(config, "verify")
    try:
        pool = await open_audit_pool(config, read_only=True)
        try:
            return await run_verify(AuditIndex(pool, config.postgres.schema), store, options,
                                    progress)
        finally:
            await pool.close()
    finally:
        await store.aclose()


async def run_verify(index: AuditIndex, store: BlobStore, options: VerifyOptions,
                     progress: Progress | None = None) -> Report:
    """Check a sample (or every entry) and the packs table; never writes anything."""
    epoch = await index.epoch(options.epoch_seconds)
    report = Report("full" if options.sample is None else "sample", epoch,
                    options.expiring_within, options.max_problems)
    checker = EntryChecker(store, aggregators=options.aggregators,
                           current_epoch=epoch.estimated,
                           expiring_within=options.expiring_within)
    walk = _Walk(index, checker, report,
                 progress or Progress(None, label="verify"))
    try:
        if options.sample is None:
            await walk.full()
        else:
            await walk.sample(options.sample)
        await walk.orphans(store)
    finally:
        walk.progress.close()
    report.reads, report.rereads = checker.reads, checker.rereads
    return report


class _Walk:
    def __init__(self, index: AuditIndex, checker: EntryChecker, report: Report,
                 progress: Progress) -> None:
        self.index = index
        self.checker = checker
        self.report = report
        self.progress = progress

    def _record(self, findings: Sequence[Finding]) -> None:
        for f in findings:
            self.report.add(f)
        self.progress.advance(len(findings), sum(f.verdict in PROBLEMS for f in findings))

    async def _check_packed(self, entries: Sequence[Located]) -> None:
        self._record(await self.checker.check(entries))

    async def _check_staged(self, refs: Sequence[tuple[bytes, int]]) -> None:
        """Fetch the bytes of staged entries in bounded chunks and check them."""
        for chunk in _by_bytes(refs, STAGED_CHUNK_BYTES):
            found = await self.index.staged_values(chunk)
            self.report.skipped += len(chunk) - len(found)
            self._record(await self.checker.check(found))

    async def full(self) -> None:
        packed, staged = await self.index.totals()
        self.progress.total = packed + staged
        after_pack = 0
        while packs := await self.index.packs(after_pack, PACK_PAGE):
            for pack in packs:
                await self._pack(pack)
            after_pack = packs[-1].pack_id
        after = None
        while page := await self.index.staged(after, ENTRY_PAGE):
            await self._check_staged([(r.key, r.size) for r in page])
            after = (page[-1].staged_at, page[-1].key)

    async def _pack(self, pack: PackRef) -> None:
        after: tuple[int, bytes] = (-1, b"")
        while page := await self.index.pack_entries(pack, after, ENTRY_PAGE):
            await self._check_packed(page)
            last = page[-1]
            assert last.pack_offset is not None
            after = (last.pack_offset, last.key)

    async def sample(self, wanted: int) -> None:
        keys = await draw_sample(self.index, wanted)
        self.progress.total = len(keys)
        for i in range(0, len(keys), ENTRY_PAGE):
            chunk = keys[i:i + ENTRY_PAGE]
            located = await self.index.locate(chunk)
            self.report.skipped += len(chunk) - len(located)
            await self._check_packed([e for e in located if e.pack_id is not None])
            await self._check_staged([(e.key, e.size) for e in located if e.pack_id is None])

    async def orphans(self, store: BlobStore) -> None:
        """Packs whose blob nobody references. One byte is read from each: a blob the
        aggregators no longer know has expired and costs nothing any more."""
        for c in await self.index.orphan_candidates():
            try:
                await store.read_range(c.blob_id, 0, 1)
            except BlobNotFound:
                self.report.orphans_expired += 1
                continue
            why = ("abandoned build whose blob was uploaded and paid for" if c.state == "abandoned"
                   else "stored pack with no live entries: paid for, referenced by nothing")
            self.report.add(Finding(Verdict.ORPHAN, why, None, c.blob_id, c.pack_id, None,
                                    c.pack_bytes, c.end_epoch))


def _by_bytes(refs: Sequence[tuple[bytes, int]], budget: int) -> Iterator[list[bytes]]:
    """Keys in chunks whose sizes add up to at most ``budget`` (a larger value goes alone)."""
    chunk: list[bytes] = []
    size = 0
    for key, n in refs:
        if chunk and size + n > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += n
    if chunk:
        yield chunk
