"""What ``walrusds verify`` concludes about an entry or a pack, and the pure rules behind it.

Classes, from the operator's point of view:

- **OK** — the bytes read back intact (staged in Postgres, or from Walrus) and the blob is not
  near its end epoch;
- **EXPIRING** — intact, but the pack's end epoch is within ``--expiring-within`` epochs of the
  current epoch: the renewal worker should act soon (not a failure by itself);
- **LOST** — the pack is marked ``lost``, or every aggregator answers 404 for its blob;
- **CORRUPT** — the bytes fail the SHA-256 digest or the key's multihash on every aggregator
  (or, for a staged entry, in Postgres);
- **ORPHAN** — a pack whose blob is paid for but referenced by no entry: ``abandoned`` with a
  blob ID, or ``stored`` with no live entries.

The check of bytes is the read path's own (``walrusds.reader``): size and SHA-256 against the
index row, then the multihash when the key is a Kubo block key. :func:`value_problem` says
*which* check failed, for the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from walrusds.index.entries import Located
from walrusds.keys import show_key
from walrusds.verify import SHA2_256, expected_digest

__all__ = ["PROBLEMS", "Finding", "Verdict", "expiry_note", "value_problem"]


class Verdict(StrEnum):
    OK = "OK"
    EXPIRING = "EXPIRING"
    LOST = "LOST"
    CORRUPT = "CORRUPT"
    ORPHAN = "ORPHAN"


#: The classes that make ``walrusds verify`` exit non-zero.
PROBLEMS = frozenset({Verdict.LOST, Verdict.CORRUPT, Verdict.ORPHAN})


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion: about an entry (``key`` set) or about a pack (ORPHAN, ``key`` None)."""

    verdict: Verdict
    reason: str
    key: bytes | None = None
    blob_id: str | None = None
    pack_id: int | None = None
    offset: int | None = None
    size: int | None = None
    end_epoch: int | None = None

    @classmethod
    def of(cls, entry: Located, verdict: Verdict, reason: str) -> Finding:
        return cls(verdict, reason, entry.key, entry.blob_id, entry.pack_id, entry.pack_offset,
                   entry.size, entry.end_epoch)

    def as_json(self) -> dict[str, Any]:
        return {"class": self.verdict.value, "key": None if self.key is None else
                self.key.decode("utf-8", errors="backslashreplace"),
                "key_hex": None if self.key is None else self.key.hex(),
                "blob_id": self.blob_id, "pack_id": self.pack_id, "offset": self.offset,
                "size": self.size, "end_epoch": self.end_epoch, "reason": self.reason}

    def line(self) -> str:
        """One line for people: class, key, blob and offset (packed), reason."""
        key = "-" if self.key is None else show_key(self.key, 60)
        if self.blob_id is None and self.key is not None:
            return f"{self.verdict.value:<8} {key}  {self.reason}"  # staged: the reason says so
        offset = "" if self.offset is None else f" offset {self.offset}"
        pack = "" if self.pack_id is None else f" (pack {self.pack_id})"
        return f"{self.verdict.value:<8} {key}  blob {self.blob_id or '-'}{offset}{pack}: " \
               f"{self.reason}"


def value_problem(entry: Located, value: bytes) -> str | None:
    """None when ``value`` is ``entry``'s intact bytes; otherwise which check failed.

    The same rule as the read path (``walrusds.reader._intact``; ``tests/audit`` holds the two
    to agreement): exact size and the SHA-256 stored at Put time, then the multihash a Kubo
    block key promises (skipped when it is the very SHA-256 just compared).
    """
    if len(value) != entry.size:
        return f"{len(value)} bytes where the index says {entry.size}"
    if hashlib.sha256(value).digest() != entry.digest:
        return "bytes do not match the SHA-256 digest in the index"
    promised = expected_digest(entry.key)
    if promised is None or (promised.code == SHA2_256 and promised.digest == entry.digest):
        return None
    if not promised.matches(value):
        return f"bytes do not match the {promised.name} multihash in the key"
    return None


def expiry_note(end_epoch: int | None, current_epoch: int | None, within: int) -> str | None:
    """Why an intact packed entry is EXPIRING, or None when its blob is not near its end.

    Walrus makes a blob unreadable from the *start* of its end epoch, so a pack ending at
    ``current + 1`` has this epoch left. An end epoch already reached while the bytes still
    read (an aggregator's cache, or an epoch estimate running ahead) is EXPIRING too: the data
    is intact now and the renewal worker is late, which is urgent but not yet a loss.
    """
    if end_epoch is None or current_epoch is None:
        return None
    left = end_epoch - current_epoch
    if left <= 0:
        return (f"end epoch {end_epoch} reached (current epoch {current_epoch}) but still "
                "readable: renew now")
    if left <= within:
        return (f"blob ends at epoch {end_epoch}, {left} epoch{'s' if left > 1 else ''} from "
                f"the current {current_epoch}")
    return None
