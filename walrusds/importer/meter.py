"""Showing how far the import is: blocks, bytes, rate and time left.

On a terminal the meter redraws one status line on stderr (at most ten times a second); when
stderr is a file or a pipe it logs a line every ``interval`` seconds instead, so a log keeps a
readable history; ``quiet`` shows nothing. The counts are of blocks *processed*: sent to the
service, or found there already, or (in a dry run) verified.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TextIO

log = logging.getLogger("walrusds.import")

REDRAW = 0.1


def human_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Meter:
    """Counts processed blocks and bytes and shows them; safe to call from any thread."""

    def __init__(self, total_blocks: int, *, stream: TextIO, mode: str,
                 interval: float = 10.0, verb: str = "imported") -> None:
        if mode not in ("tty", "log", "quiet"):
            raise ValueError(f"meter mode {mode!r}")
        self.total = total_blocks
        self.blocks = 0
        self.bytes = 0
        self.stream = stream
        self.mode = mode
        self.interval = interval
        self.verb = verb
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._shown = 0.0
        self._drawn = False
        self._logged = -1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def add(self, blocks: int, nbytes: int) -> None:
        """Count processed blocks and show the progress if it is time to."""
        with self._lock:
            self.blocks += blocks
            self.bytes += nbytes
            self._maybe_show()

    def line(self) -> str:
        elapsed = max(self.elapsed, 1e-6)
        share = f" ({100 * self.blocks / self.total:.1f}%)" if self.total else ""
        rate = self.blocks / elapsed
        left = ""
        if self.total and rate > 0 and self.blocks < self.total:
            left = f", {human_duration((self.total - self.blocks) / rate)} left"
        return (f"{self.verb} {self.blocks}/{self.total} blocks{share}, "
                f"{human_bytes(self.bytes)}, {human_bytes(self.bytes / elapsed)}/s, "
                f"{rate:.0f} blocks/s{left}")

    def _maybe_show(self) -> None:
        now = time.monotonic()
        if self.mode == "tty" and now - self._shown >= REDRAW:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self._shown, self._drawn = now, True
        elif self.mode == "log" and now - self._shown >= self.interval:
            if self._shown:  # the first interval starts at the first block
                self._log()
            self._shown = now

    def _log(self) -> None:
        log.info("%s", self.line())
        self._logged = self.blocks

    def finish(self) -> None:
        """Show the final counts and end the status line."""
        with self._lock:
            if self.mode == "tty":
                self.stream.write("\r" + self.line() + "\x1b[K\n")
                self.stream.flush()
                self._drawn = False
            elif self.mode == "log" and self._logged != self.blocks:
                self._log()

    def interrupt(self) -> None:
        """End a half-drawn status line before an error message is printed."""
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False
