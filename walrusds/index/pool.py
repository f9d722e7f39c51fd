"""The async connection pool, and the translation of driver errors into walrusds errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from walrusds.config import PostgresConfig, read_secret_file
from walrusds.errors import ConfigError, IndexUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

AsyncConn = psycopg.AsyncConnection[Any]

# Errors after which the same statement can simply be run again on a fresh connection.
RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def connection_kwargs(cfg: PostgresConfig) -> dict[str, Any]:
    """libpq parameters for every pooled connection.

    ``synchronous_commit=on`` is forced per connection whatever the server default, because a
    Put is acknowledged on commit. Keepalives and a TCP user timeout stop a half-open link from
    hanging a call forever.
    """
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": max(1, round(cfg.connect_timeout)),
        "application_name": "walrusds",
        "options": (f"-c synchronous_commit=on "
                    f"-c statement_timeout={int(cfg.statement_timeout * 1000)} "
                    f"-c idle_in_transaction_session_timeout="
                    f"{int(cfg.statement_timeout * 1000)}"),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": int(cfg.statement_timeout * 1000) + 30_000,
    }
    if cfg.password_file and "password=" not in cfg.dsn and ":@" not in cfg.dsn:
        kwargs["password"] = read_secret_file(cfg.password_file, "postgres.password_file")
    return kwargs


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed, for logs and messages."""
    dsn = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)
    return re.sub(r"(postgres(?:ql)?://[^:/@]+:)[^@]*@", r"\1***@", dsn)


async def open_pool(cfg: PostgresConfig, *, min_size: int | None = None,
                    max_size: int | None = None) -> AsyncConnectionPool[Any]:
    """Open a pool and wait until one connection works (or fail with a clear message)."""
    if not cfg.dsn:
        raise ConfigError("postgres.dsn is not set (WALRUSDS_POSTGRES_DSN or [postgres] dsn)")
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        cfg.dsn,
        kwargs=connection_kwargs(cfg),
        min_size=min_size or cfg.pool_min,
        max_size=max_size or cfg.pool_max,
        timeout=cfg.pool_timeout,
        max_idle=300,
        reconnect_timeout=cfg.connect_timeout * 3,
        open=False,
        name="walrusds",
    )
    try:
        await pool.open(wait=True, timeout=cfg.connect_timeout + 5)
    except PoolTimeout:
        await pool.close()
        raise ConfigError(f"cannot connect to PostgreSQL at {redact_dsn(cfg.dsn)}") from None
    return pool


async def run(pool: AsyncConnectionPool[Any], fn: Callable[[AsyncConn], Awaitable[T]],
              what: str) -> T:
    """Run ``fn`` on a pooled connection, once more if the connection broke or a deadlock was
    detected. Every statement walrusds runs is idempotent, so a repeat is harmless."""
    last: Exception | None = None
    for attempt in range(3):
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except RETRYABLE as exc:
            last = exc
            log.info("%s: retrying after %s", what, type(exc).__name__)
        except pg_errors.QueryCanceled as exc:
            raise IndexUnavailable(f"{what}: Postgres statement timed out") from exc
        except psycopg.OperationalError as exc:
            last = exc
            if attempt >= 1:
                break
            log.warning("%s: Postgres connection failed (%s); retrying once", what,
                        type(exc).__name__)
        except PoolTimeout as exc:
            raise IndexUnavailable(
                f"{what}: no Postgres connection became available in time") from exc
    raise IndexUnavailable(f"{what}: Postgres is unavailable ({type(last).__name__})") from last
