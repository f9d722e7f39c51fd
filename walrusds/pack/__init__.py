"""Packfiles: many (key, value) entries in one Walrus blob, self-describing and pure.

A pack is the values back to back from offset 0, a trailer listing (key, offset, size, sha256)
per entry, and a fixed 72-byte footer; docs/packfile.md has the byte layout, a test vector and
the versioning rules. Building is deterministic (same members in the same order, same bytes);
parsing trusts nothing and reports every defect as :class:`PackFormatError`. This package does
no I/O and imports only ``walrusds.errors`` and ``walrusds.keys``.
"""

from walrusds.errors import PackFormatError
from walrusds.pack.builder import PACK_OVERHEAD, BuiltPack, build_pack, entry_cost, pack_size
from walrusds.pack.format import (
    FOOTER_SIZE,
    MAGIC,
    MAX_KEY_SIZE,
    VERSION,
    Footer,
    PackEntry,
)
from walrusds.pack.parser import (
    check_value,
    extract_value,
    parse_footer,
    parse_pack,
    parse_trailer,
)

__all__ = [
    "FOOTER_SIZE",
    "MAGIC",
    "MAX_KEY_SIZE",
    "PACK_OVERHEAD",
    "VERSION",
    "BuiltPack",
    "Footer",
    "PackEntry",
    "PackFormatError",
    "build_pack",
    "check_value",
    "entry_cost",
    "extract_value",
    "pack_size",
    "parse_footer",
    "parse_pack",
    "parse_trailer",
]
