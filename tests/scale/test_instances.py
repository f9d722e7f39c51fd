"""Several service instances on one Postgres (docs/scaling.md, "Several service instances").

Two ``walrusds serve`` processes share the suite's PostgreSQL and one schema. Writes through
one are read through the other at once, interleaved from many tasks; then the Go shim, given
both addresses, balances its calls over them (shim/walrusds/instances_test.go).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.kubo.support import SHIM, go_binary, go_env
from tests.scale.serve import ServeProcess
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key


async def served_calls(node: ServeProcess) -> float:
    return sum(v for k, v in (await node.metrics()).items()
               if k.startswith("walrusds_rpc_requests_total{"))


async def interleave(apis: list[Any], worker: int, rounds: int) -> None:
    """Write through one instance, read through the other; overwrite and delete likewise."""
    for i in range(rounds):
        one, other = apis[(worker + i) % 2], apis[(worker + i + 1) % 2]
        block = os.urandom(200 + i)
        key = block_key(block)
        await one.Put(pb.PutRequest(key=key, value=block))
        assert bytes((await other.Get(pb.GetRequest(key=key))).value) == block
        assert (await other.Has(pb.HasRequest(key=key))).exists
        assert (await one.GetSize(pb.GetSizeRequest(key=key))).size == len(block)
        mutable = f"/local/instances/{worker}/{i}".encode()
        await one.Put(pb.PutRequest(key=mutable, value=b"first"))
        await other.Put(pb.PutRequest(key=mutable, value=b"second"))
        assert bytes((await one.Get(pb.GetRequest(key=mutable))).value) == b"second"
        await other.Delete(pb.DeleteRequest(key=key))
        assert not (await one.Has(pb.HasRequest(key=key))).exists
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await one.Get(pb.GetRequest(key=key))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.timeout(300)  # a cold Go build cache compiles the shim's test binary first
async def test_two_instances_on_one_postgres(pg_dsn: str, schema: str, tmp_path: Path,
                                             servers: list[ServeProcess]) -> None:
    env = {"WALRUSDS_POSTGRES_DSN": pg_dsn, "WALRUSDS_POSTGRES_SCHEMA": schema}
    nodes = [ServeProcess(tmp_path, name, env, metrics=True) for name in ("one", "two")]
    servers.extend(nodes)
    apis = [await node.ready() for node in nodes]

    await asyncio.gather(*(interleave(apis, w, 15) for w in range(8)))

    async def stream() -> Any:
        for i in range(300):
            yield pb.BatchRequest(put=pb.BatchPut(key=f"/batch/{i:04d}".encode(), value=b"v"))

    await apis[0].Batch(stream())
    listed = [bytes(e.key) async for r in apis[1].Query(pb.QueryRequest(prefix=b"/batch",
                                                                         keys_only=True))
              for e in r.entries]
    assert listed == [f"/batch/{i:04d}".encode() for i in range(300)]

    before = [await served_calls(node) for node in nodes]
    addrs = ",".join(node.addr for node in nodes)
    result = await asyncio.to_thread(
        subprocess.run, [go_binary(), "test", "-count=1", "-run", "^TestSeveralInstances$",
                         "./walrusds/"],
        cwd=SHIM, env=go_env(WALRUSDS_TEST_ADDRS=addrs), capture_output=True, text=True,
        timeout=280, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  \tgithub.com/walrusds/walrusds/shim/walrusds" in result.stdout, result.stdout
    after = [await served_calls(node) for node in nodes]
    for node, b, a in zip(nodes, before, after, strict=True):
        assert a - b >= 100, f"instance {node.addr} served {a - b} of the shim's calls"
