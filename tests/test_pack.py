"""The packfile format: round trips, determinism, exact sizes, the documented test vector, and a
clear PackFormatError for each structural defect (docs/packfile.md)."""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import walrusds.pack as pack
from walrusds.errors import CorruptData, InvalidArgument, PackFormatError
from walrusds.pack import (
    FOOTER_SIZE,
    MAX_KEY_SIZE,
    PACK_OVERHEAD,
    Footer,
    PackEntry,
    build_pack,
    check_value,
    entry_cost,
    extract_value,
    pack_size,
    parse_footer,
    parse_pack,
    parse_trailer,
)
from walrusds.pack.format import VERSION, encode_footer, encode_record

DOC = Path(__file__).resolve().parent.parent / "docs" / "packfile.md"

VECTOR_MEMBERS = [(b"/a", b"hello"), (b"/b", b""), (b"/c", b"walrus")]

keys = st.binary(min_size=0, max_size=64)
members_st = st.lists(st.tuples(keys, st.binary(max_size=300)), min_size=1, max_size=12,
                      unique_by=lambda m: m[0])


def forge(records: Sequence[PackEntry], values: bytes, *, entry_count: int | None = None,
          trailer_offset: int | None = None, version: int = VERSION,
          extra_trailer: bytes = b"") -> bytes:
    """A pack written record by record with every checksum right, to reach structural checks
    that a corrupted byte would otherwise trip over first."""
    trailer = b"".join(encode_record(r) for r in records) + extra_trailer
    footer = Footer(version, len(records) if entry_count is None else entry_count,
                    len(values) if trailer_offset is None else trailer_offset, len(trailer),
                    hashlib.sha256(trailer).digest())
    return values + trailer + encode_footer(footer)


def entry(key: bytes, offset: int, value: bytes) -> PackEntry:
    return PackEntry(key, offset, len(value), hashlib.sha256(value).digest())


