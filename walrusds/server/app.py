"""Assembles and runs the service: pool, migrations, datastore, gRPC server, health, workers.

Shutdown order (SIGTERM): health goes NOT_SERVING first, then the server stops accepting calls
and gives in-flight ones ``config.grace`` seconds, then background workers stop, then the
metrics endpoint, then the pool closes. Nothing writes after :meth:`Service.stop` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from psycopg_pool import AsyncConnectionPool

from walrusds.backend import WalrusBackend
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.datastore import Datastore, PackedReader
from walrusds.errors import ConfigError, WalrusdsError
from walrusds.index import Index, migrate, open_pool
from walrusds.index.migrate import DatasetIdentity, check_schema
from walrusds.index.replica import Replica, check_replica_node
from walrusds.logging_setup import config_secrets, register_secrets
from walrusds.metrics.replica import ReplicaCollector
from walrusds.metrics.service import ServiceMetrics
from walrusds.replica_reader import relocating_reader
from walrusds.server.decode import RequestDecoding
from walrusds.server.listen import (
    TokenInterceptor,
    check_exposure,
    load_token,
    parse_listen,
    server_credentials,
)
from walrusds.server.service import DatastoreService
from walrusds.tasks import cancel_and_wait
from walrusds.v1 import datastore_pb2, datastore_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = datastore_pb2.DESCRIPTOR.services_by_name["Datastore"].full_name
HEALTH_INTERVAL = 5.0


class Worker(Protocol):
    """A background task owned by the service (flusher, renewal worker...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Service:
    config: Config
    pool: AsyncConnectionPool[Any]
    identity: DatasetIdentity
    datastore: Datastore
    servicer: DatastoreService
    server: grpc.aio.Server
    health: health_aio.HealthServicer
    address: str
    backend: WalrusBackend | None = None
    workers: list[Worker] = field(default_factory=list)
    metrics: ServiceMetrics | None = None
    replica: Replica | None = None
    _health_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: Config, *, packed_reader: PackedReader | None = None,
                    blob_store: BlobStore | None = None,
                    workers: Sequence[Worker] = ()) -> Service:
        """Start serving. Walrus endpoints come from ``config.walrus`` (``blob_store``
        overrides the client; ``packed_reader`` overrides the reader)."""
        addr = parse_listen(config.listen)
        check_exposure(addr, config)
        check_replica_node(config)
        register_secrets(config_secrets(config))
        token = load_token(config.security)
        creds = server_credentials(config.security)
        metrics = ServiceMetrics(config)
        pool = await open_pool(config.postgres)
        replica: Replica | None = None
        try:
            identity = await prepare_schema(pool, config)
            index = Index(pool, config.postgres.schema)
            metrics.attach_pool(pool)
            backend = await WalrusBackend.open(config, pool, blob_store)
            metrics.attach_backend(backend)
            reader = packed_reader or backend.reader
            if config.postgres.replica_dsn:  # read-only retrieval node on a streaming replica
                replica = await Replica.open(config, index, identity.id)
                metrics.registry.register(ReplicaCollector(replica.reads))
                if reader is not None:
                    reader = relocating_reader(reader, replica.reads.relocate)
            ds = Datastore(index=index, config=config, identity=identity,
                           packed_reader=reader,
                           on_write=backend.nudge,
                           value_limit=backend.value_limit(config.limits.max_key_size),
                           routing=replica.reads if replica is not None else None)
            server = grpc.aio.server(
                options=grpc_options(config),
                interceptors=[*([TokenInterceptor(token)] if token else []),
                              RequestDecoding(metrics.rpc)],
            )
            servicer = DatastoreService(ds, metrics.rpc)
            datastore_pb2_grpc.add_DatastoreServicer_to_server(servicer, server)
            health = health_aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            reflection.enable_server_reflection(
                (SERVICE_NAME, reflection.SERVICE_NAME, "grpc.health.v1.Health"), server)
            if addr.unix_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(addr.unix_path)
            target = addr.grpc_target
            try:
                port = (server.add_secure_port(target, creds) if creds
                        else server.add_insecure_port(target))
            except RuntimeError:  # grpcio: "Failed to bind to address ..."
                port = 0
            if port == 0 and addr.unix_path is not None:
                raise ConfigError(f"cannot listen on {target}: check that the directory "
                                  "exists and is writable")
            if addr.unix_path is None:
                if port == 0:
                    raise ConfigError(f"cannot listen on {target}: the address is in use or "
                                      "not on this host")
                target = parse_listen(f"{addr.host}:{port}").grpc_target
            await server.start()
            if addr.unix_path is not None:
                os.chmod(addr.unix_path, 0o600)
        except BaseException:
            if replica is not None:
                await replica.pool.close()
            await pool.close()
            raise
        service = cls(config, pool, identity, ds, servicer, server, health, target,
                      backend=backend, metrics=metrics, replica=replica)
        # the replica's watch starts first and stops (closing its pool) after the others
        for w in [*([replica] if replica is not None else []), *backend.workers, *workers]:
            await w.start()
            service.workers.append(w)
        await service._set_serving(True)
        await metrics.start()
        service._health_task = asyncio.get_running_loop().create_task(service._watch_health())
        log.info("walrusds serving dataset %r on %s%s", identity.name, target,
                 " (read-only)" if config.read_only else "")
        return service

    async def stop(self, grace: float | None = None) -> None:
        grace = self.config.grace if grace is None else grace
        await cancel_and_wait(self._health_task)
        await self.health.enter_graceful_shutdown()
        if self.metrics is not None:
            self.metrics.serving.set(0)
        # Long-lived LookupStreams end on their own once their lookups are answered, instead
        # of holding the grace period open.
        self.servicer.drain_streams()
        await self.server.stop(grace)
        for w in reversed(self.workers):
            try:
                await w.stop()
            except Exception:
                log.exception("stopping %s failed", type(w).__name__)
        if self.metrics is not None:
            await self.metrics.stop()
        await self.pool.close()
        log.info("walrusds stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()

    async def _set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        if self.metrics is not None:
            self.metrics.serving.set(1 if serving else 0)

    async def _watch_health(self) -> None:
        """Health reflects whether Postgres answers (readiness, not Walrus liveness)."""
        serving = True
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                await self.datastore.index.ping()
                ok = True
            except WalrusdsError:
                ok = False
            if ok != serving:
                serving = ok
                log.warning("Postgres %s: health %s", "is back" if ok else "is unreachable",
                            "SERVING" if ok else "NOT_SERVING")
                await self._set_serving(ok)


def grpc_options(config: Config) -> list[tuple[str, Any]]:
    size = config.max_message_size
    # grpc core cancels calls waiting beyond max_pending_requests (default 1000) without a
    # useful status; let walrusds' own admission (limits.max_concurrent_rpcs) decide instead.
    pending = 4 * config.limits.max_concurrent_rpcs + 10_000
    return [
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 2 * pending),
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
    ]


async def prepare_schema(pool: AsyncConnectionPool[Any], config: Config) -> DatasetIdentity:
    """Migrate (upload nodes) or check the schema is current (read-only nodes)."""
    async with pool.connection() as conn:
        if config.read_only:
            return await check_schema(conn, config.postgres.schema, config.dataset)
        return await migrate(conn, config.postgres.schema, config.dataset)
