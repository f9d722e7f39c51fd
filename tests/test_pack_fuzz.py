"""Fuzzing the packfile parser: whatever the bytes, the answer is a valid parse or a
PackFormatError — never an IndexError, struct.error, ValueError or any other exception.

Every byte of a pack is covered by a check (values by their digests, the trailer by its digest,
the footer by its checksum), so every single-byte change, truncation and extension of a valid
pack must be *detected*, not merely survived.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walrusds.errors import PackFormatError
from walrusds.pack import (
    FOOTER_SIZE,
    Footer,
    PackEntry,
    build_pack,
    parse_footer,
    parse_pack,
    parse_trailer,
)
from walrusds.pack.format import MAGIC, VERSION, encode_footer, encode_record

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SAMPLES = [
    build_pack([(b"/a", b"hello"), (b"/b", b""), (b"/c", b"walrus")]),
    build_pack([(b"", b"\x00"), (b"\xff" * 300, b"x" * 40)]),
]

members_st = st.lists(st.tuples(st.binary(max_size=24), st.binary(max_size=64)),
                      min_size=1, max_size=6, unique_by=lambda m: m[0])


def rejects(data: bytes) -> PackFormatError:
    """parse_pack must raise PackFormatError (and nothing else) for ``data``."""
    with pytest.raises(PackFormatError) as caught:
        parse_pack(data)
    return caught.value


def survives(data: bytes) -> tuple[PackEntry, ...] | None:
    """parse_pack may accept ``data`` or raise PackFormatError; anything else fails the test.
    An accepted pack must really be consistent."""
    try:
        entries = parse_pack(data)
    except PackFormatError:
        return None
    end = 0
    for e in entries:
        assert e.offset == end
        assert hashlib.sha256(data[e.offset:e.end]).digest() == e.digest
        end = e.end
    return entries


def value_area(data: bytes) -> int:
    return parse_footer(data[-FOOTER_SIZE:]).trailer_offset


@pytest.mark.parametrize("sample", range(len(SAMPLES)))
@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_every_single_byte_change_is_detected(sample: int, flip: int) -> None:
    data = SAMPLES[sample].data
    values_end = value_area(data)
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= flip
        error = rejects(bytes(mutated))
        if pos < values_end:
            assert "digest mismatch" in str(error), pos
        else:
            assert "digest mismatch" not in str(error), pos


@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_every_truncation_deletion_and_insertion_is_detected(sample: int) -> None:
    data = SAMPLES[sample].data
    for n in range(len(data)):
        rejects(data[:n])                      # tail cut off
        rejects(data[n + 1:])                  # head cut off
        rejects(data[:n] + data[n + 1:])       # one byte deleted
        rejects(data[:n] + b"\x00" + data[n:])  # one byte inserted
    for extra in (b"\x00", b"x" * 72, data[-FOOTER_SIZE:]):
        rejects(data + extra)
        rejects(extra + data)


@FUZZ
@given(members_st, st.data())
def test_random_single_byte_change_of_any_pack(members: list[tuple[bytes, bytes]],
                                               data: st.DataObject) -> None:
    packed = build_pack(members).data
    pos = data.draw(st.integers(0, len(packed) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(packed)
    mutated[pos] ^= flip
    error = rejects(bytes(mutated))
    assert ("digest mismatch" in str(error)) == (pos < value_area(packed))


@FUZZ
@given(members_st, st.binary(min_size=1, max_size=100), st.booleans())
def test_random_extension_of_any_pack(members: list[tuple[bytes, bytes]], extra: bytes,
                                      at_end: bool) -> None:
    packed = build_pack(members).data
    rejects(packed + extra if at_end else extra + packed)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    survives(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_that_end_like_a_pack(prefix: bytes) -> None:
    """Random bytes ending in a version-1 magic get past the first check to the checksum."""
    rejects(prefix + struct.pack("<I", VERSION) + MAGIC)


u64 = st.integers(0, 2**64 - 1)
small = st.integers(0, 80)
maybe_big = st.one_of(small, u64)


def forge(values: bytes, records: list[PackEntry], *, count: int | None = None,
          trailer_offset: int | None = None, junk: bytes = b"") -> bytes:
    """A pack with arbitrary fields but every digest and checksum computed right, so that only
    the parser's structural checks stand between these bytes and a wrong answer."""
    trailer = b"".join(encode_record(r) for r in records) + junk
    footer = Footer(VERSION, len(records) if count is None else count,
                    len(values) if trailer_offset is None else trailer_offset, len(trailer),
                    hashlib.sha256(trailer).digest())
    return values + trailer + encode_footer(footer)


