"""Fixtures of the crash and fault suite: a private PostgreSQL cluster that tests may crash,
``walrusds serve`` processes, a fault proxy in front of Postgres, and the figures file.

The private cluster is a second pytest-postgresql server started through
tests/support/pg_ctl_unprivileged, like the suite's own; only tests that stop or crash
Postgres use it, so the rest of the suite never sees a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_postgresql import factories

from tests.support.pgproxy import FaultProxy
from tests.support.serve import Processes

SUPPORT = Path(__file__).parent.parent / "support"

chaos_postgresql_proc = factories.postgresql_proc(
    executable=str(SUPPORT / "pg_ctl_unprivileged"),
    host="127.0.0.1",
    port=None,
    postgres_options="-c fsync=off -c full_page_writes=off -c max_connections=300 "
    "-c shared_buffers=128MB",
)

CHAOS_DB = "walrusds_chaos"


def chaos_examples(default: int, share: float = 1.0) -> int:
    """How many random cases a chaos test runs: ``default`` in ``make test``; in ``make chaos``
    ``share`` of WALRUSDS_CHAOS_EXAMPLES (never fewer than ``default``)."""
    value = os.environ.get("WALRUSDS_CHAOS_EXAMPLES", "").strip()
    return max(default, round(int(value) * share)) if value else default


@dataclass
class PrivateCluster:
    """The private PostgreSQL server: DSNs, and a crash and restart through pg_ctl."""

    proc: Any

    @property
    def host(self) -> str:
        return str(self.proc.host)

    @property
    def port(self) -> int:
        return int(self.proc.port)

    def dsn(self, dbname: str = CHAOS_DB, port: int | None = None) -> str:
        return (f"host={self.host} port={port or self.port} user={self.proc.user} "
                f"dbname={dbname}")

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run([self.proc.executable, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=120, check=False)
        assert done.returncode == 0, f"pg_ctl {args[0]} failed: {done.stderr.decode()}"

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: no checkpoint, crash recovery at the next start."""
        self._pg_ctl("stop", "-D", self.proc.datadir, "-m", "immediate", "-w")

    def start(self) -> None:
        """Start again with the very command pytest-postgresql used (it waits until ready)."""
        done = subprocess.run(self.proc.command_parts, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                              check=False)
        assert done.returncode == 0, f"pg_ctl start failed: {done.stderr.decode()}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the private cluster did not come back"
                time.sleep(0.1)

    def running(self) -> bool:
        done = subprocess.run([self.proc.executable, "status", "-D", self.proc.datadir],
                              capture_output=True, timeout=60, check=False)
        return done.returncode == 0


@pytest.fixture(scope="session")
def private_cluster(_pg_reachable: None, chaos_postgresql_proc: Any) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(chaos_postgresql_proc)
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (CHAOS_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{CHAOS_DB}"')
    yield cluster
    if not cluster.running():  # a test failed between stop and start: let teardown stop it
        cluster.start()


@pytest.fixture
def private_schema(private_cluster: PrivateCluster) -> Iterator[str]:
    """A fresh schema on the private cluster, dropped afterwards (after a restart if need be)."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    yield name
    if not private_cluster.running():
        private_cluster.start()
    with psycopg.connect(private_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    """``walrusds serve`` processes started by the test, stopped by PID afterwards."""
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        await group.close()


@pytest.fixture
async def pg_proxy(postgresql_proc: Any) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the suite's PostgreSQL server."""
    proxy = FaultProxy(str(postgresql_proc.host), int(postgresql_proc.port), lifetime=600)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


class Figures:
    """Measured figures: printed, and appended as JSON lines to $WALRUSDS_CHAOS_FIGURES."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.path = os.environ.get("WALRUSDS_CHAOS_FIGURES", "")

    def record(self, name: str, value: Any, **detail: Any) -> None:
        line = {"test": self.test, "figure": name, "value": value, **detail}
        print(f"FIGURE {json.dumps(line)}")
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(line) + "\n")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.name)


async def in_thread(fn: Any, *args: Any) -> Any:
    """Run a blocking call (pg_ctl, a process wait) without stalling the event loop."""
    return await asyncio.to_thread(fn, *args)
