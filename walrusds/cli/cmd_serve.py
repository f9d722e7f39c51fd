"""``walrusds serve``: run the gRPC service from a configuration file and/or environment."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from walrusds.cli.common import add_config_arguments, config_from_args, run_async, wait_for_signal
from walrusds.config import Config
from walrusds.server.app import Service


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the gRPC datastore service",
        description="Run the walrusds gRPC service. Configuration comes from a TOML file "
        "(--config or $WALRUSDS_CONFIG) and WALRUSDS_* environment variables.")
    add_config_arguments(p)
    p.add_argument("--listen", help="unix:/path/to.sock or host:port (default: config 'listen')")
    p.add_argument("--read-only", action="store_true", default=None,
                   help="refuse writes (retrieval node)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides["listen"] = args.listen
    if args.read_only:
        overrides["read_only"] = True
    config = dataclasses.replace(config, **overrides).validate()
    return run_async(lambda: serve(config))


async def serve(config: Config) -> int:
    service = await Service.start(config)
    print(f"walrusds serving dataset {service.identity.name!r} on {service.address}",
          flush=True)
    try:
        await wait_for_signal()
    finally:
        await service.stop()
    return 0
