"""Reading one flatfs block and checking it against its key before anything is sent.

A Kubo block key is the multihash of the block's bytes, so every block can be checked on its
own: :func:`walrusds.verify.expected_digest` decodes the multihash in the key (the same check
the service applies on writes and reads), and the bytes must hash to it. A block whose key names
a hash walrusds cannot recompute (blake3, a truncated digest, a pre-v0.12 CID key) is
*unverifiable* and is refused unless the caller allows it. One block is in memory at a time,
and never more than the service's largest value: the size is checked before the file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from walrusds.importer.flatfs import BlockFile
from walrusds.keys import show_key
from walrusds.verify import expected_digest

CORRUPT = "corrupt"
UNVERIFIABLE = "unverifiable"
UNREADABLE = "unreadable"
TOO_LARGE = "too large"


@dataclass(frozen=True)
class BadBlock:
    """A block that is not imported, and why."""

    block: BlockFile
    reason: str  # CORRUPT, UNVERIFIABLE, UNREADABLE or TOO_LARGE
    detail: str

    def describe(self) -> str:
        return f"{self.reason} block {show_key(self.block.key, 200)} ({self.block.path}): " \
            f"{self.detail}"


def read_verified(block: BlockFile, max_value: int,
                  allow_unverifiable: bool = False) -> bytes | BadBlock:
    """The block's bytes if they match the multihash in its key, else why not."""
    expected = expected_digest(block.key)
    if expected is None and not allow_unverifiable:
        return BadBlock(block, UNVERIFIABLE, "its key names no multihash walrusds can check "
                        "(see --allow-unverifiable)")
    try:
        with open(block.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_value:
                return BadBlock(block, TOO_LARGE, f"{size} bytes, over the service's maximum "
                                f"of {max_value} bytes per value")
            data = f.read(max_value + 1)
    except OSError as exc:
        return BadBlock(block, UNREADABLE, exc.strerror or str(exc))
    if len(data) > max_value:
        return BadBlock(block, TOO_LARGE, f"over the service's maximum of {max_value} bytes")
    if expected is not None and not expected.matches(data):
        return BadBlock(block, CORRUPT, f"its {len(data)} bytes do not match the "
                        f"{expected.name} multihash in its key")
    return data
