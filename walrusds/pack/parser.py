"""Reading packfiles: every malformed input is a :class:`PackFormatError` that says what and where.

Packs come back from Walrus aggregators, CDNs and caches, so nothing in them is trusted. The
parser checks, in order: the footer (length, magic, version, self-checksum, plausibility), the
trailer (length, SHA-256, then each record's bounds, key length and uniqueness, and that the
values tile ``[0, trailer offset)`` exactly, back to back in trailer order), and in
:func:`parse_pack` every value's SHA-256. No ``IndexError``, ``struct.error`` or ``ValueError``
escapes: each read is bounds-checked before it is made.

Three entry points follow how a reader fetches a pack:

* :func:`parse_footer` on the last :data:`FOOTER_SIZE` bytes (one suffix Range read);
* :func:`parse_trailer` on ``footer.trailer_length`` bytes at ``footer.trailer_offset`` (a second
  Range read) — enough to rebuild the index rows of a pack without fetching its values;
* :func:`parse_pack` on a whole pack, which also verifies every value.

:func:`check_value` and :func:`extract_value` verify one entry's bytes on the read path.
"""

from __future__ import annotations

import hashlib

from walrusds.errors import CorruptData, PackFormatError
from walrusds.keys import show_key
from walrusds.pack.format import (
    DIGEST_SIZE,
    FOOTER_BODY,
    FOOTER_CHECKSUM_SIZE,
    FOOTER_SIZE,
    MAGIC,
    MAX_KEY_SIZE,
    RECORD_HEAD,
    RECORD_OVERHEAD,
    VERSION,
    VERSION_FROM_END,
    Footer,
    PackEntry,
    footer_checksum,
)

Buffer = bytes | bytearray | memoryview


def parse_footer(tail: Buffer, *, pack_size: int | None = None) -> Footer:
    """Decode and check the footer from exactly the last ``FOOTER_SIZE`` bytes of a pack.

    With ``pack_size`` (the blob's length, when known) the footer must also describe a pack of
    exactly that length, which catches truncated and extended packs.
    """
    tail = bytes(tail)
    if len(tail) != FOOTER_SIZE:
        raise PackFormatError(f"truncated footer: got {len(tail)} bytes, a packfile footer is "
                              f"{FOOTER_SIZE} bytes")
    if tail[-len(MAGIC):] != MAGIC:
        raise PackFormatError(f"bad magic {tail[-len(MAGIC):]!r} in the last {len(MAGIC)} bytes "
                              f"(expected {MAGIC!r}): not a walrusds packfile, or truncated "
                              "or extended")
    version = int.from_bytes(tail[-VERSION_FROM_END:-len(MAGIC)], "little")
    if version != VERSION:
        raise PackFormatError(f"unknown packfile version {version} (this walrusds reads "
                              f"version {VERSION})")
    body = tail[FOOTER_CHECKSUM_SIZE:]
    if footer_checksum(body) != tail[:FOOTER_CHECKSUM_SIZE]:
        raise PackFormatError("footer checksum mismatch: the last "
                              f"{FOOTER_SIZE} bytes are corrupt")
    t_offset, t_length, count, t_digest, _, _ = FOOTER_BODY.unpack(body)
    footer = Footer(version, count, t_offset, t_length, t_digest)
    if count == 0:
        raise PackFormatError("footer declares no entries: a packfile holds at least one")
    if t_length < count * RECORD_OVERHEAD:
        raise PackFormatError(f"trailer of {t_length} bytes is too short for {count} entries "
                              f"(at least {RECORD_OVERHEAD} bytes each)")
    if t_length > count * (RECORD_OVERHEAD + MAX_KEY_SIZE):
        raise PackFormatError(f"trailer of {t_length} bytes is too long for {count} entries "
                              f"(at most {RECORD_OVERHEAD + MAX_KEY_SIZE} bytes each)")
    if pack_size is not None and footer.pack_size != pack_size:
        footer_at = pack_size - FOOTER_SIZE
        trailer_end = t_offset + t_length
        if trailer_end > footer_at:
            raise PackFormatError(
                f"trailer out of bounds: [{t_offset}, {trailer_end}) runs past the footer at "
                f"offset {footer_at} of a {pack_size}-byte pack (truncated?)")
        raise PackFormatError(
            f"{footer_at - trailer_end} unexplained bytes between the trailer end at offset "
            f"{trailer_end} and the footer at offset {footer_at} (garbage around the pack?)")
    return footer


