"""Migrations are idempotent, safe when several servers start at once, and guard identity."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from walrusds.config import Config
from walrusds.errors import ConfigError
from walrusds.index.migrate import check_schema, load_migrations, migrate
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def test_migrate_is_idempotent(pg_dsn: str, schema: str) -> None:
    async with await connect(pg_dsn) as conn:
        first = await migrate(conn, schema, "ds")
        second = await migrate(conn, schema, "ds")
        assert first == second
        cur = await conn.execute(f'SELECT count(*) FROM "{schema}".schema_migrations')
        row = await cur.fetchone()
        assert row is not None
        assert row[0] == len(load_migrations())


async def test_concurrent_migrations_apply_once(pg_dsn: str, schema: str) -> None:
    conns = [await connect(pg_dsn) for _ in range(6)]
    try:
        identities = await asyncio.gather(*(migrate(c, schema, "ds") for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert len({i.id for i in identities}) == 1


async def test_concurrent_server_starts(config: Config) -> None:
    services = await asyncio.gather(*(Service.start(config) for _ in range(3)))
    try:
        assert len({s.identity.id for s in services}) == 1
        channel = open_aio_channel(services[0].address)
        await stub(channel).Put(pb.PutRequest(key=b"/k", value=b"v"))
        await channel.close()
        channel = open_aio_channel(services[2].address)
        assert (await stub(channel).Get(pb.GetRequest(key=b"/k"))).value == b"v"
        await channel.close()
    finally:
        for s in services:
            await s.stop(grace=0.1)


async def test_dataset_name_is_checked(pg_dsn: str, schema: str) -> None:
    async with await connect(pg_dsn) as conn:
        await migrate(conn, schema, "one")
        with pytest.raises(ConfigError, match="holds dataset 'one'"):
            await migrate(conn, schema, "two")
        with pytest.raises(ConfigError, match="holds dataset 'one'"):
            await check_schema(conn, schema, "two")


async def test_read_only_node_needs_a_migrated_schema(pg_dsn: str, schema: str) -> None:
    async with await connect(pg_dsn) as conn:
        with pytest.raises(ConfigError, match="no walrusds index"):
            await check_schema(conn, schema, "ds")
        identity = await migrate(conn, schema, "ds")
        assert await check_schema(conn, schema, "ds") == identity
        await conn.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version = 1')
        with pytest.raises(ConfigError, match="run `walrusds migrate`"):
            await check_schema(conn, schema, "ds")


async def test_schema_from_a_newer_walrusds_is_refused(pg_dsn: str, schema: str) -> None:
    async with await connect(pg_dsn) as conn:
        await migrate(conn, schema, "ds")
        await conn.execute(
            f"INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES (999, 'x')")
        with pytest.raises(ConfigError, match="upgrade walrusds"):
            await migrate(conn, schema, "ds")


async def test_read_only_service_does_not_create_a_schema(config: Config) -> None:
    with pytest.raises(ConfigError, match="no walrusds index"):
        await Service.start(dataclasses.replace(config, read_only=True))


async def test_health_and_reflection(service: Service) -> None:
    channel = open_aio_channel(service.address)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "walrusds.v1.Datastore"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names = []
        async for resp in refl.ServerReflectionInfo(ask()):
            names = [s.name for s in resp.list_services_response.service]
        assert "walrusds.v1.Datastore" in names
        info = await stub(channel).Info(pb.InfoRequest())
        assert info.dataset == "default"
        assert info.dataset_id == service.identity.id
        assert "batching" in info.features
        assert info.max_value_size == 16 * 1024 * 1024
    finally:
        await channel.close()


async def test_graceful_stop_goes_not_serving_first(config: Config) -> None:
    svc = await Service.start(config)
    channel = open_aio_channel(svc.address)
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.ensure_future(svc.stop(grace=0.5))
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping
    await channel.close()
