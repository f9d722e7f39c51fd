"""``walrusds import --from-flatfs PATH``: copy a stock Kubo repo's blocks into walrusds, then
switch the repo so ``/blocks`` is mounted on walrusds (see docs/import.md).

Steps: check the repo (a Kubo repo, flatfs at ``/blocks``, a known sharding) and the service
(reachable, writable, the expected dataset); take Kubo's repo lock (refused while a daemon runs);
prepare the switch with kubo-init's own profile (before copying, so a missing binary or a repo
that needs a migration is found early); copy the blocks, verified, in batches, recording
finished shard directories; if nothing failed (or ``--skip-corrupt``), back up and rewrite
``config`` and ``datastore_spec``; release the lock and let Kubo open the switched repo.
Exit status: 0 when done; 1 on an error or when a block could not be imported; 130 when
interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from walrusds.cli.cmd_kubo_init import (
    add_credential_arguments,
    add_ipfs_argument,
    find_ipfs,
    target_from_args,
)
from walrusds.importer import switch
from walrusds.importer.blocks import BadBlock
from walrusds.importer.client import ImportService
from walrusds.importer.copier import Copier, CopyOptions, CopyReport, MiB
from walrusds.importer.journal import Journal
from walrusds.importer.kuborepo import FlatfsRepo, open_flatfs_repo
from walrusds.importer.meter import Meter, human_bytes
from walrusds.importer.repolock import RepoLock, is_locked

log = logging.getLogger("walrusds.import")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "import", help="copy a Kubo repo's flatfs blocks into walrusds and switch it over",
        description="Copy the blocks of a stopped Kubo node's repo (flatfs at /blocks) into a "
        "running walrusds service, each verified against its key, then switch the repo's "
        "config and datastore_spec to walrusds at /blocks (backups: config.pre-walrusds, "
        "datastore_spec.pre-walrusds). Interrupted, it resumes where it stopped when run "
        "again. See docs/import.md.")
    p.add_argument("--from-flatfs", metavar="PATH", type=Path, required=True,
                   help="the Kubo repo (IPFS_PATH) whose /blocks is on flatfs")
    p.add_argument("--addr", action="append", required=True, metavar="ADDR",
                   help="service address, unix:/path/to.sock or host:port; repeat (or separate "
                   "with commas) for several addresses of the same dataset; the switched repo "
                   "lists them all")
    p.add_argument("--dataset", help="expected dataset name (default: what the service serves)")
    add_ipfs_argument(p)
    add_credential_arguments(p)
    p.add_argument("--no-switch", action="store_true",
                   help="copy the blocks only; leave the repo on flatfs")
    p.add_argument("--dry-run", action="store_true",
                   help="read, verify and count every block; write nothing anywhere")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="switch even if some blocks could not be imported (corrupt, unreadable, "
                   "too large); they are listed and left out")
    p.add_argument("--allow-unverifiable", action="store_true",
                   help="import blocks whose key names a hash walrusds cannot recompute "
                   "(blake3, truncated digests) without checking them")
    p.add_argument("--restart", action="store_true",
                   help="ignore the progress of earlier runs (blocks already in walrusds are "
                   "still not sent again)")
    p.add_argument("--batch-blocks", type=_positive_int, default=1000, metavar="N",
                   help="most blocks per Batch call (default 1000)")
    p.add_argument("--batch-mib", type=_positive_int, default=4, metavar="MIB",
                   help="most MiB of blocks per Batch call (default 4)")
    p.add_argument("--streams", type=_positive_int, default=2, metavar="N",
                   help="Batch calls in flight at once (default 2)")
    p.add_argument("--progress-interval", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between progress lines when stderr is not a terminal")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no summary; problems are still reported")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


class _Output:
    """Where progress, problems and the summary go."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet: bool = args.quiet
        self.json: bool = args.json
        self.interval: float = args.progress_interval
        self.meter: Meter | None = None

    def new_meter(self, total: int, verb: str) -> Meter:
        mode = "quiet" if self.quiet else "tty" if sys.stderr.isatty() else "log"
        self.meter = Meter(total, stream=sys.stderr, mode=mode, interval=self.interval,
                           verb=verb)
        return self.meter

    def problem(self, text: str) -> None:
        if self.meter is not None:
            self.meter.interrupt()
        print(f"walrusds import: {text}", file=sys.stderr, flush=True)

    def bad(self, block: BadBlock) -> None:
        self.problem(block.describe())


def run(args: argparse.Namespace) -> int:
    repo = open_flatfs_repo(args.from_flatfs)
    target = target_from_args(args)
    ipfs = None if args.no_switch or args.dry_run else find_ipfs(args.ipfs)
    out = _Output(args)
    options = CopyOptions(batch_blocks=args.batch_blocks, batch_bytes=args.batch_mib * MiB,
                          streams=args.streams, allow_unverifiable=args.allow_unverifiable,
                          dry_run=args.dry_run)
    with ImportService.connect(target, args.dataset, writable=not args.dry_run) as service:
        if args.dry_run:
            if is_locked(repo.root):
                out.problem(f"warning: a Kubo daemon or command is using {repo.root}; stop it "
                            "before the real import")
            report = _copy(repo, service, None, options, out)
            return _finish(args, out, repo, service, report, switched=None)
        return _import(args, out, repo, service, options, ipfs)


