"""Pure pieces of the emulator: Range parsing, the epoch clock, fault specs, fake blob IDs."""

from __future__ import annotations

import base64
import hashlib

import pytest

from walrusds.emulator.clock import EpochClock
from walrusds.emulator.faults import FaultBook, FaultKind, FaultSpec
from walrusds.emulator.ids import fake_blob_id, is_blob_id, new_object_id, new_tx_digest
from walrusds.emulator.ranges import RangeError, check_byte_range, check_span, parse_range_header


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-0", (0, 0)),
    ("bytes=5-9", (5, 9)),
    (" bytes = 3 - 4 ", (3, 4)),
    ("BYTES=1-2", (1, 2)),
])
def test_range_header_accepted(header: str, expected: tuple[int, int]) -> None:
    assert parse_range_header(header) == expected


@pytest.mark.parametrize(("header", "message"), [
    ("bytes=500-", "must provide end index"),
    ("bytes=-500", "suffix"),
    ("bytes=0-1,4-5", "multiple"),
    ("bytes=9-2", "greater than"),
    ("items=0-1", "only byte ranges"),
    ("bytes=a-b", "cannot parse"),
    ("bytes=0-99999999999999999999", "too large"),
    ("0-1", "only byte ranges"),
])
def test_range_header_refused(header: str, message: str) -> None:
    with pytest.raises(RangeError, match=message):
        parse_range_header(header)


def test_range_bounds() -> None:
    check_span(0, 9, 10)
    with pytest.raises(RangeError, match="out of bounds"):
        check_span(0, 10, 10)
    with pytest.raises(RangeError):
        check_span(0, 0, 0)
    check_byte_range(9, 1, 10)
    for start, length in ((0, 0), (10, 1), (2**64 - 1, 1)):
        with pytest.raises(RangeError):
            check_byte_range(start, length, 10)


def test_manual_clock_moves_only_when_told() -> None:
    now = [1000.0]
    clock = EpochClock(5, None, now=lambda: now[0])
    now[0] += 10**6
    assert clock.current == 5
    assert clock.advance(2) == 7
    assert clock.set(3) == 3
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_wall_clock_ticks_and_restores() -> None:
    now = [1000.0]
    clock = EpochClock(1, 60.0, now=lambda: now[0])
    now[0] += 59.9
    assert clock.current == 1
    now[0] += 0.1
    assert clock.current == 2
    saved = clock.to_json()
    now[0] += 120  # down for two epochs: they count after a restart with the same length
    again = EpochClock(1, 60.0, now=lambda: now[0])
    again.restore(saved)
    assert again.current == 4
    manual = EpochClock(1, None, now=lambda: now[0])
    manual.restore(saved)  # a manual clock resumes at the epoch the saved clock shows now
    assert manual.current == 4
    now[0] += 600
    assert manual.current == 4


def test_fault_specs_are_validated() -> None:
    with pytest.raises(ValueError, match="route"):
        FaultSpec(route="nowhere", kind=FaultKind.DELAY)
    with pytest.raises(ValueError, match="does not apply"):
        FaultSpec(route="store", kind=FaultKind.BITFLIP)
    with pytest.raises(ValueError, match="status"):
        FaultSpec(route="read", kind=FaultKind.STATUS)
    with pytest.raises(ValueError, match="status"):
        FaultSpec(route="read", kind=FaultKind.STATUS, status=200)
    with pytest.raises(ValueError, match="probability"):
        FaultSpec(route="read", kind=FaultKind.DELAY, probability=1.5)
    with pytest.raises(ValueError, match="unknown fault fields"):
        FaultSpec.from_json({"route": "read", "kind": "delay", "dealy": 1})
    with pytest.raises(ValueError, match="wrong type"):
        FaultSpec.from_json({"route": "read", "kind": "delay", "delay": "1"})
    with pytest.raises(ValueError, match="explode"):
        FaultSpec.from_json({"route": "read", "kind": "explode"})
    spec = FaultSpec.from_json({"route": "aggregator", "kind": "status", "status": 503})
    assert FaultSpec.from_json(spec.to_json()) == spec


def test_fault_book_counts_and_filters() -> None:
    book = FaultBook(seed=1)
    book.add(FaultSpec(route="read", kind=FaultKind.STATUS, status=503, count=2, prefix="a"))
    assert book.take("read", prefix=None, blob_id="x", size=1) is None
    assert book.take("read", prefix="a", blob_id="x", size=1) is not None
    assert book.take("read", prefix="a", blob_id="x", size=1) is not None
    assert book.take("read", prefix="a", blob_id="x", size=1) is None
    assert book.describe()[0]["fired"] == 2
    rule = book.add(FaultSpec(route="aggregator", kind=FaultKind.BITFLIP))
    assert book.take("byte_range", prefix=None, blob_id="x", size=1, has_blob=False) is None
    assert book.take("byte_range", prefix=None, blob_id="x", size=1, head=True) is None
    assert book.take("by_object_id", prefix=None, blob_id="x", size=1) is not None
    assert book.remove(rule) and not book.remove(rule)


def test_fake_blob_ids() -> None:
    data = b"hello walrus"
    blob_id = fake_blob_id(data)
    assert len(blob_id) == 43 and is_blob_id(blob_id)
    material = b"\x01" + len(data).to_bytes(8, "little") + hashlib.sha256(data).digest()
    expected = base64.urlsafe_b64encode(hashlib.blake2b(material, digest_size=32).digest())
    assert blob_id == expected.rstrip(b"=").decode()
    assert fake_blob_id(data) == blob_id != fake_blob_id(data + b"!")
    assert not is_blob_id(blob_id[:-1])
    assert not is_blob_id(blob_id[:-1] + "+")
    # The 43rd character carries 4 bits and 2 zero padding bits: a non-zero padding is refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    padded = alphabet[alphabet.index(blob_id[-1]) | 1]
    assert not is_blob_id(blob_id[:-1] + padded)
    obj = new_object_id()
    assert obj.startswith("0x") and len(obj) == 66 and obj != new_object_id()
    digest = new_tx_digest()
    assert 40 <= len(digest) <= 44 and not set(digest) & set("0OIl")
