"""The emulator's epoch clock: a manual counter, or wall-clock epochs of a configured length.

Walrus exposes no epoch over HTTP; clients learn it from store responses (notes §6). Tests drive
the clock through the control surface (advance or set); benchmarks and ``walrusds up`` may let it
tick with the wall clock (``epoch_seconds``: 86 400 is Testnet-like, 1 209 600 Mainnet-like).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_EPOCHS_AHEAD", "EpochClock"]

#: Walrus refuses stores more than 53 epochs ahead, on Mainnet and Testnet alike.
MAX_EPOCHS_AHEAD = 53


class EpochClock:
    """Current epoch = ``base`` + whole epochs elapsed since ``base_time`` (wall-clock mode only).

    In manual mode (``epoch_seconds`` is None) the epoch changes only through :meth:`advance` and
    :meth:`set`. Setting or advancing in wall-clock mode restarts the current epoch at "now".
    """

    def __init__(self, start: int = 1, epoch_seconds: float | None = None,
                 now: Callable[[], float] = time.time) -> None:
        if start < 0:
            raise ValueError("the epoch must not be negative")
        if epoch_seconds is not None and epoch_seconds <= 0:
            raise ValueError("epoch_seconds must be positive")
        self._now = now
        self.epoch_seconds = epoch_seconds
        self._base = start
        self._base_time = now()

    @property
    def current(self) -> int:
        if self.epoch_seconds is None:
            return self._base
        elapsed = max(0.0, self._now() - self._base_time)
        return self._base + int(elapsed // self.epoch_seconds)

    def advance(self, epochs: int = 1) -> int:
        if epochs < 0:
            raise ValueError("epochs cannot go backwards")
        return self.set(self.current + epochs)

    def set(self, epoch: int) -> int:
        if epoch < 0:
            raise ValueError("the epoch must not be negative")
        self._base = epoch
        self._base_time = self._now()
        return epoch

    def to_json(self) -> dict[str, Any]:
        return {"base": self._base, "base_time": self._base_time,
                "epoch_seconds": self.epoch_seconds}

    def restore(self, saved: dict[str, Any]) -> None:
        """Resume a saved clock.

        If the saved clock ticked with the same epoch length, it keeps ticking from where it was
        (epochs that passed while the emulator was down count); otherwise the clock resumes at
        the epoch the saved clock shows now.
        """
        seconds = saved.get("epoch_seconds")
        base, base_time = int(saved["base"]), float(saved["base_time"])
        if seconds is not None and seconds == self.epoch_seconds:
            self._base, self._base_time = base, base_time
            return
        epoch = base
        if seconds:
            epoch += int(max(0.0, self._now() - base_time) // float(seconds))
        self.set(epoch)
