"""``walrusds verify [--sample N | --full] [--json]``: read entries back and classify them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from walrusds.audit.classify import Verdict
from walrusds.audit.db import quiet_http_log, with_aggregators
from walrusds.audit.progress import Progress
from walrusds.audit.verifier import Report, options_for, verify_dataset
from walrusds.cli.common import (
    add_audit_arguments,
    add_config_arguments,
    config_from_args,
    non_negative,
)
from walrusds.errors import WalrusdsError

#: Exit status when verify could not run to the end (no verdict about the data).
EXIT_INCOMPLETE = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify", help="read entries back from Walrus and Postgres and check them",
        description="Read entries back through the same verification as Get (SHA-256 digest "
        "and Kubo multihash) and classify each as OK, EXPIRING, LOST or CORRUPT; list ORPHAN "
        "packs (blobs paid for that no entry references). Changes nothing; works against a "
        "read-only replica. Exit status: 0 all OK or EXPIRING, 1 any LOST, CORRUPT or ORPHAN, "
        f"{EXIT_INCOMPLETE} verify could not finish. See docs/recovery.md.")
    add_config_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sample", type=non_negative, default=1000, metavar="N",
                      help="check N entries drawn at random (default 1000)")
    mode.add_argument("--full", action="store_true",
                      help="check every entry, pack by pack, then every staged entry")
    p.add_argument("--expiring-within", type=non_negative, default=2, metavar="EPOCHS",
                   help="EXPIRING: the blob ends within this many epochs (default 2)")
    p.add_argument("--max-problems", type=non_negative, default=1000, metavar="N",
                   help="list at most N problems (all are counted; default 1000)")
    add_audit_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_http_log()
    try:
        config = with_aggregators(config_from_args(args), args.aggregator)
        options = options_for(config, sample=None if args.full else args.sample,
                              expiring_within=args.expiring_within,
                              max_problems=args.max_problems)
        report = asyncio.run(verify_dataset(config, options,
                                            Progress.on_terminal(label="verify")))
    except WalrusdsError as exc:
        print(f"walrusds verify: incomplete: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))
    return report.exit_code


def render(report: Report) -> str:
    e = report.epoch
    if e.estimated is None:
        epoch = "current epoch unknown (nothing stored yet): EXPIRING not judged"
    else:
        recorded = "" if e.recorded == e.estimated else f" (last reported {e.recorded})"
        epoch = (f"current epoch {e.estimated}{recorded}; EXPIRING = ending within "
                 f"{report.expiring_within} epochs")
    what = ("every entry" if report.mode == "full"
            else f"a sample of {report.entries + report.skipped} entries")
    lines = [f"walrusds verify: {what}; {epoch}", ""]
    notes = {
        Verdict.EXPIRING: f"entries in {len(report.expiring)} packs" if report.expiring else "",
        Verdict.ORPHAN: ("packs paid for, referenced by nothing"
                         + (f" ({report.orphans_expired} more already expired)"
                            if report.orphans_expired else "")),
    }
    for verdict, n in report.counts.items():
        note = notes.get(verdict, "")
        lines.append(f"  {verdict.value:<9}{n:>9}  {note}".rstrip())
    lines += ["", f"  checked {report.entries} entries: {report.packed} packed, "
              f"{report.staged} staged; {report.skipped} changed during the walk and skipped; "
              f"{report.reads} ranged reads, {report.rereads} re-reads"]
    if report.expiring:
        lines += ["", "expiring packs (the renewal worker should act soon):"]
        lines += [f"  pack {p.pack_id}  blob {p.blob_id}  end epoch {p.end_epoch}  "
                  f"{p.entries} entries checked"
                  for p in sorted(report.expiring.values(), key=lambda p: p.pack_id)]
    if report.problems:
        lines += ["", "problems:"]
        lines += [f"  {f.line()}" for f in report.problems]
        if report.problems_omitted:
            lines.append(f"  ... and {report.problems_omitted} more (--max-problems)")
    lines += ["", "result: " + (f"{report.problem_count} problems (exit 1)"
                                if report.exit_code else "OK (exit 0)")]
    return "\n".join(lines)
