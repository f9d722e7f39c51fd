"""Helpers shared by sub-commands: configuration options and running until a signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Awaitable, Callable

from walrusds.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $WALRUSDS_CONFIG)")
    parser.add_argument("--dsn", help="PostgreSQL connection string "
                        "(default: $WALRUSDS_POSTGRES_DSN)")


def non_negative(text: str) -> int:
    """An argparse type: a whole number of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``verify`` and ``reindex`` share: other aggregators, JSON output."""
    parser.add_argument("--aggregator", action="append", metavar="URL",
                        help="read from this aggregator instead of walrus.aggregators "
                        "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(getattr(args, "config", None))
    if getattr(args, "dsn", None):
        config = dataclasses.replace(
            config, postgres=dataclasses.replace(config.postgres, dsn=args.dsn))
    return config.validate()


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    return asyncio.run(main())  # type: ignore[arg-type]
