"""Schema migrations: numbered SQL files applied in order, idempotently, under a lock.

``walrusds migrate`` and every server start call :func:`migrate`. It takes a transaction-scoped
advisory lock keyed by the schema name, so two servers starting at once apply each migration
exactly once: the second waits, then finds nothing left to do. Each migration runs in the same
transaction as its bookkeeping row, so a crash mid-way leaves the schema as it was.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from walrusds.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str


@dataclass(frozen=True)
class DatasetIdentity:
    name: str
    id: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in importlib.resources.files("walrusds.migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {versions}")
    return found


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str,
                  dataset: str) -> DatasetIdentity:
    """Bring ``schema`` up to date and return the dataset identity it holds.

    Creates the schema and the dataset row on first use. Raises :class:`ConfigError` when the
    schema already holds a dataset with another name, or was migrated by a newer walrusds.
    """
    migrations = load_migrations()
    ident = sql.Identifier(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                           (f"walrusds-migrate:{schema}",))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())").format(ident))
        cur = await conn.execute(
            sql.SQL("SELECT version FROM {}.schema_migrations").format(ident))
        applied = {row[0] for row in await cur.fetchall()}
        newest = max(applied, default=0)
        if newest > len(migrations):
            raise ConfigError(
                f"schema {schema!r} is at migration {newest}, newer than this walrusds knows "
                f"({len(migrations)}): upgrade walrusds")
        for m in migrations:
            if m.version in applied:
                continue
            log.info("applying migration %04d_%s to schema %s", m.version, m.name, schema)
            await conn.execute(sql.SQL(m.text).format(schema=ident))
            await conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)")
                .format(ident), (m.version, m.name))
        cur = await conn.execute(sql.SQL("SELECT name, id FROM {}.dataset").format(ident))
        row = await cur.fetchone()
        if row is None:
            new_id = uuid.uuid4()
            await conn.execute(sql.SQL("INSERT INTO {}.dataset (name, id) VALUES (%s, %s)")
                               .format(ident), (dataset, new_id))
            return DatasetIdentity(dataset, str(new_id))
        if row[0] != dataset:
            raise ConfigError(
                f"schema {schema!r} holds dataset {row[0]!r}, but the configuration names "
                f"dataset {dataset!r}: fix `dataset` or `postgres.schema`")
        return DatasetIdentity(row[0], str(row[1]))


async def check_schema(conn: psycopg.AsyncConnection[Any], schema: str,
                       dataset: str) -> DatasetIdentity:
    """For read-only nodes: verify the schema is fully migrated and holds ``dataset``,
    without changing anything."""
    ident = sql.Identifier(schema)
    expected = len(load_migrations())
    try:
        cur = await conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0), count(*) FROM {}.schema_migrations")
            .format(ident))
        row = await cur.fetchone()
        version, applied = (row[0], row[1]) if row else (0, 0)
        cur = await conn.execute(sql.SQL("SELECT name, id FROM {}.dataset").format(ident))
        found = await cur.fetchone()
    except psycopg.errors.UndefinedTable:
        raise ConfigError(f"schema {schema!r} has no walrusds index: start an upload node or "
                          "run `walrusds migrate` first") from None
    if version != expected or applied != expected:
        raise ConfigError(f"schema {schema!r} is at migration {version}, this walrusds expects "
                          f"{expected}: run `walrusds migrate` with the matching version")
    if found is None or found[0] != dataset:
        raise ConfigError(f"schema {schema!r} holds dataset "
                          f"{found[0] if found else None!r}, not {dataset!r}")
    return DatasetIdentity(found[0], str(found[1]))