def vector_hex_from_doc() -> str:
    """The test vector as docs/packfile.md prints it: lines "OFFSET: HEX  # note", one per
    field. Each line's offset must be where its bytes really start."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- test-vector:begin -->\s*```text\n(.*?)```", text, re.S)
    assert found, "docs/packfile.md lost its test vector block"
    out = ""
    for line in found.group(1).splitlines():
        offset, rest = line.split("#", 1)[0].split(":")
        assert int(offset) == len(out) // 2, f"wrong offset in the doc's line {line!r}"
        out += "".join(rest.split())
    return out


def test_footer_and_record_sizes_are_the_documented_ones() -> None:
    assert FOOTER_SIZE == PACK_OVERHEAD == 72
    assert entry_cost(b"/k", 10) == 10 + 50 + 2


def test_public_surface_is_exactly_all() -> None:
    public = {n for n in vars(pack) if not n.startswith("_")} - {
        "builder", "format", "parser", "annotations"}
    assert public == set(pack.__all__)


def test_round_trip_keeps_order_offsets_and_bytes() -> None:
    members = [(b"/z", b"last first"), (b"/a", b"\x00" * 1000), (b"", b""), (b"/m", b"x")]
    built = build_pack(members)
    assert parse_pack(built.data) == built.entries
    assert [e.key for e in built.entries] == [k for k, _ in members]
    for (_, value), e in zip(members, built.entries, strict=True):
        assert built.data[e.offset:e.offset + e.size] == value
        assert e.digest == hashlib.sha256(value).digest()
        assert extract_value(built.data, e) == value


def test_same_members_same_bytes_and_order_matters() -> None:
    members = [(b"/a", b"1"), (b"/b", b"22")]
    assert build_pack(members).data == build_pack(list(members)).data
    assert build_pack(members).data != build_pack(members[::-1]).data


@settings(max_examples=150, deadline=None)
@given(members_st)
def test_round_trip_and_exact_size_any_shape(members: list[tuple[bytes, bytes]]) -> None:
    built = build_pack(members)
    assert len(built.data) == pack_size([(k, len(v)) for k, v in members])
    assert parse_pack(built.data) == built.entries
    assert built == build_pack(members)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=MAX_KEY_SIZE), st.integers(0, 5000)),
                min_size=1, max_size=4, unique_by=lambda m: m[0]))
def test_pack_size_is_exact_for_long_keys_and_sizes(sizes: list[tuple[bytes, int]]) -> None:
    built = build_pack([(k, bytes(n)) for k, n in sizes])
    assert len(built.data) == pack_size(sizes)
    assert pack_size(sizes) == PACK_OVERHEAD + sum(entry_cost(k, n) for k, n in sizes)


def test_test_vector_matches_the_doc() -> None:
    built = build_pack(VECTOR_MEMBERS)
    assert built.data.hex() == vector_hex_from_doc()
    assert [(e.key, e.offset, e.size) for e in parse_pack(bytes.fromhex(vector_hex_from_doc()))
            ] == [(b"/a", 0, 5), (b"/b", 5, 0), (b"/c", 5, 6)]


def test_reader_path_footer_then_trailer_then_one_range() -> None:
    """What a reader does over HTTP: the last FOOTER_SIZE bytes, then the trailer by its
    offset, then one entry by (offset, size), without ever holding the whole pack."""
    members = [(f"/k{i}".encode(), bytes([i]) * (i * 7)) for i in range(20)]
    data = build_pack(members).data
    footer = parse_footer(data[-FOOTER_SIZE:], pack_size=len(data))
    assert (footer.entry_count, footer.pack_size) == (20, len(data))
    entries = parse_trailer(
        data[footer.trailer_offset:footer.trailer_offset + footer.trailer_length], footer)
    assert entries == build_pack(members).entries
    e = entries[13]
    check_value(e, data[e.offset:e.offset + e.size])
    with pytest.raises(CorruptData, match="does not match its sha256"):
        check_value(e, bytes([0]) * e.size)
    with pytest.raises(CorruptData, match="is 90 bytes, expected 91"):
        check_value(e, data[e.offset:e.offset + e.size - 1])
    with pytest.raises(CorruptData, match="outside"):
        extract_value(data[:e.end - 1], e)


def test_build_refuses_bad_members() -> None:
    with pytest.raises(InvalidArgument, match="at least one member"):
        build_pack([])
    with pytest.raises(InvalidArgument, match="duplicate key '/a'"):
        build_pack([(b"/a", b"1"), (b"/b", b""), (b"/a", b"2")])
    with pytest.raises(InvalidArgument, match="2049 bytes"):
        build_pack([(b"k" * (MAX_KEY_SIZE + 1), b"")])
    with pytest.raises(InvalidArgument, match="2049 bytes"):
        pack_size([(b"k" * (MAX_KEY_SIZE + 1), 0)])
    with pytest.raises(InvalidArgument, match="negative"):
        pack_size([(b"/k", -1)])
    assert parse_pack(build_pack([(b"k" * MAX_KEY_SIZE, b"v")]).data)[0].size == 1


GOOD_VALUES = b"helloworld"
A = entry(b"/a", 0, b"hello")
B = entry(b"/b", 5, b"world")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated pack: 0 bytes"),
    (b"\x00" * 71, "truncated pack: 71 bytes"),
    (b"\x00" * 200, "bad magic"),
    (forge([A, B], GOOD_VALUES, version=2), "unknown packfile version 2"),
    (forge([], b""), "no entries"),
    (forge([A, B], GOOD_VALUES, entry_count=3), "too short for 3 entries"),
    (forge([A], GOOD_VALUES[:5], extra_trailer=b"\x00" * 2100), "too long for 1 entries"),
    (forge([A, B], GOOD_VALUES, entry_count=1), "trailing garbage: 52 bytes after the last"),
    (forge([A, entry(b"/a", 5, b"world")], GOOD_VALUES), "duplicate key: trailer record 1"),
    (forge([A, entry(b"/b", 4, b"oworld")], GOOD_VALUES), "overlapping entries"),
    (forge([A, entry(b"/b", 6, b"orld")], GOOD_VALUES), "gap between entries"),
    (forge([A, entry(b"/b", 5, b"world!")], GOOD_VALUES), "entry out of bounds"),
    (forge([A], GOOD_VALUES), "5 bytes belong to no entry"),
    (forge([A, B], GOOD_VALUES, trailer_offset=11), "trailer out of bounds"),
    (forge([A, B], GOOD_VALUES, trailer_offset=9), "1 unexplained bytes"),
    (forge([A, B], b"hellxworld"), r"digest mismatch: entry 0 \(key '/a'\) at \[0, 5\)"),
])
def test_each_defect_has_its_own_message(data: bytes, message: str) -> None:
    with pytest.raises(PackFormatError, match=message):
        parse_pack(data)


def test_forged_records_with_bad_key_lengths() -> None:
    head = struct.pack("<QQ32sH", 0, 5, A.digest, MAX_KEY_SIZE + 1)
    with pytest.raises(PackFormatError, match="key too long: trailer record 0 at offset 5"):
        parse_pack(forge([], b"hello", entry_count=2,
                         extra_trailer=head + b"k" * 2049 + bytes(50)))
    short = struct.pack("<QQ32sH", 0, 5, A.digest, 60)
    with pytest.raises(PackFormatError, match="60-byte key but 10 bytes are left"):
        parse_pack(forge([], b"hello", entry_count=1, extra_trailer=short + b"k" * 10))
    one = encode_record(A)
    with pytest.raises(PackFormatError, match="record 1 at offset 57 needs 50 bytes, 49 left"):
        parse_pack(forge([], b"hello", entry_count=2, extra_trailer=one + b"\x00" * 49))


def test_footer_and_trailer_checks_on_their_own() -> None:
    data = build_pack(VECTOR_MEMBERS).data
    tail = data[-FOOTER_SIZE:]
    with pytest.raises(PackFormatError, match="truncated footer: got 71 bytes"):
        parse_footer(tail[1:])
    with pytest.raises(PackFormatError, match="footer checksum mismatch"):
        parse_footer(bytes([tail[0] ^ 1]) + tail[1:])
    with pytest.raises(PackFormatError, match="trailer out of bounds"):
        parse_footer(tail, pack_size=len(data) - 1)
    footer = parse_footer(tail)
    trailer = data[footer.trailer_offset:len(data) - FOOTER_SIZE]
    with pytest.raises(PackFormatError, match="truncated trailer: got 155 bytes"):
        parse_trailer(trailer[:-1], footer)
    with pytest.raises(PackFormatError, match="trailer checksum mismatch"):
        parse_trailer(trailer[:-1] + b"!", footer)


def test_offsets_are_64_bit() -> None:
    """A footer may place a trailer beyond 4 GiB; only the blob's length can refute it."""
    big = 5 * 2**30
    records = [PackEntry(b"/big", 0, big, bytes(32))]
    trailer = b"".join(encode_record(r) for r in records)
    tail = encode_footer(Footer(VERSION, 1, big, len(trailer), hashlib.sha256(trailer).digest()))
    footer = parse_footer(tail, pack_size=big + len(trailer) + FOOTER_SIZE)
    assert footer.trailer_offset == big
    assert parse_trailer(trailer, footer)[0].end == big
    with pytest.raises(PackFormatError, match="trailer out of bounds"):
        parse_footer(tail, pack_size=big)
