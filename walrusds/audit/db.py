"""Connections for the audit commands: a pool that cannot write, the schema check, and the
Walrus client (aggregators from the configuration or ``--aggregator``).

``walrusds verify`` and ``walrusds reindex --dry-run`` promise to change nothing, and verify
must run against a read-only replica. Rather than trusting every statement to be a SELECT, their
connections start with ``default_transaction_read_only=on``: Postgres itself then refuses any
write (``ReadOnlySqlTransaction``), so a mistake fails loudly instead of changing the index.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool, PoolTimeout

from walrusds.client import open_blob_store
from walrusds.client.protocol import BlobStore
from walrusds.config import Config, PostgresConfig
from walrusds.errors import ConfigError
from walrusds.index.migrate import check_schema
from walrusds.index.pool import AsyncConn, connection_kwargs, open_pool, redact_dsn, run

__all__ = ["open_audit_pool", "open_audit_store", "quiet_http_log", "with_aggregators"]


def quiet_http_log() -> None:
    """An audit makes thousands of reads: httpx's INFO line per request would bury the report
    (and the progress line) in the log. It still logs at ``--log-level DEBUG``."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def with_aggregators(config: Config, urls: Sequence[str] | None) -> Config:
    """``config`` reading from ``urls`` instead of the configured aggregators, when given."""
    if not urls:
        return config
    return dataclasses.replace(config, walrus=dataclasses.replace(
        config.walrus, aggregators=tuple(urls))).validate()


def open_audit_store(config: Config, command: str) -> BlobStore:
    """The retrying Walrus client for reads; the audits need at least one aggregator."""
    store = open_blob_store(config.walrus) if config.walrus.aggregators else None
    if store is None:
        raise ConfigError(f"{command} reads blobs from Walrus: configure walrus.aggregators "
                          "(WALRUSDS_WALRUS_AGGREGATORS) or pass --aggregator URL")
    return store


async def open_audit_pool(config: Config, *, read_only: bool,
                          max_size: int = 2) -> AsyncConnectionPool[Any]:
    """A small pool on the configured dataset, checked to hold a current walrusds schema.

    With ``read_only`` every transaction on it is read-only. The schema is never migrated here:
    an audit of a database without the walrusds tables is an operator mistake to report.
    """
    cfg = config.postgres
    pool = (await _read_only_pool(cfg, max_size) if read_only
            else await open_pool(cfg, min_size=1, max_size=max_size))
    try:
        async def check(conn: AsyncConn) -> None:
            await check_schema(conn, cfg.schema, config.dataset)

        await run(pool, check, "check schema")
    except BaseException:
        await pool.close()
        raise
    return pool


async def _read_only_pool(cfg: PostgresConfig, max_size: int) -> AsyncConnectionPool[Any]:
    if not cfg.dsn:
        raise ConfigError("postgres.dsn is not set (WALRUSDS_POSTGRES_DSN, [postgres] dsn or "
                          "--dsn)")
    kwargs = connection_kwargs(cfg)
    kwargs["options"] = f"{kwargs['options']} -c default_transaction_read_only=on"
    kwargs["application_name"] = "walrusds-audit"
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        cfg.dsn, kwargs=kwargs, min_size=1, max_size=max_size, timeout=cfg.pool_timeout,
        reconnect_timeout=cfg.connect_timeout * 3, open=False, name="walrusds-audit")
    try:
        await pool.open(wait=True, timeout=cfg.connect_timeout + 5)
    except PoolTimeout:
        await pool.close()
        raise ConfigError(f"cannot connect to PostgreSQL at {redact_dsn(cfg.dsn)}") from None
    return pool
