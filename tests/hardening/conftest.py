"""Helpers for the hardening suite: a call's status and message, the whole state of a dataset
(to show a bad input changed nothing), a check that the server still serves, a service with
chosen limits, and a TCP proxy that cuts a connection after N bytes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import with_limits
from walrusds.config import Config
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb

#: What every seeded dataset holds before a bad input arrives (an empty value included).
SEED: tuple[tuple[bytes, bytes], ...] = ((b"/seed/a", b"alpha"), (b"/seed/b", b""),
                                         (b"/seed/c/\x00\xff", b"bytes \x00\xff"))
#: Words that betray a leaked implementation detail in a client-facing message.
LEAKS = ("Traceback", "psycopg", "SQLSTATE", "Exception", "Unexpected <class")


@dataclasses.dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str


async def outcome(call: Any) -> Outcome:
    """The status and message of a gRPC call, or of a coroutine that makes one and awaits it.

    A streaming call is not consumed: its status is read once it ended (or was cancelled)."""
    if isinstance(call, grpc.aio.Call):
        code = await call.code()
        return Outcome(code, await call.details() or "")
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(grpc.StatusCode.OK, "")


def assert_readable(details: str, *words: str) -> None:
    """A message a person understands: one line, names the problem, no internals."""
    assert details, "the status has no message"
    assert "\n" not in details, details
    for leak in LEAKS:
        assert leak not in details, details
    for word in words:
        assert word in details, f"{word!r} not in {details!r}"


async def snapshot(api: Any) -> list[tuple[bytes, bytes]]:
    """Every key and value of the dataset, in key order."""
    out: list[tuple[bytes, bytes]] = []
    async for resp in api.Query(pb.QueryRequest()):
        out.extend((bytes(e.key), bytes(e.value)) for e in resp.entries)
    return out


async def seed(api: Any) -> list[tuple[bytes, bytes]]:
    for key, value in SEED:
        await api.Put(pb.PutRequest(key=key, value=value))
    state = await snapshot(api)
    assert state == sorted(SEED)
    return state


async def assert_serving(api: Any) -> None:
    """The server still answers every kind of call; the dataset is left as it was."""
    before = await snapshot(api)
    await api.Put(pb.PutRequest(key=b"/probe", value=b"still serving"))
    assert (await api.Get(pb.GetRequest(key=b"/probe"))).value == b"still serving"
    assert (await api.Has(pb.HasRequest(key=b"/probe"))).exists
    assert (await api.Batch(_stream([pb.BatchRequest(delete=pb.BatchDelete(key=b"/probe"))]))
            ).applied == 1
    assert await snapshot(api) == before


async def _stream(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def stream(*items: Any) -> AsyncIterator[Any]:
    return _stream(list(items))


@dataclasses.dataclass
class Running:
    svc: Service
    channel: grpc.aio.Channel
    api: Any


@contextlib.asynccontextmanager
async def running(config: Config, *, max_message: int | None = None,
                  **limits: Any) -> AsyncIterator[Running]:
    """A service on ``config`` with ``limits`` changed, and a stub connected to it."""
    svc = await Service.start(with_limits(config, **limits) if limits else config)
    channel = (open_aio_channel(svc.address, max_message=max_message) if max_message
               else open_aio_channel(svc.address))
    try:
        yield Running(svc, channel, stub(channel))
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def settled(svc: Service, within: float = 10.0) -> None:
    """Wait until the service has no call in flight (a cancelled call's handler ended)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while svc.servicer.inflight:
        assert loop.time() < deadline, f"{svc.servicer.inflight} calls still in flight"
        await asyncio.sleep(0.02)


class CuttingProxy:
    """A loopback TCP proxy that resets a connection once ``cut_after`` bytes went from the
    client to the server (``None``: never), like a link that dies mid-message."""

    def __init__(self, upstream: str, cut_after: int | None) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host.strip("[]"), int(port))
        self.cut_after = cut_after
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every open connection now (both ends, as a dead link would)."""
        for writer, up_writer in self._links:
            if not writer.transport.is_closing():
                self.cuts += 1
            for w in (writer, up_writer):
                w.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._links.append((writer, up_writer))

        def reset() -> None:
            self.cuts += 1
            for w in (writer, up_writer):
                w.transport.abort()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       limit: int | None) -> None:
            sent = 0
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    if limit is not None and sent + len(data) > limit:
                        dst.write(data[:limit - sent])
                        await dst.drain()
                        reset()
                        return
                    sent += len(data)
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        for task in (asyncio.create_task(pump(reader, up_writer, self.cut_after)),
                     asyncio.create_task(pump(up_reader, writer, None))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


# -- certificates -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Certs:
    """Two private CAs; a server certificate for 127.0.0.1 and a client certificate from CA
    ``a``, and a client certificate from CA ``b`` (which the server does not trust)."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path
    other_client_key: Path


def _openssl(cwd: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _issue(cwd: Path, name: str, ca: str, ext: str) -> None:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(cwd, "req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr")
    (cwd / f"{name}.ext").write_text(ext + "\n")
    _openssl(cwd, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem")
    (cwd / f"{name}.key").chmod(0o600)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca-a", "ca-b"):
        _openssl(d, "req", "-x509", *ec, "-days", "2", "-subj", f"/CN=test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    _issue(d, "server", "ca-a", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    _issue(d, "client", "ca-a", "extendedKeyUsage=clientAuth")
    _issue(d, "other-client", "ca-b", "extendedKeyUsage=clientAuth")
    return Certs(d, d / "ca-a.pem", d / "server.pem", d / "server.key", d / "client.pem",
                 d / "client.key", d / "other-client.pem", d / "other-client.key")


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path
