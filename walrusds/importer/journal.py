"""The import's progress file: which shard directories are entirely in walrusds already.

``$IPFS_PATH/walrusds-import.progress`` is plain text, appended to and fsynced one line at a
time, so a crash can only lose (or tear) the line being written, which is then ignored::

    # walrusds import progress: shard directories whose blocks are all in walrusds
    dataset 0b6b7d0e-6c43-4a3e-a4d4-1f0d5c5e2a11
    done X3 1733140465123456789 12 3145728

A ``done`` line (directory, its modification time in ns when it was listed, blocks, bytes) is
written only after every block of that directory was committed by the service (or found there
already) and none of them failed verification. A later run skips such a directory as long as
its modification time is unchanged; adding or removing a block changes it, and the directory is
then scanned again. The file is tied to one dataset (its UUID): pointed at another dataset, the
import starts over. Losing the file costs only time: the import asks the service which blocks
it has before sending any.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

JOURNAL_FILE = "walrusds-import.progress"
HEADER = "# walrusds import progress: shard directories whose blocks are all in walrusds\n"


@dataclass(frozen=True)
class DoneDir:
    """A shard directory recorded as fully imported."""

    name: str
    mtime_ns: int
    blocks: int
    bytes: int


def _parse(text: str) -> tuple[str, dict[str, DoneDir]]:
    dataset = ""
    done: dict[str, DoneDir] = {}
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # torn by a crash while it was being written
        fields = line.split()
        if len(fields) == 2 and fields[0] == "dataset":
            dataset = fields[1]
        elif len(fields) == 5 and fields[0] == "done":
            try:
                done[fields[1]] = DoneDir(fields[1], *map(int, fields[2:]))
            except ValueError:
                continue
    return dataset, done


class Journal:
    """The progress file of one repo, for one dataset."""

    def __init__(self, repo: Path, dataset_id: str) -> None:
        self.path = repo / JOURNAL_FILE
        self.dataset_id = dataset_id
        self.done: dict[str, DoneDir] = {}
        self.discarded = ""  # why an existing file was not used, if it was not
        self._file: TextIO | None = None

    def load(self, restart: bool = False) -> None:
        """Read what earlier runs finished (nothing with ``restart``)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        dataset, done = _parse(text)
        if restart:
            self.discarded = "--restart"
        elif dataset != self.dataset_id:
            self.discarded = f"it records an import into another dataset ({dataset or '?'})"
        else:
            self.done = done

    def open(self) -> None:
        """Start appending; a file that was discarded (or is new) is rewritten from scratch."""
        fresh = not self.done
        self._file = self.path.open("w" if fresh else "a", encoding="utf-8")
        if fresh:
            self._write(HEADER + f"dataset {self.dataset_id}\n")

    def is_done(self, name: str, mtime_ns: int) -> DoneDir | None:
        """The record of a directory finished earlier and unchanged since, else ``None``."""
        record = self.done.get(name)
        return record if record is not None and record.mtime_ns == mtime_ns else None

    def mark_done(self, record: DoneDir) -> None:
        """Record a finished directory durably (flushed and fsynced)."""
        self.done[record.name] = record
        if self._file is not None:
            self._write(f"done {record.name} {record.mtime_ns} {record.blocks} "
                        f"{record.bytes}\n")

    def _write(self, text: str) -> None:
        assert self._file is not None
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Forget the import (after the switch: nothing is left to resume)."""
        self.close()
        self.path.unlink(missing_ok=True)
