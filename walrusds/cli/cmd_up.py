"""``walrusds up``: the whole stack on this machine with embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from walrusds.cli.common import run_async, wait_for_signal
from walrusds.config import load_config
from walrusds.stack import LocalStack, default_data_dir


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up", help="run a private PostgreSQL, the Walrus emulator and the service",
        description="Start everything walrusds needs on this machine: a private PostgreSQL "
        "cluster in DATA_DIR (created on first run), the Walrus emulator and the gRPC "
        "service. Ctrl-C or SIGTERM stops all of it cleanly.")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"where state lives (default: {default_data_dir()})")
    p.add_argument("--listen", help="gRPC address (default: unix:DATA_DIR/walrusds.sock)")
    p.add_argument("--config", metavar="FILE", help="optional TOML file for other settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    stack = LocalStack(args.data_dir or default_data_dir(), config, listen=args.listen)

    async def main() -> int:
        await stack.start()
        try:
            _announce(stack)
            await wait_for_signal()
        finally:
            print("walrusds up: stopping", flush=True)
            await stack.stop()
        return 0

    return run_async(main)


def _announce(stack: LocalStack) -> None:
    addr = stack.info["grpc"]
    print(f"walrusds up: serving dataset {stack.info['dataset']!r} on {addr}\n"
          f"  state:     {stack.data_dir} (details in {stack.up_file})\n"
          f"  try:       walrusds ds --addr {addr} put /hello - <<< 'hello walrus'\n"
          f"             walrusds ds --addr {addr} get /hello\n"
          f"  Kubo:      walrusds kubo-init ~/.ipfs-walrus --addr {addr}\n"
          f"  stop:      Ctrl-C", flush=True)
