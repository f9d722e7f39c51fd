"""``walrusds serve`` as a real process for crash tests: start, wait for SERVING, SIGKILL,
restart, stop. Every process is tracked by PID in a :class:`Processes` group, which the test's
fixture stops in its teardown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from walrusds.rpc import open_aio_channel, stub

WALRUSDS = [sys.executable, "-m", "walrusds"]
SERVING = health_pb2.HealthCheckResponse.SERVING


def serve_env(dsn: str, schema: str, emulator_url: str | None = None,
              **extra: str) -> dict[str, str]:
    """The environment of a test server: Postgres, optionally the emulator, no metrics port
    (several servers run at once), short leases and a short grace."""
    env = {**os.environ,
           "WALRUSDS_POSTGRES_DSN": dsn, "WALRUSDS_POSTGRES_SCHEMA": schema,
           "WALRUSDS_METRICS_LISTEN": "", "WALRUSDS_GRACE": "0.5",
           "WALRUSDS_RENEW_ENABLED": "0"}
    if emulator_url is not None:
        env |= {"WALRUSDS_WALRUS_PUBLISHERS": emulator_url,
                "WALRUSDS_WALRUS_AGGREGATORS": emulator_url,
                "WALRUSDS_WALRUS_EPOCHS": "3", "WALRUSDS_WALRUS_DEADLINE": "20",
                "WALRUSDS_PACK_TARGET_SIZE": str(64 * 1024), "WALRUSDS_PACK_IDLE": "0.3",
                "WALRUSDS_PACK_INTERVAL": "0.1", "WALRUSDS_PACK_LEASE": "2"}
    env.pop("WALRUSDS_FAILPOINTS", None)
    env.pop("WALRUSDS_CONFIG", None)
    return env | extra


class ServeProcess:
    """One ``walrusds serve`` lineage: the same socket and environment across restarts."""

    def __init__(self, tmp: Path, name: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.sock = tmp / f"{name}.sock"
        self.log = tmp / f"{name}.log"
        self.addr = f"unix:{self.sock}"
        self.env = {**env, "WALRUSDS_LISTEN": self.addr}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.generation = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running(), f"{self.name} is already running"
        self.generation += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.generation} ---\n".encode())
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen([*WALRUSDS, "serve"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    async def wait_serving(self, within: float = 90.0) -> float:
        """Seconds from :meth:`start` until health answers SERVING."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: "
                                     f"{self.tail()}")
            if self.sock.exists() and await self.health(wait=2) == SERVING:
                return time.monotonic() - self.started_at
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} did not become SERVING: {self.tail()}")

    async def health(self, wait: float = 5.0) -> int | None:
        """The health status, or None when the server does not answer."""
        channel = open_aio_channel(self.addr)
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=wait)
            return int(reply.status)
        except grpc.aio.AioRpcError:
            return None
        finally:
            await channel.close()

    def kill(self) -> None:
        """SIGKILL by PID and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM by PID, SIGKILL if it does not exit in time; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Processes:
    """The servers and channels a test started; :meth:`close` stops them all by PID."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[ServeProcess] = []
        self.channels: list[grpc.aio.Channel] = []

    async def serve(self, name: str, env: Mapping[str, str]) -> ServeProcess:
        server = ServeProcess(self.tmp, name, env)
        self.servers.append(server)
        server.start()
        await server.wait_serving()
        return server

    def api(self, server: ServeProcess) -> Any:
        channel = open_aio_channel(server.addr)
        self.channels.append(channel)
        return stub(channel)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        for server in self.servers:
            server.stop()
