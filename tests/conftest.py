"""Shared fixtures: a real PostgreSQL started by pytest-postgresql, a fresh schema per test, and
an in-process walrusds gRPC service with a client stub.

PostgreSQL refuses to run as root; when the suite runs as root (CI does), pytest-postgresql's
pg_ctl is tests/support/pg_ctl_unprivileged, which runs the real pg_ctl as the unprivileged
``postgres`` user. Test clusters run with ``fsync=off``: commits still wait for WAL to reach
the OS (``synchronous_commit=on``), so a killed server or ``pg_ctl stop -m immediate`` loses
nothing; only an OS crash could.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_postgresql import factories

from walrusds.config import Config, LimitsConfig, MetricsConfig, PostgresConfig
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator, start_emulator
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service

SUPPORT = Path(__file__).parent / "support"
TEST_DB = "walrusds_test"

postgresql_proc = factories.postgresql_proc(
    executable=str(SUPPORT / "pg_ctl_unprivileged"),
    host="127.0.0.1",
    port=None,
    postgres_options="-c fsync=off -c full_page_writes=off -c max_connections=400 "
    "-c shared_buffers=256MB",
)


@pytest.fixture(scope="session")
def _pg_reachable(tmp_path_factory: pytest.TempPathFactory) -> None:
    """As root, let the unprivileged cluster user traverse pytest's temporary directories."""
    if os.geteuid() != 0:
        return
    base = tmp_path_factory.getbasetemp()
    for path in (base, base.parent):
        os.chmod(path, os.stat(path).st_mode | 0o711)


@pytest.fixture(scope="session")
def pg_dsn(_pg_reachable: None, postgresql_proc: Any) -> str:
    """DSN of a database on the suite's PostgreSQL server."""
    proc = postgresql_proc
    admin = f"host={proc.host} port={proc.port} user={proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (TEST_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    return f"host={proc.host} port={proc.port} user={proc.user} dbname={TEST_DB}"


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty schema name for this test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def config(pg_dsn: str, schema: str) -> Config:
    return Config(
        listen="127.0.0.1:0",
        grace=1.0,
        postgres=PostgresConfig(dsn=pg_dsn, schema=schema, pool_min=1, pool_max=8),
        limits=LimitsConfig(),
        # Tests that want the Prometheus endpoint pick a free port; the default port may be
        # in use by a concurrent run (or an operator's walrusds).
        metrics=MetricsConfig(listen=""),
    )


def with_limits(config: Config, **limits: Any) -> Config:
    return dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limits))


@pytest.fixture
async def service(config: Config) -> AsyncIterator[Service]:
    svc = await Service.start(config)
    try:
        yield svc
    finally:
        await svc.stop(grace=0.5)


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Any]:
    """An async gRPC stub connected to the in-process service."""
    channel = open_aio_channel(service.address)
    try:
        yield stub(channel)
    finally:
        await channel.close()


# -- Walrus: an emulator on loopback, its control client, SQL on the test's schema -----------

@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(EmulatorConfig(seed=3, max_body_size=64 << 20))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def control(emulator: RunningEmulator) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator.url) as ctl:
        yield ctl


@pytest.fixture
def sql(pg_dsn: str, schema: str) -> Iterator[Any]:
    """``sql(query, *params)`` → rows, on the test's schema (``{s}`` in the query)."""
    conn = psycopg.connect(pg_dsn, autocommit=True)

    def run(query: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = conn.execute(query.replace("{s}", f'"{schema}"'), params)
        return cur.fetchall() if cur.description else []

    yield run
    conn.close()
