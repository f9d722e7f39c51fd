"""The distant-network profile: how far away the emulated publisher and aggregator are.

Three numbers, all off by default (a loopback emulator answers in microseconds):

* ``latency`` — seconds added to the time to first byte of every publisher and aggregator answer;
* ``bandwidth`` — bytes/s of the whole link, shared by all connections, in each direction;
* ``connection_bandwidth`` — bytes/s of one connection (of one answer, as HTTP/1.1 carries one
  at a time), in each direction.

This module holds the values, their validation, their JSON form (the ``/_emulator/network``
route) and the parsing of the CLI's units (``100ms``, ``200MB/s``); :mod:`walrusds.emulator.shaping`
applies them to the traffic.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_LATENCY",
    "NetworkProfile",
    "format_bandwidth",
    "parse_bandwidth",
    "parse_latency",
]

#: A longer time to first byte is not a network but a hang: use a ``delay`` fault for that.
MAX_LATENCY = 60.0

_FIELDS = ("latency", "bandwidth", "connection_bandwidth")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class NetworkProfile:
    """Latency (s) and bandwidth caps (bytes/s, None: no cap). Validated on construction."""

    latency: float = 0.0
    bandwidth: float | None = None
    connection_bandwidth: float | None = None

    def __post_init__(self) -> None:
        latency = _number("latency", self.latency)
        if not 0.0 <= latency <= MAX_LATENCY:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY:g} s, not {latency:g}")
        object.__setattr__(self, "latency", latency)
        for name in ("bandwidth", "connection_bandwidth"):
            value = getattr(self, name)
            if value is None:
                continue
            rate = _number(name, value)
            if rate < 1.0:
                raise ValueError(f"{name} must be at least 1 byte/s, not {rate:g} (leave it "
                                 "unset, or null, for no cap)")
            object.__setattr__(self, name, rate)

    @property
    def shapes_bodies(self) -> bool:
        """True when a bandwidth cap applies, so bodies must be paced."""
        return self.bandwidth is not None or self.connection_bandwidth is not None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: Any) -> NetworkProfile:
        """This profile with the fields of the JSON object ``changes`` replaced (validated)."""
        if not isinstance(changes, dict):
            raise ValueError("the network profile is a JSON object")
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown network fields {sorted(unknown)}; "
                             f"known: {', '.join(_FIELDS)}")
        if changes.get("latency", 0) is None:
            raise ValueError("latency must be a number of seconds (0: none), not null")
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for humans: ``100 ms, link 200 MB/s, 50 MB/s per connection``."""
        parts = [f"{self.latency * 1000:g} ms"]
        if self.bandwidth is not None:
            parts.append(f"link {format_bandwidth(self.bandwidth)}")
        if self.connection_bandwidth is not None:
            parts.append(f"{format_bandwidth(self.connection_bandwidth)} per connection")
        return ", ".join(parts)


_LATENCY = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s)")
_BANDWIDTH = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]+)/s")
#: Decimal and binary byte units; ``KB`` is left out on purpose (it means either).
_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_latency(text: str) -> float:
    """``100ms`` or ``0.1s`` → seconds; ``0`` alone is accepted too."""
    text = text.strip()
    if text == "0":
        return 0.0
    match = _LATENCY.fullmatch(text)
    if match is None:
        raise ValueError(f"latency {text!r}: write a number with ms or s, e.g. 100ms or 0.1s")
    seconds = float(match["number"]) * (1e-3 if match["unit"] == "ms" else 1.0)
    NetworkProfile(latency=seconds)  # the same bounds as everywhere else
    return seconds


def parse_bandwidth(text: str) -> float:
    """``200MB/s`` (decimal: B, kB, MB, GB) or ``64MiB/s`` (binary: KiB, MiB, GiB) → bytes/s.

    Bits are refused, not guessed: ``Mb/s`` is eight times less than ``MB/s``.
    """
    text = text.strip()
    match = _BANDWIDTH.fullmatch(text)
    if match is None or match["unit"] not in _UNITS:
        raise ValueError(f"bandwidth {text!r}: write bytes per second with a unit, e.g. "
                         "200MB/s, 500kB/s, 1GB/s or 64MiB/s (bits are not accepted)")
    rate = float(match["number"]) * _UNITS[match["unit"]]
    NetworkProfile(bandwidth=rate)
    return rate


def format_bandwidth(rate: float) -> str:
    """``2e8`` → ``200 MB/s``, ``2**26`` → ``64 MiB/s``: the units the CLI takes."""
    decimal, binary = ("GB", "MB", "kB"), ("GiB", "MiB", "KiB")
    exact = [u for u in decimal + binary if rate >= _UNITS[u] and rate % _UNITS[u] == 0]
    unit = next(iter(exact), next((u for u in decimal if rate >= _UNITS[u]), "B"))
    return f"{rate / _UNITS[unit]:g} {unit}/s"