@FUZZ
@given(st.binary(max_size=80),
       st.lists(st.builds(PackEntry, st.binary(max_size=8), maybe_big, maybe_big,
                          st.binary(min_size=32, max_size=32)), max_size=5),
       st.one_of(st.none(), maybe_big), st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       st.binary(max_size=60))
def test_forged_packs_with_random_fields(values: bytes, records: list[PackEntry],
                                         trailer_offset: int | None, count: int | None,
                                         junk: bytes) -> None:
    survives(forge(values, records, count=count, trailer_offset=trailer_offset, junk=junk))


@FUZZ
@given(members_st, st.data())
def test_forged_packs_one_field_off(members: list[tuple[bytes, bytes]],
                                    data: st.DataObject) -> None:
    """A valid pack with one record field, the entry count, the trailer offset or the trailer
    tail changed, and the checksums recomputed: the parser must accept exactly the results
    that are still valid layouts (a renamed key, two empty values swapped) and refuse the
    rest."""
    built = build_pack(members)
    values = built.data[:built.entries[-1].end]
    records = list(built.entries)
    count: int | None = None
    trailer_offset: int | None = None
    junk = b""
    what = data.draw(st.sampled_from(["key", "offset", "size", "digest", "count",
                                      "trailer_offset", "junk", "swap", "nothing"]))
    i = data.draw(st.integers(0, len(records) - 1))
    r = records[i]
    if what == "key":
        records[i] = PackEntry(data.draw(st.binary(max_size=30)), r.offset, r.size, r.digest)
    elif what == "offset":
        records[i] = PackEntry(r.key, data.draw(maybe_big), r.size, r.digest)
    elif what == "size":
        records[i] = PackEntry(r.key, r.offset, data.draw(maybe_big), r.digest)
    elif what == "digest":
        records[i] = PackEntry(r.key, r.offset, r.size, data.draw(st.binary(min_size=32,
                                                                            max_size=32)))
    elif what == "count":
        count = data.draw(st.integers(0, 2**32 - 1))
    elif what == "trailer_offset":
        trailer_offset = data.draw(maybe_big)
    elif what == "junk":
        junk = data.draw(st.binary(min_size=1, max_size=60))
    elif what == "swap":
        j = data.draw(st.integers(0, len(records) - 1))
        records[i], records[j] = records[j], records[i]
    forged = forge(values, records, count=count, trailer_offset=trailer_offset, junk=junk)
    valid = (count in (None, len(records)) and trailer_offset in (None, len(values))
             and not junk and is_valid_layout(values, records))
    assert survives(forged) == (tuple(records) if valid else None), what


def is_valid_layout(values: bytes, records: list[PackEntry]) -> bool:
    """The test's own statement of a valid layout: unique keys; values back to back from 0
    to the end of the value area; every digest right."""
    end = 0
    for r in records:
        if r.offset != end or hashlib.sha256(values[r.offset:r.end]).digest() != r.digest:
            return False
        end = r.end
    return end == len(values) and len({r.key for r in records}) == len(records)


@FUZZ
@given(st.binary(max_size=120), st.integers(1, 10), maybe_big, st.integers(0, 200))
def test_trailer_parser_on_arbitrary_bytes(trailer: bytes, count: int, trailer_offset: int,
                                           declared: int) -> None:
    """parse_trailer on raw bytes (digest right), with a footer that may or may not describe
    them: PackFormatError, or entries that really tile [0, trailer offset)."""
    footer = Footer(VERSION, count, trailer_offset, declared, hashlib.sha256(trailer).digest())
    try:
        entries = parse_trailer(trailer, footer)
    except PackFormatError:
        return
    assert len(trailer) == declared
    assert len(entries) == count
    assert [e.offset for e in entries] == [0] + [e.end for e in entries[:-1]]
    assert entries[-1].end == trailer_offset


@FUZZ
@given(st.binary(min_size=FOOTER_SIZE - 20, max_size=FOOTER_SIZE - 20),
       st.one_of(st.none(), st.integers(0, 2**40)))
def test_footer_parser_on_random_bodies_with_valid_checksum(body: bytes,
                                                            pack_size: int | None) -> None:
    """A footer whose checksum, version and magic are right but whose fields are random."""
    tail_body = body + struct.pack("<I", VERSION) + MAGIC
    tail = hashlib.sha256(tail_body).digest()[:8] + tail_body
    try:
        footer = parse_footer(tail, pack_size=pack_size)
    except PackFormatError:
        return
    assert footer.entry_count > 0
    assert pack_size is None or footer.pack_size == pack_size
