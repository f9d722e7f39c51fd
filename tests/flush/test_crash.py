"""Crash windows of the pack flush (DESIGN.md "Pack flush"; docs/design.md "Crash windows").

A real ``walrusds serve`` process flushes to the emulator and SIGKILLs itself at a failpoint:
after the claim, after the upload (the blob exists, its ID unrecorded), and before the commit
(the blob ID journaled). Then: every acknowledged key reads back byte-identical, no index row
points at a blob the emulator lacks, and a restarted server finishes the work. Two flushing
processes on one Postgres never pack an entry twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.pack import parse_pack
from walrusds.rpc import open_aio_channel, stub
from walrusds.v1 import datastore_pb2 as pb

WALRUSDS = [sys.executable, "-m", "walrusds"]


class ServeProcess:
    """``walrusds serve`` configured by the environment, flushing to the emulator."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str]) -> None:
        self.sock = tmp / f"{name}.sock"
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen([*WALRUSDS, "serve"],
                                     env={**env, "WALRUSDS_LISTEN": f"unix:{self.sock}"},
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.addr = f"unix:{self.sock}"

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if self.sock.exists():
                channel = open_aio_channel(self.addr)
                try:
                    await stub(channel).Info(pb.InfoRequest(), timeout=2)
                    return
                except grpc.aio.AioRpcError:
                    pass
                finally:
                    await channel.close()
            await asyncio.sleep(0.1)
        raise AssertionError(f"walrusds serve did not become ready: {self.log.read_text()}")

    async def exited(self, within: float = 60) -> int:
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, self.log.read_text()
            await asyncio.sleep(0.05)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def env(pg_dsn: str, schema: str, emulator: RunningEmulator) -> dict[str, str]:
    return {**os.environ,
            "WALRUSDS_POSTGRES_DSN": pg_dsn, "WALRUSDS_POSTGRES_SCHEMA": schema,
            "WALRUSDS_WALRUS_PUBLISHERS": emulator.url,
            "WALRUSDS_WALRUS_AGGREGATORS": emulator.url,
            "WALRUSDS_PACK_TARGET_SIZE": "16384", "WALRUSDS_PACK_IDLE": "0.3",
            "WALRUSDS_PACK_INTERVAL": "0.1", "WALRUSDS_PACK_LEASE": "1.5",
            "WALRUSDS_GRACE": "0.5"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for c in opened:
        await c.close()


async def start(servers: list[ServeProcess], channels: list[grpc.aio.Channel], tmp: Path,
                name: str, env: dict[str, str]) -> Any:
    server = ServeProcess(tmp, name, env)
    servers.append(server)
    await server.ready()
    channel = open_aio_channel(server.addr)
    channels.append(channel)
    return stub(channel)


def blocks(n: int, tag: str) -> dict[bytes, bytes]:
    return {f"/{tag}/{i:04d}".encode(): os.urandom(700 + i) for i in range(n)}


async def put_batch(api: Any, items: dict[bytes, bytes]) -> None:
    async def stream() -> Any:
        for k, v in items.items():
            yield pb.BatchRequest(put=pb.BatchPut(key=k, value=v))
    await api.Batch(stream())


async def read_all(api: Any, items: dict[bytes, bytes]) -> None:
    for key, value in items.items():
        assert bytes((await api.Get(pb.GetRequest(key=key))).value) == value, key


async def stored_blobs_exist(sql: Any, control: EmulatorControl) -> list[str]:
    blobs = [b for (b,) in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored'")]
    for blob_id in blobs:
        assert await control.blob(blob_id) is not None, f"indexed blob {blob_id} is missing"
    return blobs


async def settled(sql: Any, within: float = 60) -> None:
    """Wait until nothing is staged and no pack is being built."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        staged = sql("SELECT entries FROM {s}.staged_backlog")[0][0]
        building = sql("SELECT count(*) FROM {s}.packs WHERE state = 'building'")[0][0]
        if staged == 0 and building == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the flushers did not finish: "
                         f"{sql('SELECT id, state, lease_owner FROM {s}.packs')}")


async def keys_in_packs(sql: Any, emulator: RunningEmulator) -> list[bytes]:
    from walrusds.client import HttpBlobStore

    store = HttpBlobStore([], [emulator.url])
    keys: list[bytes] = []
    try:
        for (blob_id,) in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored'"):
            keys += [e.key for e in parse_pack(await store.read_blob(blob_id))]
    finally:
        await store.aclose()
    return keys


@pytest.mark.parametrize("failpoint", ["flush_after_claim", "flush_after_upload",
                                       "flush_before_commit"])
async def test_a_crash_in_the_flush_loses_nothing(
        failpoint: str, env: dict[str, str], tmp_path: Path, servers: list[ServeProcess],
        channels: list[grpc.aio.Channel], sql: Any, control: EmulatorControl,
        emulator: RunningEmulator) -> None:
    items = blocks(40, failpoint)
    api = await start(servers, channels, tmp_path, "crashing",
                      {**env, "WALRUSDS_FAILPOINTS": failpoint})
    await put_batch(api, items)  # acknowledged: durable from here on
    assert await servers[0].exited() == -signal.SIGKILL
    stores = (await control.counters())["routes"].get("store", 0)
    assert stores == (0 if failpoint == "flush_after_claim" else 1)
    building = sql("SELECT blob_id IS NOT NULL FROM {s}.packs WHERE state = 'building'")
    assert building == [(failpoint == "flush_before_commit",)]
    assert await stored_blobs_exist(sql, control) == []

    api = await start(servers, channels, tmp_path, "restarted", env)
    await read_all(api, items)  # while the stale pack waits for its lease to run out
    await settled(sql)
    blobs = await stored_blobs_exist(sql, control)
    assert blobs
    await read_all(api, items)
    assert sorted(await keys_in_packs(sql, emulator)) == sorted(items)
    if failpoint != "flush_after_claim":
        # the resumed pack rebuilt the same bytes: the same blob as the lost upload
        assert (await control.counters())["routes"]["store"] >= 2
        assert len(set(blobs)) == len(blobs)


async def test_two_flushing_processes_never_pack_an_entry_twice(
        env: dict[str, str], tmp_path: Path, servers: list[ServeProcess],
        channels: list[grpc.aio.Channel], sql: Any, control: EmulatorControl,
        emulator: RunningEmulator) -> None:
    fast = {**env, "WALRUSDS_PACK_IDLE": "0.05", "WALRUSDS_PACK_INTERVAL": "0.02"}
    one = await start(servers, channels, tmp_path, "one", fast)
    two = await start(servers, channels, tmp_path, "two", fast)
    written: dict[bytes, bytes] = {}
    for round_ in range(6):
        a, b = blocks(60, f"a{round_}"), blocks(60, f"b{round_}")
        await asyncio.gather(put_batch(one, a), put_batch(two, b))
        written |= a | b
    await settled(sql)
    assert sql("SELECT count(*) FROM {s}.packs WHERE lease_owner IS NOT NULL") == [(0,)]
    for server in servers:  # both processes flushed packs
        assert "stored as blob" in server.log.read_text()
    keys = await keys_in_packs(sql, emulator)
    assert len(keys) == len(set(keys)), "an entry was packed twice"
    assert sorted(keys) == sorted(written)
    await stored_blobs_exist(sql, control)
    await read_all(two, written)
