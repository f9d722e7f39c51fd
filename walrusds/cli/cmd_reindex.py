"""``walrusds reindex [BLOB_ID ...] [--from-packs] [--dry-run] [--json]``: rebuild index rows
from packfiles on Walrus (disaster recovery; docs/recovery.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from walrusds.audit.db import quiet_http_log, with_aggregators
from walrusds.audit.reindex import BlobResult, ReindexReport, reindex_dataset
from walrusds.cli.common import (
    add_audit_arguments,
    add_config_arguments,
    config_from_args,
    non_negative,
)
from walrusds.client.responses import BLOB_ID_RE
from walrusds.errors import InvalidArgument


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "reindex", help="rebuild index entries from packfiles on Walrus",
        description="Read each blob whole, check it is a valid packfile (footer, trailer, "
        "every value's digest), then in one transaction per pack insert the entries the index "
        "lacks, pointing at the pack. Existing entries are never overwritten. A pack row is "
        "created when none is stored for the blob, ending at the current epoch + 1 so the "
        "renewal worker re-stores it at its next pass. Exit status 1 when a blob was refused "
        "or unreadable. See docs/recovery.md.")
    add_config_arguments(p)
    p.add_argument("blob_ids", nargs="*", metavar="BLOB_ID", help="blobs to reindex")
    p.add_argument("--from-packs", action="store_true",
                   help="every blob a pack row names in state stored, lost or abandoned "
                   "(newest pack first)")
    p.add_argument("--dry-run", action="store_true",
                   help="read and check the blobs, print what would change; change nothing")
    p.add_argument("--epoch", type=non_negative, metavar="N",
                   help="the network's current epoch, when the index does not know it "
                   "(e.g. a database recreated from scratch; `walrus info` tells it)")
    add_audit_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_http_log()
    if not args.blob_ids and not args.from_packs:
        raise InvalidArgument("name the blobs to reindex, or pass --from-packs")
    for blob_id in args.blob_ids:
        if not BLOB_ID_RE.match(blob_id):
            raise InvalidArgument(f"{blob_id[:60]!r} is not a Walrus blob ID (43 URL-safe "
                                  "base64 characters)")
    config = with_aggregators(config_from_args(args), args.aggregator)
    report = asyncio.run(reindex_dataset(config, args.blob_ids, from_packs=args.from_packs,
                                         dry_run=args.dry_run, epoch=args.epoch))
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))
    return report.exit_code


def _line(b: BlobResult, dry_run: bool) -> str:
    if b.error is not None:
        return f"  blob {b.blob_id}: {b.status}: {b.error}"
    verb = "would insert" if dry_run else "inserted"
    pack = ("a new pack row" if b.created_pack and b.pack_id is None
            else f"pack {b.pack_id}{' (created)' if b.created_pack else ''}"
            if b.pack_id is not None else "no pack row")
    fixed = f"; live counters of {b.counters_fixed} pack rows fixed" if b.counters_fixed else ""
    return (f"  blob {b.blob_id}: {b.status}: {pack}, {b.entries} entries: {b.inserted} {verb}, "
            f"{b.kept} kept (already indexed), {b.skipped} skipped{fixed}")


def render(report: ReindexReport) -> str:
    epoch = ("end epoch unknown (pass --epoch N for a real run)" if report.end_epoch is None
             else f"new pack rows end at epoch {report.end_epoch} (current + 1)")
    head = "walrusds reindex" + (" (dry run)" if report.dry_run else "")
    lines = [f"{head}: {len(report.blobs)} blobs; {epoch}", ""]
    if not report.blobs:
        lines.append("  no pack row names a blob: nothing to do")
    for b in report.blobs:
        lines.append(_line(b, report.dry_run))
        lines += [f"      skipped: {note}" for note in b.notes]
    t = report.totals()
    lines += ["", f"totals: {t['restored']} restored, {t['unchanged']} unchanged, "
              f"{t['refused']} refused, {t['unreadable']} unreadable; {t['inserted']} "
              f"{'would be inserted' if report.dry_run else 'inserted'}, {t['kept']} kept, "
              f"{t['skipped']} skipped; {t['packs_created']} pack rows "
              f"{'to create' if report.dry_run else 'created'}"]
    if report.dry_run:
        lines.append("dry run: nothing was changed")
    return "\n".join(lines)
