"""``walrusds migrate``: create or upgrade the index schema, then exit."""

from __future__ import annotations

import argparse
from typing import Any

from walrusds.cli.common import add_config_arguments, config_from_args, run_async
from walrusds.config import Config
from walrusds.index import migrate, open_pool
from walrusds.index.migrate import load_migrations


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "migrate", help="create or upgrade the Postgres schema",
        description="Apply pending migrations to the configured schema. Safe to run while "
        "servers start: migrations are applied once, under a lock.")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return run_async(lambda: _migrate(config))


async def _migrate(config: Config) -> int:
    pool = await open_pool(config.postgres, min_size=1, max_size=1)
    try:
        async with pool.connection() as conn:
            identity = await migrate(conn, config.postgres.schema, config.dataset)
    finally:
        await pool.close()
    print(f"schema {config.postgres.schema!r} is at migration {len(load_migrations())}; "
          f"dataset {identity.name!r} ({identity.id})")
    return 0
