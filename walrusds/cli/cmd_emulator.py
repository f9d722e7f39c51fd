"""``walrusds emulator``: run the local Walrus emulator in the foreground until a signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walrusds.cli.common import run_async
from walrusds.emulator.config import DEFAULT_MAX_BODY_SIZE, EmulatorConfig
from walrusds.emulator.network import NetworkProfile, parse_bandwidth, parse_latency
from walrusds.emulator.runner import is_loopback, start_emulator
from walrusds.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:31415"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "emulator", help="run a local Walrus publisher + aggregator emulator",
        description="Serve Walrus' publisher and aggregator HTTP routes from one process, "
        "over an emulated network with fake (but deterministic) blob IDs, plus a /_emulator/ "
        "control surface for tests. It has no authentication, so it listens on loopback "
        "only unless --public is given. Ctrl-C or SIGTERM stops it.")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to listen on; port 0 picks a free one (default: "
                   f"{DEFAULT_LISTEN}, the walrus daemon's)")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="keep blobs, objects and the epoch here across restarts "
                   "(default: in memory only)")
    p.add_argument("--max-body-size", type=int, default=DEFAULT_MAX_BODY_SIZE, metavar="BYTES",
                   help=f"largest PUT body; larger ones get 413 (default: "
                   f"{DEFAULT_MAX_BODY_SIZE}, 10 MiB, as Walrus' publisher)")
    p.add_argument("--epoch-seconds", type=float, default=None, metavar="S",
                   help="let epochs advance with the wall clock, one per S seconds "
                   "(default: only through the control surface)")
    p.add_argument("--start-epoch", type=int, default=1, metavar="N",
                   help="epoch of a fresh emulator (a saved --data-dir state wins; default: 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of probabilistic faults (default: unpredictable)")
    p.add_argument("--latency", default=None, metavar="TIME",
                   help="distant-network profile: time to first byte added to every publisher "
                   "and aggregator answer, e.g. 100ms or 0.1s (default: none)")
    p.add_argument("--bandwidth", default=None, metavar="RATE",
                   help="distant-network profile: bytes/s of the whole link, shared by all "
                   "connections, each way, e.g. 200MB/s or 64MiB/s (default: no cap)")
    p.add_argument("--connection-bandwidth", default=None, metavar="RATE",
                   help="distant-network profile: bytes/s of one connection, each way, "
                   "e.g. 50MB/s (default: no cap)")
    p.add_argument("--public", action="store_true",
                   help="allow a non-loopback --listen address (anyone who can reach it can "
                   "inject faults and wipe the data)")
    p.set_defaults(func=run)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def parse_network(args: argparse.Namespace) -> NetworkProfile:
    """The profile the network options ask for; ConfigError names a bad option."""
    def option(name: str, text: str | None, parse: Callable[[str], float]) -> float | None:
        try:
            return None if text is None else parse(text)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    latency = option("--latency", args.latency, parse_latency)
    return NetworkProfile(
        latency=latency or 0.0,
        bandwidth=option("--bandwidth", args.bandwidth, parse_bandwidth),
        connection_bandwidth=option("--connection-bandwidth", args.connection_bandwidth,
                                    parse_bandwidth))


def run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    if not is_loopback(host) and not args.public:
        raise ConfigError(f"refusing to listen on {host!r}: the emulator has no authentication; "
                          "use a loopback address or pass --public")
    network = parse_network(args)
    try:
        config = EmulatorConfig(max_body_size=args.max_body_size, data_dir=args.data_dir,
                                epoch_seconds=args.epoch_seconds, start_epoch=args.start_epoch,
                                seed=args.seed, latency=network.latency,
                                bandwidth=network.bandwidth,
                                connection_bandwidth=network.connection_bandwidth)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def main() -> int:
        # Signal handlers go in before the URL is printed: whoever reads it may signal at once.
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                running = await start_emulator(config, host, port)
            except OSError as exc:
                raise ConfigError(f"cannot start on {args.listen}: {exc.strerror or exc}") \
                    from None
            except ValueError as exc:  # e.g. a --data-dir holding an unknown state version
                raise ConfigError(f"cannot start: {exc}") from None
            try:
                where = f"data in {config.data_dir}" if config.data_dir else "in memory"
                print(f"walrusds emulator: serving Walrus publisher and aggregator at "
                      f"{running.url} (epoch {running.emulator.state.epoch}, {where}; "
                      f"control at {running.url}/_emulator/state)", flush=True)
                if network != NetworkProfile():
                    print(f"walrusds emulator: distant network: {network.describe()}",
                          flush=True)
                await stop.wait()
            finally:
                await running.stop()
                print("walrusds emulator: stopped", flush=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        return 0

    return run_async(main)
