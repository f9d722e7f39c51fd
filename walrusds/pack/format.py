"""The packfile byte layout, version 1: constants, the footer, and the trailer record.

A pack is three regions, all integers little-endian (docs/packfile.md has the full table and a
test vector)::

    [ values, back to back from offset 0 ][ trailer: one record per entry ][ footer: 72 bytes ]

A trailer record is ``offset u64 | size u64 | sha256 digest [32] | key length u16 | key``.
The footer is::

    0   footer checksum  8 bytes  the first 8 bytes of SHA-256(footer bytes 8..71)
    8   trailer offset   u64      where the trailer starts (= total bytes of values)
    16  trailer length   u64      bytes of the trailer
    24  entry count      u32      number of trailer records
    28  trailer sha256   32 bytes SHA-256 of the trailer bytes
    60  version          u32      1
    64  magic            8 bytes  b"WDSPACK\\x00"

The last 12 bytes of a pack are the version and the magic in every version of the format, so
a reader recognises a pack, and a version it cannot read, before it knows the footer's size.

Why this shape: values come first and uncompressed so an entry is exactly
``data[offset:offset + size]`` and one HTTP Range read fetches it; the trailer goes after the
values so the builder can write in one pass; the footer has a fixed size and sits at the very
end, so a reader finds everything from the last :data:`FOOTER_SIZE` bytes. 64-bit offsets and
sizes allow packs and values far beyond today's targets; keys are bounded by
:data:`MAX_KEY_SIZE` (the service's own key limit). Every byte is covered by a check: values by
their per-entry digest, the trailer by its SHA-256 in the footer, the footer by its own
checksum, so any corruption is detected and reported as :class:`PackFormatError`.

This module only describes the layout; ``builder`` writes it and ``parser`` reads it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

MAGIC: Final = b"WDSPACK\x00"
VERSION: Final = 1
MAX_KEY_SIZE: Final = 2048
DIGEST_SIZE: Final = 32
MAX_ENTRIES: Final = 0xFFFF_FFFF

# Footer after its checksum: trailer offset, trailer length, entry count, trailer sha256,
# version, magic.
FOOTER_CHECKSUM_SIZE: Final = 8
FOOTER_BODY: Final = struct.Struct("<QQI32sI8s")
FOOTER_SIZE: Final = FOOTER_CHECKSUM_SIZE + FOOTER_BODY.size
# Where the version and the magic sit, counted from the end of the pack (every version).
VERSION_FROM_END: Final = 12

# Trailer record head: value offset, value size, value sha256, key length; the key follows.
RECORD_HEAD: Final = struct.Struct("<QQ32sH")
RECORD_OVERHEAD: Final = RECORD_HEAD.size


@dataclass(frozen=True, slots=True)
class PackEntry:
    """One value in a pack: ``data[offset:offset + size]``, whose SHA-256 is ``digest``."""

    key: bytes
    offset: int
    size: int
    digest: bytes

    @property
    def end(self) -> int:
        """The offset just past this entry's value."""
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Footer:
    """The decoded fixed-size footer at the end of every pack."""

    version: int
    entry_count: int
    trailer_offset: int
    trailer_length: int
    trailer_digest: bytes

    @property
    def pack_size(self) -> int:
        """The total length of the pack this footer describes."""
        return self.trailer_offset + self.trailer_length + FOOTER_SIZE


def footer_checksum(body: bytes) -> bytes:
    """The footer's self-checksum over the footer bytes that follow it."""
    return hashlib.sha256(body).digest()[:FOOTER_CHECKSUM_SIZE]


def encode_footer(footer: Footer) -> bytes:
    body = FOOTER_BODY.pack(footer.trailer_offset, footer.trailer_length, footer.entry_count,
                            footer.trailer_digest, footer.version, MAGIC)
    return footer_checksum(body) + body


def encode_record(entry: PackEntry) -> bytes:
    return RECORD_HEAD.pack(entry.offset, entry.size, entry.digest, len(entry.key)) + entry.key


def record_size(key_size: int) -> int:
    """Bytes one trailer record takes for a key of ``key_size`` bytes."""
    return RECORD_OVERHEAD + key_size
