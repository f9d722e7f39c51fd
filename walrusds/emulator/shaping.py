"""Applying the network profile (:mod:`walrusds.emulator.network`) to the emulator's traffic.

**Latency** is a sleep before an answer's headers go out (:meth:`Network.first_byte`, called from
the app's response-prepare hook), so it is the time to first byte of every answer, errors and
fault answers included; a ``delay`` fault sleeps in the handler, before that, so the two add up.

**Bandwidth** paces bodies in chunks (up to 64 KiB). Each chunk books time on two lines: its own
connection's (``connection_bandwidth``, one line per answer or upload) and the link's
(``bandwidth``, one line per direction shared by every connection). A line hands out time in the
order it is asked for — chunk *k* of a line ends ``size / rate`` after chunk *k-1* — so
transfers that compete for the link take turns chunk by chunk and share it fairly, and a
transfer waits (asleep) until the later of its two bookings ends before its chunk goes out.
Because a line remembers when it is next free rather than when the transfer woke, a timer that
fires late is caught up at the next chunk instead of slowing the transfer down; ``SLACK`` bounds
how much can be caught up, and so the burst an idle link allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from walrusds.emulator.network import NetworkProfile
from walrusds.emulator.sleeps import Sleeps

__all__ = ["CHUNK", "Direction", "Network", "PacedBody", "Transfer"]

#: Largest chunk a body is paced in: small enough that concurrent transfers interleave finely.
CHUNK = 64 * 1024
#: Longest a chunk may take at the slowest rate that applies, so a slow line still delivers
#: bytes steadily instead of in long-spaced 64 KiB bursts.
CHUNK_SECONDS = 0.02
#: How far behind "now" a line may book a chunk: absorbs timer oversleep (see module doc).
SLACK = 0.01


class Direction(StrEnum):
    """Which way a body crosses the network, as seen from the client."""

    #: Answers to the client (reads, the publisher's JSON).
    DOWN = "down"
    #: Request bodies from the client (uploads to the publisher).
    UP = "up"


class _Line:
    """A transmission line of ``rate`` bytes/s that hands out its time in the order asked."""

    def __init__(self, rate: float, free_at: float = 0.0) -> None:
        self.rate = rate
        #: Loop time at which the last booked chunk has crossed the line.
        self.free_at = free_at

    def book(self, size: int, earliest: float) -> float:
        """Book ``size`` bytes starting no earlier than ``earliest``; when they have crossed."""
        self.free_at = max(self.free_at, earliest) + size / self.rate
        return self.free_at


class Network:
    """The emulator's current profile, the link lines, and the latency sleeps."""

    def __init__(self, profile: NetworkProfile) -> None:
        self.profile = profile
        self._links = self._make_links(profile)
        self._latencies = Sleeps()
        self._stopped = False

    @staticmethod
    def _make_links(profile: NetworkProfile) -> dict[Direction, _Line]:
        if profile.bandwidth is None:
            return {}
        return {direction: _Line(profile.bandwidth) for direction in Direction}

    def set(self, profile: NetworkProfile) -> None:
        """Switch to ``profile``: for answers from now on, and the link cap for all at once."""
        if profile.bandwidth != self.profile.bandwidth:
            self._links = self._make_links(profile)
        self.profile = profile

    def link(self, direction: Direction) -> _Line | None:
        return None if self._stopped else self._links.get(direction)

    def stop(self) -> None:
        """Stop shaping (the emulator is shutting down): end latencies, send the rest at once."""
        self._stopped = True
        self._latencies.release()

    async def first_byte(self) -> None:
        """Sleep the profile's latency: before an answer's headers, or before a reset (the
        client learns of that, too, only once it has crossed the network)."""
        if self.profile.latency > 0 and not self._stopped:
            await self._latencies.sleep(self.profile.latency)

    def transfer(self, direction: Direction) -> Transfer | None:
        """A pacer for one body starting now; None when no bandwidth cap applies."""
        if self._stopped or not self.profile.shapes_bodies:
            return None
        return Transfer(self, direction, self.profile.connection_bandwidth)

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def deliver(self, data: bytes | memoryview,
                      write: Callable[[memoryview], Awaitable[Any]]) -> None:
        """Pass an answer's body to ``write`` at the network's pace (at once without a cap)."""
        transfer = self.transfer(Direction.DOWN)
        if transfer is None:
            await write(memoryview(data))
        else:
            await transfer.send(data, write)


class Transfer:
    """One body crossing the network one way: its own connection line plus the shared link."""

    def __init__(self, network: Network, direction: Direction,
                 connection_rate: float | None) -> None:
        self._network = network
        self._direction = direction
        self._loop = asyncio.get_running_loop()
        # A fresh connection line starts free now, so a transfer gets no head start.
        self._connection = (None if connection_rate is None
                            else _Line(connection_rate, self._loop.time()))
        rates = [r for r in (connection_rate, network.profile.bandwidth) if r is not None]
        slowest = min(rates, default=float(CHUNK) / CHUNK_SECONDS)
        self.chunk_size = max(1, min(CHUNK, int(slowest * CHUNK_SECONDS)))

    async def pace(self, size: int) -> None:
        """Return when ``size`` more bytes would have crossed the network."""
        if self._network.stopped:
            return
        now = self._loop.time()
        earliest = done = now - SLACK
        if self._connection is not None:
            done = self._connection.book(size, earliest)
        link = self._network.link(self._direction)
        if link is not None:
            done = max(done, link.book(size, earliest))
        if self._connection is not None:
            # A chunk held up by the link holds its connection just as long.
            self._connection.free_at = done
        if done > now:
            await asyncio.sleep(done - now)

    async def send(self, data: bytes | memoryview,
                   write: Callable[[memoryview], Awaitable[Any]]) -> None:
        """Pass ``data`` to ``write`` chunk by chunk, each when it would have crossed."""
        view = memoryview(data)
        for offset in range(0, len(view), self.chunk_size):
            piece = view[offset:offset + self.chunk_size]
            await self.pace(len(piece))
            await write(piece)


class PacedBody(Payload):
    """A response body sent at the network's pace (aiohttp writes it after the headers)."""

    def __init__(self, data: bytes, network: Network) -> None:
        super().__init__(data)
        self._data = data
        self._network = network
        self._size = len(data)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._data.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        # Paced from here, after the latency: the body's first byte follows the headers.
        await self._network.deliver(memoryview(self._data)[:content_length], writer.write)
