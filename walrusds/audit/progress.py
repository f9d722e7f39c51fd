"""A one-line progress bar for long audits, on a terminal only.

Written to stderr with a carriage return, at most a few times a second, so stdout stays clean
for the report (and ``--json``); when stderr is not a terminal (a pipe, a log file, cron) it
prints nothing at all. No dependency: a full ``verify`` on a large dataset takes hours, and a
line that says how far it got is all an operator needs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]

WIDTH = 24


class Progress:
    def __init__(self, stream: TextIO | None, *, label: str, total: int | None = None,
                 interval: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        """``stream`` None disables the bar (see :meth:`on_terminal`)."""
        self.stream = stream
        self.label = label
        self.total = total
        self.done = 0
        self.problems = 0
        self._interval = interval
        self._clock = clock
        self._last = -interval
        self._drawn = 0

    @classmethod
    def on_terminal(cls, *, label: str, total: int | None = None,
                    stream: TextIO | None = None) -> Progress:
        """A bar on ``stream`` (stderr by default) if it is a terminal, else a silent one."""
        stream = sys.stderr if stream is None else stream
        return cls(stream if stream.isatty() else None, label=label, total=total)

    def advance(self, entries: int, problems: int = 0) -> None:
        self.done += entries
        self.problems += problems
        now = self._clock()
        if self.stream is not None and now - self._last >= self._interval:
            self._last = now
            self._draw()

    def render(self) -> str:
        """The current line, without the carriage return."""
        issues = f", {self.problems} problem{'s' if self.problems != 1 else ''}"
        if not self.total:
            return f"{self.label}: {self.done} entries{issues}"
        shown = min(self.done, self.total)
        filled = WIDTH * shown // self.total
        pct = 100 * shown // self.total
        return (f"{self.label}: [{'#' * filled}{'.' * (WIDTH - filled)}] {pct:3d}% "
                f"{self.done}/{self.total} entries{issues}")

    def close(self) -> None:
        """Erase the line, so the report starts on a clean one."""
        if self.stream is not None and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def _draw(self) -> None:
        assert self.stream is not None
        line = self.render()
        pad = max(0, self._drawn - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._drawn = len(line)
