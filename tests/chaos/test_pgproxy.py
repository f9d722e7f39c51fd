"""The fault proxy itself, against the suite's PostgreSQL through psycopg: each mode does what
its name says, modes switch on open connections, and the proxy stays on loopback and stops by
itself."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from tests.support.pgproxy import FaultProxy, Mode


def via(pg_dsn: str, proxy: FaultProxy) -> str:
    return pg_dsn.replace(f"port={proxy.upstream_port}", f"port={proxy.port}")


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=2)


async def one(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT 1")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_pass_forwards_and_counts(pg_dsn: str, pg_proxy: FaultProxy) -> None:
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        assert await one(conn) == 1
    assert pg_proxy.stats.accepted == pg_proxy.stats.upstream_connects == 1
    assert pg_proxy.stats.bytes_up > 0
    assert pg_proxy.stats.bytes_down > 0


async def test_black_hole_holds_bytes_until_the_link_heals(pg_dsn: str,
                                                           pg_proxy: FaultProxy) -> None:
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        pg_proxy.set(Mode.BLACKHOLE)
        query = asyncio.create_task(one(conn))
        done, _ = await asyncio.wait([query], timeout=1.0)
        assert not done  # no answer, and no error either
        with pytest.raises(psycopg.OperationalError):  # new connections get nowhere
            await connect(via(pg_dsn, pg_proxy))
        pg_proxy.set(Mode.PASS)
        assert await asyncio.wait_for(query, 10) == 1  # the held query went through


async def test_reset_breaks_open_and_new_connections(pg_dsn: str, pg_proxy: FaultProxy) -> None:
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        pg_proxy.set(Mode.RESET)
        with pytest.raises(psycopg.OperationalError):
            await one(conn)
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        await connect(via(pg_dsn, pg_proxy))
    assert time.monotonic() - started < 2  # refused at once, not timed out
    assert pg_proxy.stats.resets >= 2
    pg_proxy.set(Mode.PASS)
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        assert await one(conn) == 1


async def test_cut_after_n_bytes(pg_dsn: str, pg_proxy: FaultProxy) -> None:
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        before = pg_proxy.stats.bytes_up + pg_proxy.stats.bytes_down
        pg_proxy.set(Mode.CUT, after_bytes=100)
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT repeat('x', 100000)")
        assert pg_proxy.stats.bytes_up + pg_proxy.stats.bytes_down - before == 100


async def test_delay_adds_latency(pg_dsn: str, pg_proxy: FaultProxy) -> None:
    async with await connect(via(pg_dsn, pg_proxy)) as conn:
        pg_proxy.set(Mode.DELAY, delay=0.3)
        started = time.monotonic()
        assert await one(conn) == 1
        assert time.monotonic() - started >= 0.6  # the query up and the answer down


async def test_loopback_only_and_stops_by_itself(postgresql_proc: Any, pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("192.0.2.1", 5432)
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("127.0.0.1", 5432, host="0.0.0.0")
    proxy = await FaultProxy(str(postgresql_proc.host), int(postgresql_proc.port),
                             lifetime=0.5).start()
    try:
        conn = await connect(via(pg_dsn, proxy))
        await asyncio.sleep(1.0)
        with pytest.raises(psycopg.OperationalError):
            await one(conn)
        await conn.close()
        with pytest.raises(psycopg.OperationalError):
            await connect(via(pg_dsn, proxy))
    finally:
        await proxy.stop()
