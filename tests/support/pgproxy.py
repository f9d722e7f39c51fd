"""A TCP fault proxy for tests: put it between walrusds and PostgreSQL and break the link.

::

    async with FaultProxy("127.0.0.1", pg_port) as proxy:
        dsn = f"host=127.0.0.1 port={proxy.port} ..."
        ...
        proxy.set(Mode.BLACKHOLE)   # nothing gets through, nobody is told
        proxy.set(Mode.PASS)        # held bytes flow again, as after a healed partition

Modes (switchable at any time; a change applies to open connections at once):

- ``PASS``: bytes flow both ways.
- ``BLACKHOLE``: nothing is forwarded and nothing is refused: new connections are accepted but
  not connected upstream, bytes on open connections are held (the proxy stops reading, so the
  kernel buffers fill as they would behind a dead router). Back to ``PASS``, held bytes flow on,
  as TCP would retransmit them once a partition heals.
- ``RESET``: every open connection is reset (RST, not FIN) in both directions, and every new
  one is reset as soon as it is accepted.
- ``CUT``: each connection forwards ``after_bytes`` more bytes (both directions together,
  counted from the moment the mode was set or the connection opened), then is reset.
- ``DELAY``: every chunk waits ``delay`` seconds before it is forwarded (latency, in order).

The proxy listens on loopback only, and stops by itself after ``lifetime`` seconds (a test that
forgets it cannot leave it running). ``stats`` counts connections and forwarded bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

__all__ = ["FaultProxy", "Mode", "ProxyStats"]

CHUNK = 64 * 1024


class Mode(StrEnum):
    PASS = "pass"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    CUT = "cut"
    DELAY = "delay"


@dataclass
class ProxyStats:
    accepted: int = 0
    upstream_connects: int = 0
    resets: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: a client side, an upstream side, two pumps."""

    def __init__(self, proxy: FaultProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.budget: int | None = proxy.after_bytes if proxy.mode is Mode.CUT else None
        self.done = asyncio.Event()

    def reset(self) -> None:
        self.proxy.stats.resets += 1
        _reset(self.client[1])
        _reset(self.upstream[1] if self.upstream else None)
        self.done.set()

    async def run(self) -> None:
        try:
            await self.proxy.gate()
            if self.proxy.mode is Mode.RESET:
                self.reset()
                return
            self.upstream = await asyncio.open_connection(self.proxy.upstream_host,
                                                          self.proxy.upstream_port)
            self.proxy.stats.upstream_connects += 1
            pumps = [asyncio.create_task(self._pump(self.client[0], self.upstream[1], True)),
                     asyncio.create_task(self._pump(self.upstream[0], self.client[1], False))]
            try:
                await self.done.wait()
            finally:
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            self.reset()
        finally:
            for w in (self.client[1], self.upstream[1] if self.upstream else None):
                if w is not None and not w.transport.is_closing():
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    up: bool) -> None:
        try:
            while True:
                await self.proxy.gate()
                data = await src.read(CHUNK)
                if not data:
                    # A FIN: pass it on, and end the link once the other side is done too.
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    self.done.set()
                    return
                await self.proxy.gate()  # bytes read just before a black hole are held too
                mode = self.proxy.mode
                if mode is Mode.RESET:
                    self.reset()
                    return
                if mode is Mode.DELAY and self.proxy.delay > 0:
                    await asyncio.sleep(self.proxy.delay)
                if self.budget is not None:
                    if len(data) >= self.budget:
                        data, cut = data[:self.budget], True
                    else:
                        cut = False
                    self.budget -= len(data)
                    if data:
                        dst.write(data)
                        await dst.drain()
                    self._count(up, len(data))
                    if cut:
                        self.reset()
                        return
                    continue
                dst.write(data)
                await dst.drain()
                self._count(up, len(data))
        except (OSError, asyncio.IncompleteReadError):
            self.reset()

    def _count(self, up: bool, n: int) -> None:
        if up:
            self.proxy.stats.bytes_up += n
        else:
            self.proxy.stats.bytes_down += n


class FaultProxy:
    """A loopback TCP proxy to ``upstream_host:upstream_port`` with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1",
                 port: int = 0, lifetime: float = 900.0) -> None:
        for h in (host, upstream_host):
            if not _is_loopback(h):
                raise ValueError(f"the fault proxy only runs on loopback, not {h!r}")
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.host, self.port = host, port
        self.lifetime = lifetime
        self.mode = Mode.PASS
        self.after_bytes = 0
        self.delay = 0.0
        self.stats = ProxyStats()
        self._open = asyncio.Event()
        self._open.set()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopper: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.lifetime, self._expire)
        return self

    def _expire(self) -> None:
        self._stopper = asyncio.get_running_loop().create_task(self.stop())

    def set(self, mode: Mode | str, *, after_bytes: int = 0, delay: float = 0.0) -> None:
        """Switch the fault; open connections follow at once."""
        mode = Mode(mode)
        if mode is Mode.CUT and after_bytes < 0:
            raise ValueError("after_bytes must not be negative")
        if mode is Mode.DELAY and delay < 0:
            raise ValueError("delay must not be negative")
        self.mode, self.after_bytes, self.delay = mode, after_bytes, delay
        for link in list(self._links):
            link.budget = after_bytes if mode is Mode.CUT else None
            if mode is Mode.RESET:
                link.reset()
        if mode is Mode.BLACKHOLE:
            self._open.clear()
        else:
            self._open.set()

    async def gate(self) -> None:
        """Wait while the link is black-holed."""
        await self._open.wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self.mode is Mode.RESET:
            self.stats.resets += 1
            _reset(writer)
            return
        link = _Link(self, reader, writer)
        self._links.add(link)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await link.run()
        finally:
            self._links.discard(link)
            if task is not None:
                self._tasks.discard(task)

    async def stop(self) -> None:
        """Stop listening and reset every connection (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._open.set()
        for link in list(self._links):
            link.reset()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
