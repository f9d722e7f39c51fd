"""The audit's pure parts: the verdict rules, the progress line, the sample size, chunking."""

from __future__ import annotations

import hashlib
import io

import pytest

from walrusds.audit.classify import Finding, Verdict, expiry_note, value_problem
from walrusds.audit.progress import Progress
from walrusds.audit.sample import sample_percent
from walrusds.audit.verifier import _by_bytes
from walrusds.index.entries import Located
from walrusds.keys import show_key
from walrusds.reader import _intact
from walrusds.verify import block_key

SHA3_256 = 0x16


def entry(key: bytes, value: bytes, *, digest: bytes | None = None,
          size: int | None = None) -> Located:
    return Located(key, len(value) if size is None else size,
                   hashlib.sha256(value).digest() if digest is None else digest, None, 1, 0,
                   "B" * 43, "stored", 10)


CASES = {
    "plain key, intact": (entry(b"/plain", b"abc"), b"abc"),
    "plain key, flipped byte": (entry(b"/plain", b"abc"), b"abd"),
    "short read": (entry(b"/plain", b"abc"), b"ab"),
    "empty value": (entry(b"/empty", b""), b""),
    "sha2 block key, intact": (entry(block_key(b"blk"), b"blk"), b"blk"),
    "sha2 block key, digest of other bytes": (
        entry(block_key(b"blk"), b"other"), b"other"),
    "sha3 block key, intact": (entry(block_key(b"blk", SHA3_256), b"blk"), b"blk"),
    "sha3 block key, wrong bytes with their own digest": (
        entry(block_key(b"blk", SHA3_256), b"bad"), b"bad"),
    "index digest wrong length": (entry(b"/x", b"v", digest=b"\0" * 31), b"v"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_problem_agrees_with_the_read_path(name: str) -> None:
    e, value = CASES[name]
    assert (value_problem(e, value) is None) == _intact(e, value)


def test_value_problem_says_which_check_failed() -> None:
    assert "bytes where the index says 3" in str(value_problem(*CASES["short read"]))
    assert "SHA-256" in str(value_problem(*CASES["plain key, flipped byte"]))
    assert "sha3-256 multihash" in str(
        value_problem(*CASES["sha3 block key, wrong bytes with their own digest"]))
    assert "sha2-256 multihash" in str(
        value_problem(*CASES["sha2 block key, digest of other bytes"]))


def test_expiry_note() -> None:
    assert expiry_note(20, 10, 2) is None
    assert expiry_note(12, 10, 2) == "blob ends at epoch 12, 2 epochs from the current 10"
    assert expiry_note(11, 10, 2) == "blob ends at epoch 11, 1 epoch from the current 10"
    assert "reached" in str(expiry_note(10, 10, 2))
    assert "reached" in str(expiry_note(9, 10, 0))
    assert expiry_note(11, 10, 0) is None
    assert expiry_note(None, 10, 2) is None
    assert expiry_note(11, None, 2) is None


def test_finding_lines() -> None:
    key = b"/k\x00ey"
    line = Finding.of(entry(key, b"v"), Verdict.CORRUPT, "bad bytes").line()
    assert line == f"CORRUPT  {show_key(key)}  blob {'B' * 43} offset 0 (pack 1): bad bytes"
    staged = Located(b"/s", 1, b"d" * 32, b"v")
    assert Finding.of(staged, Verdict.CORRUPT, "staged value: x").line() == (
        "CORRUPT  '/s'  staged value: x")
    orphan = Finding(Verdict.ORPHAN, "paid", None, "C" * 43, 7)
    assert orphan.line() == f"ORPHAN   -  blob {'C' * 43} (pack 7): paid"
    assert orphan.as_json()["key"] is None


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only() -> None:
    pipe = io.StringIO()
    quiet = Progress.on_terminal(label="verify", total=10, stream=pipe)
    quiet.advance(5, 1)
    quiet.close()
    assert pipe.getvalue() == ""
    assert quiet.render() == "verify: [############............]  50% 5/10 entries, 1 problem"

    now = [0.0]
    tty = FakeTerminal()
    bar = Progress(tty, label="verify", total=4, interval=1.0, clock=lambda: now[0])
    bar.advance(1)
    bar.advance(1)  # within the interval: not drawn
    now[0] = 2.0
    bar.advance(2, 3)
    drawn = tty.getvalue().split("\r")[1:]
    assert drawn[0].startswith("verify: [######") and "1/4 entries, 0 problems" in drawn[0]
    assert drawn[1].startswith("verify: [########################] 100% 4/4 entries, "
                               "3 problems")
    bar.close()
    assert tty.getvalue().endswith("\r" + " " * len(drawn[1]) + "\r")
    assert Progress(None, label="x").render() == "x: 0 entries, 0 problems"


def test_sample_percent() -> None:
    assert sample_percent(1000, None) == 100.0
    assert sample_percent(1000, 0) == 100.0
    assert sample_percent(1000, 1500) == 100.0
    assert sample_percent(1000, 1_000_000) == pytest.approx(0.2)


def test_staged_chunks_are_bounded_by_bytes() -> None:
    refs = [(b"/a", 400), (b"/b", 400), (b"/c", 5000), (b"/d", 10), (b"/e", 10)]
    assert list(_by_bytes(refs, 1000)) == [[b"/a", b"/b"], [b"/c"], [b"/d", b"/e"]]
    assert list(_by_bytes([], 1000)) == []
