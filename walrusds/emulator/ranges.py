"""Byte ranges as the aggregator accepts them (notes §4.1, §4.2, §8); pure functions.

The ``Range`` header is strict: exactly one ``bytes=START-END`` range, both numbers given,
``START <= END < size``. Open-ended (``bytes=500-``), suffix (``bytes=-500``) and multiple ranges
are refused, and an END at or past the end of the blob is refused rather than clamped — all with
416. The ``/byte-range?start=S&length=L`` endpoint answers 400 instead, for ``L = 0``, an
overflowing ``S + L`` or a window past the end of the blob.
"""

from __future__ import annotations

import re

__all__ = ["U64_MAX", "RangeError", "check_byte_range", "check_span", "parse_range_header"]

U64_MAX = (1 << 64) - 1

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeError(ValueError):
    """A range the aggregator refuses; the message is the one put in the error body."""


def parse_range_header(value: str) -> tuple[int, int]:
    """``(start, end)`` (``end`` inclusive) of a ``Range`` header value, or :class:`RangeError`.

    Bounds against the blob size are checked separately (:func:`check_span`), because the blob's
    size is only known once its metadata is found.
    """
    unit, sep, specs = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeError("invalid range header: only byte ranges are supported")
    parts = specs.split(",")
    if len(parts) != 1:
        raise RangeError("invalid range header: multiple ranges are not supported")
    match = _SPEC.match(parts[0])
    if match is None:
        raise RangeError("invalid range header: cannot parse the byte range")
    first, last = match.groups()
    if not first:
        raise RangeError("invalid range header: suffix ranges are not supported")
    if not last:
        raise RangeError("invalid range header: must provide end index")
    start, end = int(first), int(last)
    if start > U64_MAX or end > U64_MAX:
        raise RangeError("invalid range header: number too large")
    if start > end:
        raise RangeError("invalid range header: start index is greater than end index")
    return start, end


def check_span(start: int, end: int, size: int) -> None:
    """Refuse an inclusive ``[start, end]`` that does not lie inside a blob of ``size`` bytes."""
    if end >= size:
        raise RangeError(f"byte range out of bounds: bytes {start}-{end} of a blob of "
                         f"{size} bytes")


def check_byte_range(start: int, length: int, size: int) -> None:
    """Refuse a ``/byte-range`` window ``[start, start + length)`` of a blob of ``size`` bytes."""
    if length == 0:
        raise RangeError("invalid byte range: length must be greater than zero")
    if start + length > U64_MAX:
        raise RangeError("invalid byte range: start + length overflows")
    if start + length > size:
        raise RangeError(f"invalid byte range: bytes [{start}, {start + length}) are out of "
                         f"bounds of a blob of {size} bytes")
