"""Copying a flatfs blocks directory into walrusds, resumably, one shard directory at a time.

The walk. Shard directories are visited in name order. A directory the progress file records
as finished (and unchanged since) is skipped without being read. The others are listed a group
at a time (about :data:`LOOKUP_GROUP` keys), the service is asked which of those keys it holds
already (one ``Lookup`` per group), and only the other blocks are read, verified and sent, on
concurrent ``Batch`` calls (:mod:`walrusds.importer.streams`). A directory is finished once
every block in it is in walrusds and none failed verification; a directory with a bad block is
scanned again by the next run.

Interruptions. A batch is one transaction: killed mid-batch, none of it is stored, and the
next run sends it again. Killed after a commit but before the progress line, its blocks are
in walrusds and the next run's ``Lookup`` skips them. Either way nothing is lost and nothing is
sent twice. The failpoint ``import_after_batch_N`` (``WALRUSDS_FAILPOINTS``) kills the process
right after the N-th commit, before its progress line, for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from walrusds.importer.blocks import BadBlock, read_verified
from walrusds.importer.client import ImportService
from walrusds.importer.flatfs import (
    BlockFile,
    ShardDir,
    Sharding,
    block_files,
    count_blocks,
    current_mtime,
    shard_dirs,
)
from walrusds.importer.journal import DoneDir, Journal
from walrusds.importer.meter import Meter
from walrusds.importer.streams import Block, DirDone, send

MiB = 1024 * 1024
LOOKUP_GROUP = 1024


@dataclass(frozen=True)
class CopyOptions:
    batch_blocks: int = 1000
    batch_bytes: int = 4 * MiB
    streams: int = 2
    allow_unverifiable: bool = False
    dry_run: bool = False


@dataclass
class CopyReport:
    """What a run did. In a dry run, ``sent`` means "would be sent"."""

    shard_dirs: int = 0
    blocks_total: int = 0
    dirs_done_before: int = 0
    blocks_done_before: int = 0
    bytes_done_before: int = 0
    blocks_present: int = 0
    blocks_sent: int = 0
    bytes_sent: int = 0
    batches: int = 0
    misplaced: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def bad_blocks(self) -> int:
        return sum(self.bad.values())


class Copier:
    """One run of the copy: ``plan()`` counts, ``run()`` copies (or only verifies)."""

    def __init__(self, blocks_dir: Path, sharding: Sharding, service: ImportService,
                 journal: Journal | None, options: CopyOptions,
                 on_bad: Callable[[BadBlock], None]) -> None:
        self.blocks_dir = blocks_dir
        self.sharding = sharding
        self.service = service
        self.journal = journal
        self.options = options
        self.on_bad = on_bad
        self.report = CopyReport()
        self._todo: list[ShardDir] = []

    def plan(self) -> CopyReport:
        """List the shard directories and count their blocks (names only)."""
        for shard in shard_dirs(self.blocks_dir):
            self.report.shard_dirs += 1
            record = self.journal.is_done(shard.name, shard.mtime_ns) if self.journal else None
            if record is not None:
                self.report.dirs_done_before += 1
                self.report.blocks_done_before += record.blocks
                self.report.bytes_done_before += record.bytes
                self.report.blocks_total += record.blocks
            else:
                self._todo.append(shard)
                self.report.blocks_total += count_blocks(self.blocks_dir, shard.name)
        return self.report

    def run(self, meter: Meter) -> CopyReport:
        """Copy every block not in walrusds yet (verify only, in a dry run)."""
        meter.add(self.report.blocks_done_before, 0)
        if self.options.dry_run:
            for item in self._work(meter):
                if isinstance(item, Block):
                    meter.add(1, len(item.data))
        else:
            self._send(meter)
        self.report.seconds = meter.elapsed
        return self.report

    def _send(self, meter: Meter) -> None:
        totals = send(self._work(meter), self.journal, self.service,
                      streams=self.options.streams, batch_blocks=self.options.batch_blocks,
                      batch_bytes=self.options.batch_bytes, meter=meter)
        self.report.batches = totals.batches
        self.report.blocks_sent = totals.blocks
        self.report.bytes_sent = totals.bytes

    def _groups(self) -> Iterator[list[tuple[ShardDir, int, list[BlockFile]]]]:
        """The directories to scan, listed a group of about LOOKUP_GROUP keys at a time."""
        group: list[tuple[ShardDir, int, list[BlockFile]]] = []
        keys = 0
        for shard in self._todo:
            mtime = current_mtime(self.blocks_dir, shard.name)  # before listing
            files = list(block_files(self.blocks_dir, shard.name, self.sharding))
            group.append((shard, mtime, files))
            keys += len(files)
            if keys >= LOOKUP_GROUP:
                yield group
                group, keys = [], 0
        if group:
            yield group

    def _work(self, meter: Meter) -> Iterator[Block | DirDone]:
        """Verified blocks to send, each directory followed by its "finished" marker when
        nothing in it failed."""
        for group in self._groups():
            keys = [f.key for _, _, files in group for f in files]
            present = self.service.present(keys) if keys else set()
            for shard, mtime, files in group:
                yield from self._directory(shard, mtime, files, present, meter)

    def _directory(self, shard: ShardDir, mtime: int, files: list[BlockFile],
                   present: set[bytes], meter: Meter) -> Iterator[Block | DirDone]:
        clean, blocks, nbytes = True, 0, 0
        for block in files:
            self.report.misplaced += block.misplaced
            there = block.key in present
            if there:
                self.report.blocks_present += 1
                blocks += 1
                if not self.options.dry_run:
                    meter.add(1, 0)
                    continue
            data = read_verified(block, self.service.max_value, self.options.allow_unverifiable)
            if isinstance(data, BadBlock):
                clean = False
                self.report.bad[data.reason] = self.report.bad.get(data.reason, 0) + 1
                self.on_bad(data)
                meter.add(1, 0)
                continue
            if there:  # a dry run verifies these too, and sends nothing
                meter.add(1, len(data))
                continue
            blocks += 1
            nbytes += len(data)
            if self.options.dry_run:
                self.report.blocks_sent += 1
                self.report.bytes_sent += len(data)
            yield Block(block.key, data, shard.name)
        if clean:
            yield DirDone(DoneDir(shard.name, mtime, blocks, nbytes))
