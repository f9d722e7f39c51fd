"""Entry point of the ``walrusds`` command: builds the parser from the sub-command modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from walrusds import __version__
from walrusds.errors import WalrusdsError
from walrusds.logging_setup import FORMATS, LOG_FORMAT_ENV, configure_logging, log_format_default

# Each module exposes register(subparsers) which adds its parser and sets `func` to a callable
# taking the parsed namespace and returning an exit code.
COMMAND_MODULES = (
    "serve",
    "up",
    "migrate",
    "ds",
    "emulator",
    "stats",
    "renew",
    "kubo_init",
    "verify",
    "reindex",
    "import",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walrusds",
        description="A Kubo datastore service that keeps IPFS blocks on Walrus "
        "with a PostgreSQL index.",
    )
    parser.add_argument("--version", action="version", version=f"walrusds {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-format", choices=FORMATS, default=None,
                        help=f"text lines or one JSON object per line (default: "
                        f"${LOG_FORMAT_ENV} or text)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"walrusds.cli.cmd_{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_format = args.log_format or log_format_default()
    if log_format not in FORMATS:
        parser.error(f"{LOG_FORMAT_ENV}={log_format!r}: use one of {', '.join(FORMATS)}")
    configure_logging(args.log_level, log_format)
    try:
        return int(args.func(args))
    except WalrusdsError as exc:
        print(f"walrusds {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `walrusds ds ls | head`: the reader left. Quietly stop, as Unix tools do; point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A file named on the command line that cannot be read (missing, a directory, no
        # permission): one line, like every other error, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"walrusds {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
