"""Building packfiles: pure and deterministic.

``build_pack`` takes (key, value) members in the caller's order (the flusher sorts them by key)
and returns the whole pack in memory; a pack is bounded by the configured target size. The
function reads no clock, draws no random numbers and does no I/O, so the same members in the
same order always give the same bytes and therefore the same Walrus blob ID: a retried upload
of a rebuilt pack is harmless.

``pack_size`` predicts the exact length from (key, value size) alone, so a flusher can fill a
pack up to its byte target without building it. The size is additive: :data:`PACK_OVERHEAD`
plus :func:`entry_cost` per member, which lets a caller keep a running total instead of calling
``pack_size`` on ever-growing lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from walrusds.errors import InvalidArgument
from walrusds.keys import show_key
from walrusds.pack.format import (
    FOOTER_SIZE,
    MAX_ENTRIES,
    MAX_KEY_SIZE,
    VERSION,
    Footer,
    PackEntry,
    encode_footer,
    encode_record,
    record_size,
)

PACK_OVERHEAD = FOOTER_SIZE
"""Bytes every pack carries whatever its members: the footer."""


@dataclass(frozen=True)
class BuiltPack:
    """A finished packfile and where each member landed in it (in member order)."""

    data: bytes
    entries: tuple[PackEntry, ...]


def entry_cost(key: bytes, value_size: int) -> int:
    """The bytes one member adds to a pack: its value plus its trailer record."""
    return value_size + record_size(len(key))


def pack_size(members: Sequence[tuple[bytes, int]]) -> int:
    """The exact length of the pack ``build_pack`` would make for these (key, value size)
    members. Only sizes are checked here (not duplicates): this is an estimate for filling."""
    total = PACK_OVERHEAD
    for key, size in members:
        _check_member(key, size)
        total += entry_cost(key, size)
    return total


def build_pack(members: Sequence[tuple[bytes, bytes]]) -> BuiltPack:
    """Pack (key, value) members, in the given order, into one packfile.

    Raises :class:`InvalidArgument` for an empty member list, a duplicate key, or a key longer
    than ``MAX_KEY_SIZE`` bytes; nothing else can fail.
    """
    if not members:
        raise InvalidArgument("a pack needs at least one member")
    if len(members) > MAX_ENTRIES:
        raise InvalidArgument(f"a pack holds at most {MAX_ENTRIES} entries, got {len(members)}")
    seen: set[bytes] = set()
    entries: list[PackEntry] = []
    offset = 0
    for key, value in members:
        _check_member(key, len(value))
        if key in seen:
            raise InvalidArgument(f"duplicate key {show_key(key)} in pack members")
        seen.add(key)
        entries.append(PackEntry(key, offset, len(value), hashlib.sha256(value).digest()))
        offset += len(value)
    trailer = b"".join(encode_record(e) for e in entries)
    footer = Footer(VERSION, len(entries), offset, len(trailer),
                    hashlib.sha256(trailer).digest())
    data = b"".join(_chunks((v for _, v in members), trailer, encode_footer(footer)))
    return BuiltPack(data, tuple(entries))


def _chunks(values: Iterable[bytes], trailer: bytes, footer: bytes) -> Iterable[bytes]:
    yield from values
    yield trailer
    yield footer


def _check_member(key: bytes, size: int) -> None:
    if len(key) > MAX_KEY_SIZE:
        raise InvalidArgument(
            f"key of {len(key)} bytes is longer than the pack limit of {MAX_KEY_SIZE} bytes")
    if size < 0:
        raise InvalidArgument(f"negative value size {size} for key {show_key(key)}")