def parse_trailer(trailer: Buffer, footer: Footer) -> tuple[PackEntry, ...]:
    """Decode and check the trailer that ``footer`` describes.

    The entries come back in trailer order (the builder's member order). Values must tile
    ``[0, footer.trailer_offset)`` back to back, with no gap and no overlap.
    """
    data = bytes(trailer)
    base = footer.trailer_offset
    if len(data) != footer.trailer_length:
        raise PackFormatError(f"truncated trailer: got {len(data)} bytes at offset {base}, the "
                              f"footer says {footer.trailer_length}")
    if hashlib.sha256(data).digest() != footer.trailer_digest:
        raise PackFormatError(f"trailer checksum mismatch: the {len(data)} bytes at offset "
                              f"{base} are corrupt")
    entries: list[PackEntry] = []
    seen: set[bytes] = set()
    pos = 0
    expected = 0  # where the next value must start
    for i in range(footer.entry_count):
        start = pos
        if pos + RECORD_OVERHEAD > len(data):
            raise PackFormatError(f"truncated trailer: {_record(i, base + start)} needs "
                                  f"{RECORD_OVERHEAD} bytes, {len(data) - pos} left")
        offset, size, digest, key_len = RECORD_HEAD.unpack_from(data, pos)
        pos += RECORD_OVERHEAD
        if key_len > MAX_KEY_SIZE:
            raise PackFormatError(f"key too long: {_record(i, base + start)} has a "
                                  f"{key_len}-byte key (at most {MAX_KEY_SIZE})")
        if pos + key_len > len(data):
            raise PackFormatError(f"truncated trailer: {_record(i, base + start)} has a "
                                  f"{key_len}-byte key but {len(data) - pos} bytes are left")
        key = data[pos:pos + key_len]
        pos += key_len
        if key in seen or offset != expected or offset + size > base:
            raise _bad_record(i, base + start, key, offset, size, expected, base, key in seen)
        seen.add(key)
        entries.append(PackEntry(key, offset, size, digest))
        expected = offset + size
    if pos != len(data):
        raise PackFormatError(f"trailing garbage: {len(data) - pos} bytes after the last "
                              f"trailer record, at offset {base + pos}")
    if expected != base:
        raise PackFormatError(f"values end at {expected} but the trailer starts at {base}: "
                              f"{base - expected} bytes belong to no entry")
    return tuple(entries)


def _record(i: int, at: int) -> str:
    return f"trailer record {i} at offset {at}"


def _bad_record(i: int, at: int, key: bytes, offset: int, size: int, expected: int,
                values_end: int, duplicate: bool) -> PackFormatError:
    """The error for a record whose key or value placement is wrong (built only on failure:
    the happy path stays cheap for packs of millions of entries)."""
    span = (f"{_record(i, at)} (key {show_key(key)}, value [{offset}, {offset + size}))")
    if duplicate:
        return PackFormatError(f"duplicate key: {span} repeats an earlier key")
    if offset < expected:
        return PackFormatError(f"overlapping entries: {span} starts before the previous value "
                               f"ends at {expected}")
    if offset > expected:
        return PackFormatError(f"gap between entries: {span} starts after the previous value "
                               f"ends at {expected}")
    return PackFormatError(f"entry out of bounds: {span} runs past the values' end at "
                           f"{values_end}")


def parse_pack(data: Buffer) -> tuple[PackEntry, ...]:
    """Check a whole pack, every value's SHA-256 included, and return its entries."""
    view = memoryview(data).cast("B")
    if len(view) < FOOTER_SIZE:
        raise PackFormatError(f"truncated pack: {len(view)} bytes is shorter than the "
                              f"{FOOTER_SIZE}-byte footer")
    footer = parse_footer(view[-FOOTER_SIZE:], pack_size=len(view))
    start = footer.trailer_offset
    entries = parse_trailer(view[start:start + footer.trailer_length], footer)
    for i, entry in enumerate(entries):
        if hashlib.sha256(view[entry.offset:entry.end]).digest() != entry.digest:
            raise PackFormatError(
                f"digest mismatch: entry {i} (key {show_key(entry.key)}) at "
                f"[{entry.offset}, {entry.end}) does not match its sha256: the value is corrupt")
    return entries


def check_value(entry: PackEntry, value: Buffer) -> None:
    """Raise :class:`CorruptData` unless ``value`` is exactly ``entry``'s bytes (size and
    SHA-256), e.g. after a Range read of (offset, size) from an aggregator."""
    if len(value) != entry.size:
        raise CorruptData(f"value of key {show_key(entry.key)} is {len(value)} bytes, "
                          f"expected {entry.size}")
    if len(entry.digest) != DIGEST_SIZE or hashlib.sha256(value).digest() != entry.digest:
        raise CorruptData(f"value of key {show_key(entry.key)} does not match its sha256 "
                          "digest")


def extract_value(data: Buffer, entry: PackEntry) -> bytes:
    """``entry``'s verified value out of a whole pack (a cached or non-Range read)."""
    if entry.offset < 0 or entry.end > len(data):
        raise CorruptData(f"entry of key {show_key(entry.key)} at [{entry.offset}, "
                          f"{entry.end}) lies outside a {len(data)}-byte pack")
    value = bytes(memoryview(data)[entry.offset:entry.end])
    check_value(entry, value)
    return value
