"""``walrusds serve`` processes for the scale tests: configured by the environment, on a Unix
socket in the test's directory, stopped by their PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from walrusds.localpg import free_port
from walrusds.rpc import open_aio_channel, stub
from walrusds.v1 import datastore_pb2 as pb


class ServeProcess:
    def __init__(self, tmp: Path, name: str, env: dict[str, str], *, metrics: bool = False
                 ) -> None:
        self.sock = tmp / f"{name}.sock"
        self.log = tmp / f"{name}.log"
        self.metrics_port = free_port() if metrics else 0
        env = {**os.environ, **env, "WALRUSDS_LISTEN": f"unix:{self.sock}",
               "WALRUSDS_GRACE": "0.5",
               "WALRUSDS_METRICS_LISTEN": (f"127.0.0.1:{self.metrics_port}" if metrics
                                           else "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "walrusds", "serve"], env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.addr = f"unix:{self.sock}"
        self.channel: grpc.aio.Channel | None = None

    async def ready(self) -> Any:
        """Wait until the service answers Info; return a stub on its own channel."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if self.sock.exists():
                channel = open_aio_channel(self.addr)
                try:
                    await stub(channel).Info(pb.InfoRequest(), timeout=2)
                except grpc.aio.AioRpcError:
                    await channel.close()
                else:
                    self.channel = channel
                    return stub(channel)
            await asyncio.sleep(0.05)
        raise AssertionError(f"walrusds serve did not become ready: {self.log.read_text()}")

    async def metrics(self) -> dict[str, float]:
        """Every sample of the Prometheus endpoint: ``name{label="v",...}`` → value."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                     timeout=5)).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