def _import(args: argparse.Namespace, out: _Output, repo: FlatfsRepo, service: ImportService,
            options: CopyOptions, ipfs: Path | None) -> int:
    """Copy under the repo lock, then switch (unless --no-switch) and let Kubo check it."""
    plan: switch.SwitchPlan | None = None
    backups: tuple[Path, Path] | None = None
    with RepoLock(repo.root):
        if ipfs is not None:
            plan = switch.prepare(ipfs, repo, service.target, service.info.dataset)
        journal = Journal(repo.root, service.info.dataset_id)
        journal.load(restart=args.restart)
        if journal.discarded and not args.restart:
            log.warning("not resuming from %s: %s", journal.path, journal.discarded)
        journal.open()
        try:
            report = _copy(repo, service, journal, options, out)
        finally:
            journal.close()
        if report.bad_blocks and not args.skip_corrupt:
            return _finish(args, out, repo, service, report, switched=None)
        if plan is not None:
            backups = switch.apply(repo, plan)
    if ipfs is not None and plan is not None:
        switch.verify(ipfs, repo, plan)  # needs the lock free: Kubo opens the repo
        journal.remove()
    return _finish(args, out, repo, service, report, switched=backups)


def _copy(repo: FlatfsRepo, service: ImportService, journal: Journal | None,
          options: CopyOptions, out: _Output) -> CopyReport:
    copier = Copier(repo.blocks_dir, repo.sharding, service, journal, options, out.bad)
    planned = copier.plan()
    meter = out.new_meter(planned.blocks_total, "verified" if options.dry_run else "imported")
    try:
        report = copier.run(meter)
    except KeyboardInterrupt:
        out.problem("interrupted: what was committed stays in walrusds; run the same command "
                    "again to resume")
        raise
    except Exception:
        meter.interrupt()
        raise
    meter.finish()
    return report


def _finish(args: argparse.Namespace, out: _Output, repo: FlatfsRepo, service: ImportService,
            report: CopyReport, switched: tuple[Path, Path] | None) -> int:
    failed = report.bad_blocks > 0 and not args.skip_corrupt
    if not out.quiet:
        if out.json:
            print(json.dumps(_summary(args, repo, service, report, switched)))
        else:
            print(_text(args, repo, service, report, switched))
    if report.misplaced:
        out.problem(f"warning: {report.misplaced} blocks were not in the shard directory "
                    f"{repo.sharding} names for them (flatfs could not find them by key); "
                    "they were imported")
    if report.bad_blocks:
        what = ", ".join(f"{n} {reason}" for reason, n in sorted(report.bad.items()))
        if failed:
            out.problem(f"{report.bad_blocks} blocks could not be imported ({what}; listed "
                        "above)" + ("" if args.dry_run or args.no_switch else
                                    f": {repo.config_file} was not switched") +
                        ". Repair or drop them (`ipfs repo verify`), or pass --skip-corrupt "
                        "to leave them out")
        else:
            out.problem(f"skipped {report.bad_blocks} blocks ({what}; listed above): they are "
                        "not in walrusds")
    return 1 if failed else 0


def _summary(args: argparse.Namespace, repo: FlatfsRepo, service: ImportService,
             report: CopyReport, switched: tuple[Path, Path] | None) -> dict[str, Any]:
    return {
        "repo": str(repo.root), "dataset": service.info.dataset,
        "dataset_id": service.info.dataset_id, "address": service.addr,
        "dry_run": bool(args.dry_run), "switched": switched is not None,
        "backups": [str(p) for p in switched] if switched else [],
        "shard_dirs": report.shard_dirs, "dirs_done_before": report.dirs_done_before,
        "blocks_total": report.blocks_total, "blocks_done_before": report.blocks_done_before,
        "blocks_present": report.blocks_present, "blocks_sent": report.blocks_sent,
        "bytes_sent": report.bytes_sent, "batches": report.batches, "bad": report.bad,
        "misplaced": report.misplaced, "seconds": round(report.seconds, 3),
    }


def _text(args: argparse.Namespace, repo: FlatfsRepo, service: ImportService,
          report: CopyReport, switched: tuple[Path, Path] | None) -> str:
    verb = "would send" if args.dry_run else "sent"
    rate = human_bytes(report.bytes_sent / max(report.seconds, 1e-6))
    lines = [
        f"{'dry run of ' if args.dry_run else ''}import of {repo.root} into walrusds dataset "
        f"{service.info.dataset!r} ({service.info.dataset_id}) at {service.addr}",
        f"  blocks    {report.blocks_total} in {report.shard_dirs} shard directories: "
        f"{verb} {report.blocks_sent} ({human_bytes(report.bytes_sent)}), "
        f"{report.blocks_present} already in walrusds, {report.blocks_done_before} finished "
        "by an earlier run",
        f"  verified  every {'block' if args.dry_run else 'sent block'} against its key; "
        f"{report.bad_blocks} could not be imported",
        f"  took      {report.seconds:.1f} s ({rate}/s"
        + ("" if args.dry_run else f", {report.batches} batches") + ")",
    ]
    if args.dry_run:
        lines.append("  dry run:  nothing was written")
    elif switched:
        lines += [f"  switched  /blocks is on walrusds; backups {switched[0].name} and "
                  f"{switched[1].name} in {repo.root}",
                  f"  start     IPFS_PATH={repo.root} ipfs-walrus daemon"]
    elif not report.bad_blocks or args.skip_corrupt:
        lines.append("  not switched (--no-switch): run again without it to switch")
    return "\n".join(lines)
