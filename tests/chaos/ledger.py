"""What a chaos test records (the :class:`Ledger` of what clients were told) and the rows the
invariant checker (tests/chaos/invariants.py) reads from the index."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from walrusds.emulator.control import EmulatorControl
from walrusds.keys import show_key

ABSENT = None
Value = bytes | None


def _digest(value: Value) -> str:
    return "absent" if value is None else hashlib.sha256(value).hexdigest()[:12]


@dataclass
class BatchRecord:
    """A Batch whose outcome is unknown: after the chaos it must be all or nothing."""

    ops: dict[bytes, Value]
    before: dict[bytes, frozenset[Value]]
    seq: int


@dataclass
class Ledger:
    """Per key, the values it may hold; the unknown batches; the reads that went wrong."""

    possible: dict[bytes, set[Value]] = field(default_factory=dict)
    written_at: dict[bytes, int] = field(default_factory=dict)
    unknown_batches: list[BatchRecord] = field(default_factory=list)
    bad_reads: list[str] = field(default_factory=list)
    #: Keys under these prefixes may exist without the ledger knowing them (probes).
    foreign: tuple[bytes, ...] = ()
    acked: int = 0
    unknown: int = 0
    seq: int = 0

    def _states(self, key: bytes) -> set[Value]:
        return self.possible.setdefault(key, {ABSENT})

    # -- writes --------------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes, ok: bool) -> None:
        self.write({key: value}, ok)

    def delete(self, key: bytes, ok: bool) -> None:
        self.write({key: ABSENT}, ok)

    def write(self, ops: Mapping[bytes, Value], ok: bool) -> None:
        """A Put, Delete or Batch (last op per key) acknowledged (``ok``) or of unknown
        outcome."""
        self.seq += 1
        if ok:
            self.acked += 1
        else:
            self.unknown += 1
            self.unknown_batches.append(BatchRecord(
                dict(ops), {k: frozenset(self._states(k)) for k in ops}, self.seq))
        for key, value in ops.items():
            states = self._states(key)
            if ok:
                states.clear()
            states.add(value)
            self.written_at[key] = self.seq

    # -- reads ---------------------------------------------------------------------------------

    def read(self, key: bytes, value: Value, *, settle: bool = False) -> None:
        """Check a read against what the key may hold (I1, I4, I6, I7). With ``settle`` (no
        write of the key in flight) the key's possible values narrow to what was seen."""
        states = self._states(key)
        if value not in states:
            self.bad_reads.append(
                f"{show_key(key)}: read {_digest(value)}, expected one of "
                f"{sorted(_digest(v) for v in states)}")
            return
        if settle:
            states.clear()
            states.add(value)

    def keys(self) -> list[bytes]:
        return sorted(self.possible)


@dataclass
class Target:
    """Where to look: the service's API, its Postgres schema, the emulator."""

    api: Any
    dsn: str
    schema: str
    control: EmulatorControl | None = None
    emulator_url: str | None = None
    dataset: str = "default"


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    #: Blobs on the emulator that no pack row names (uploads whose journal entry was lost in a
    #: crash): paid for, found only by listing Walrus. A figure, not a violation.
    unjournaled_blobs: int = 0
    orphans: int = 0
    keys: int = 0
    #: Batches without a known outcome, read back: applied whole, or not at all.
    batches_applied: int = 0
    batches_absent: int = 0
    #: Seconds each part of the check took.
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, invariant: str, message: str) -> None:
        self.violations.append(f"{invariant}: {message}")


@dataclass(frozen=True)
class PackRow:
    id: int
    state: str
    blob_id: str | None
    pack_bytes: int
    data_bytes: int
    live_bytes: int
    live_entries: int
    end_epoch: int | None


@dataclass(frozen=True)
class EntryRow:
    key: bytes
    size: int
    digest: bytes
    pack_id: int | None
    offset: int | None
    claim: int | None
