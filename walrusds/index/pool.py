"""The async connection pool, and the translation of driver errors into walrusds errors."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
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

# Seconds a call waits for Postgres to answer on a connection it holds, per pool. Postgres ends
# a statement itself after statement_timeout, so silence past that (plus connect_timeout) means
# the server or the link is gone without a word: a black-holed route, or a middlebox that
# answers TCP keepalives for a dead peer. Without this bound such a call waits forever.
_ANSWER_TIMEOUT: weakref.WeakKeyDictionary[AsyncConnectionPool[Any], float] = (
    weakref.WeakKeyDictionary())


def answer_timeout(cfg: PostgresConfig) -> float:
    return cfg.statement_timeout + cfg.connect_timeout


def connection_kwargs(cfg: PostgresConfig, dsn: str | None = None) -> dict[str, Any]:
    """libpq parameters for every pooled connection.

    ``synchronous_commit=on`` is forced per connection whatever the server default, because a
    Put is acknowledged on commit. Keepalives and a TCP user timeout stop a half-open link from
    hanging a call forever. ``dsn`` is the server's (default: ``cfg.dsn``): a streaming
    replica shares the primary's roles, so ``password_file`` serves both.
    """
    dsn = cfg.dsn if dsn is None else dsn
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
    if cfg.password_file and "password=" not in dsn and ":@" not in dsn:
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
    pool = new_pool(cfg, cfg.dsn, min_size=min_size, max_size=max_size)
    try:
        await pool.open(wait=True, timeout=cfg.connect_timeout + 5)
    except PoolTimeout:
        await pool.close()
        reason = await _connect_error(cfg)
        raise ConfigError(f"cannot connect to PostgreSQL at {redact_dsn(cfg.dsn)}"
                          f"{reason}") from None
    return pool


async def _connect_error(cfg: PostgresConfig) -> str:
    """Why one direct connection fails (": <libpq's reason>"), for the start-up message:
    the pool only reports that it timed out. A setting such as ``sslmode=require`` against a
    server without SSL fails here with libpq's own words."""
    try:
        conn = await psycopg.AsyncConnection.connect(cfg.dsn, **connection_kwargs(cfg))
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())  # libpq's message spans lines
        return f": {redact_dsn(text)[:400]}" if text else f": {type(exc).__name__}"
    await conn.close()
    return ""


def new_pool(cfg: PostgresConfig, dsn: str, *, min_size: int | None = None,
             max_size: int | None = None, timeout: float | None = None,
             name: str = "walrusds", settings: dict[str, Any] | None = None
             ) -> AsyncConnectionPool[Any]:
    """A pool on ``dsn`` with walrusds' connection settings (``settings`` replaces some of
    them), not opened yet."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        kwargs={**connection_kwargs(cfg, dsn), **(settings or {})},
        min_size=min_size or cfg.pool_min,
        max_size=max_size or cfg.pool_max,
        timeout=cfg.pool_timeout if timeout is None else timeout,
        max_idle=300,
        reconnect_timeout=cfg.connect_timeout * 3,
        open=False,
        name=name,
    )
    _ANSWER_TIMEOUT[pool] = answer_timeout(cfg)
    return pool


async def run(pool: AsyncConnectionPool[Any], fn: Callable[[AsyncConn], Awaitable[T]],
              what: str) -> T:
    """Run ``fn`` on a pooled connection, once more if the connection broke or a deadlock was
    detected. Every statement walrusds runs is idempotent, so a repeat is harmless. A
    connection that stops answering fails the call after the pool's answer timeout (no retry:
    the next attempt would most likely wait as long)."""
    last: Exception | None = None
    limit = _ANSWER_TIMEOUT.get(pool)
    for attempt in range(3):
        try:
            async with pool.connection() as conn:
                async with asyncio.timeout(limit):
                    return await fn(conn)
        except RETRYABLE as exc:
            last = exc
            log.info("%s: retrying after %s", what, type(exc).__name__)
        except pg_errors.QueryCanceled as exc:
            raise IndexUnavailable(f"{what}: Postgres statement timed out") from exc
        except TimeoutError as exc:
            waited = f"within {limit:g} s" if limit is not None else "in time"
            raise IndexUnavailable(f"{what}: Postgres did not answer {waited}") from exc
        except PoolTimeout as exc:  # an OperationalError too: before that branch
            raise IndexUnavailable(
                f"{what}: no Postgres connection became available in time") from exc
        except psycopg.OperationalError as exc:
            last = exc
            if attempt >= 1:
                break
            log.warning("%s: Postgres connection failed (%s); retrying once", what,
                        type(exc).__name__)
    raise IndexUnavailable(f"{what}: Postgres is unavailable ({type(last).__name__})") from last
