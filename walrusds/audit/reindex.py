"""``walrusds reindex``: rebuild index rows from self-describing packfiles on Walrus.

For disaster recovery, when the entries table is lost or damaged: every packfile names its
entries (key, offset, size, SHA-256) in its trailer (docs/packfile.md), so the index rows of a
pack can be rebuilt from the blob alone. Each blob is read whole (memory bounded by one pack)
and checked completely — footer, trailer and every value's digest — before anything is
written; a blob that is not a valid packfile is refused and changes nothing. Then one
transaction per pack (:mod:`walrusds.audit.restore`) inserts the keys the index lacks and never
touches a key it has: an existing entry may be newer than the pack.

Entries that cannot be trusted are skipped, not restored: a value that fails its digest, a key
the service would refuse (``walrusds.keys.check_key`` with this node's limit), or a value that
does not match the multihash its Kubo block key names (Put refuses those too).

A pack row created here has an unknown real lifetime, so its ``end_epoch`` is the current epoch
plus one: the renewal worker finds it due at its next pass (``renew.margin_epochs`` ≥ 1) and
re-stores the blob, which teaches the true end epoch. It must not be the current epoch itself:
the worker treats a pack that has reached its end epoch as expired and marks it lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from walrusds.audit.db import open_audit_pool, open_audit_store
from walrusds.audit.restore import PackFacts, Restored, RestoreIndex
from walrusds.audit.source import AuditIndex
from walrusds.client.protocol import BlobStore
from walrusds.config import Config
from walrusds.errors import (
    BlobNotFound,
    ConfigError,
    CorruptData,
    InvalidArgument,
    PackFormatError,
    WalrusError,
)
from walrusds.keys import check_key, show_key
from walrusds.pack import FOOTER_SIZE, check_value, parse_footer, parse_trailer
from walrusds.verify import verify_block

__all__ = ["BlobResult", "ReindexReport", "read_pack", "reindex", "reindex_dataset"]

log = logging.getLogger(__name__)

#: Reasons kept per blob for skipped entries (all are counted).
MAX_NOTES = 20


@dataclass
class BlobResult:
    blob_id: str
    #: restored (keys inserted), unchanged (nothing missing), refused (not a valid packfile or
    #: a conflicting pack row), unreadable (the aggregators do not serve it).
    status: str
    pack_id: int | None = None
    created_pack: bool = False
    entries: int = 0
    inserted: int = 0
    kept: int = 0
    skipped: int = 0
    counters_fixed: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class ReindexReport:
    dry_run: bool
    end_epoch: int | None
    blobs: list[BlobResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(b.status in ("refused", "unreadable") for b in self.blobs)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def totals(self) -> dict[str, int]:
        keys = ("entries", "inserted", "kept", "skipped", "counters_fixed")
        out = {k: sum(getattr(b, k) for b in self.blobs) for k in keys}
        out["packs_created"] = sum(b.created_pack for b in self.blobs)
        for status in ("restored", "unchanged", "refused", "unreadable"):
            out[status] = sum(b.status == status for b in self.blobs)
        return out

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "end_epoch": self.end_epoch,
                "exit_code": self.exit_code, "totals": self.totals(),
                "blobs": [b.as_json() for b in self.blobs]}


def read_pack(blob_id: str, data: bytes, *, max_key_size: int) -> tuple[PackFacts, list[str]]:
    """Check a whole blob as a packfile; the entries to restore and why others are skipped.

    The footer and the trailer must be intact, or the blob is not treated as a pack at all
    (:class:`walrusds.errors.PackFormatError`). A value that fails its SHA-256 digest only
    skips that entry: the pack's other entries are still good, and losing them too would turn
    one bad byte into the loss of a whole pack.
    """
    view = memoryview(data)
    if len(view) < FOOTER_SIZE:
        raise PackFormatError(f"truncated pack: {len(view)} bytes is shorter than the "
                              f"{FOOTER_SIZE}-byte footer")
    footer = parse_footer(view[-FOOTER_SIZE:], pack_size=len(view))
    start = footer.trailer_offset
    entries = parse_trailer(view[start:start + footer.trailer_length], footer)
    keep = []
    skipped: list[str] = []
    intact = True
    for e in entries:
        value = view[e.offset:e.end]
        try:
            check_value(e, value)
        except CorruptData as exc:
            intact = False
            skipped.append(_note(e.key, exc))
            continue
        try:
            check_key(e.key, max_key_size)
            verify_block(e.key, bytes(value))
        except (InvalidArgument, CorruptData) as exc:
            skipped.append(_note(e.key, exc))
            continue
        keep.append(e)
    # Every byte of an intact pack was checked, so its SHA-256 is the one it was built with;
    # with a bad value it is unknown (the renewal worker then re-checks nothing it cannot).
    sha256 = hashlib.sha256(data).digest() if intact else None
    facts = PackFacts(blob_id, len(data), footer.trailer_offset, footer.entry_count, sha256,
                      tuple(keep))
    return facts, skipped


def _note(key: bytes, exc: Exception) -> str:
    """Why an entry was skipped, naming its key once."""
    text = str(exc)
    return text if show_key(key) in text else f"key {show_key(key)}: {text}"


async def reindex_dataset(config: Config, blob_ids: Sequence[str], *, from_packs: bool,
                          dry_run: bool, epoch: int | None = None) -> ReindexReport:
    """The whole command: blobs given and/or named by pack rows, against the configured
    Postgres (read-only for a dry run) and aggregators.

    New pack rows end at the current epoch + 1, the current epoch being the larger of the
    index's estimate (as the renewal worker computes it) and ``epoch``; with neither known, only
    a dry run may proceed.
    """
    store = open_audit_store(config, "reindex")
    try:
        pool = await open_audit_pool(config, read_only=dry_run)
        try:
            schema = config.postgres.schema
            index = RestoreIndex(pool, schema)
            known = (await AuditIndex(pool, schema).epoch(config.renew.epoch_seconds)).estimated
            epochs = [e for e in (known, epoch) if e is not None]
            if not epochs and not dry_run:
                raise ConfigError("the current Walrus epoch is unknown (nothing was stored "
                                  "since this index was created): pass --epoch N")
            names = list(dict.fromkeys(
                [*blob_ids, *(await index.blob_ids_from_packs() if from_packs else [])]))
            return await reindex(index, store, names,
                                 end_epoch=max(epochs) + 1 if epochs else None,
                                 dry_run=dry_run, max_key_size=config.limits.max_key_size)
        finally:
            await pool.close()
    finally:
        await store.aclose()


async def reindex(index: RestoreIndex, store: BlobStore, blob_ids: Sequence[str], *,
                  end_epoch: int | None, dry_run: bool, max_key_size: int) -> ReindexReport:
    """Reindex each blob in turn. ``end_epoch`` is required unless ``dry_run``."""
    if not dry_run and end_epoch is None:
        raise ValueError("end_epoch is required to reindex")
    report = ReindexReport(dry_run, end_epoch)
    for blob_id in blob_ids:
        result = await _one(index, store, blob_id, end_epoch=end_epoch, dry_run=dry_run,
                            max_key_size=max_key_size)
        log.info("reindex %s: %s (%d inserted, %d kept, %d skipped)%s", blob_id,
                 result.status, result.inserted, result.kept, result.skipped,
                 f": {result.error}" if result.error else "")
        report.blobs.append(result)
    return report


async def _one(index: RestoreIndex, store: BlobStore, blob_id: str, *, end_epoch: int | None,
               dry_run: bool, max_key_size: int) -> BlobResult:
    try:
        data = await store.read_blob(blob_id)
    except BlobNotFound:
        return BlobResult(blob_id, "unreadable", error="every aggregator answers 404: the "
                          "blob expired, was deleted, or never existed")
    except WalrusError as exc:
        return BlobResult(blob_id, "unreadable", error=str(exc))
    finally:
        store.forget(blob_id)  # read once; keep the cache for nothing
    try:
        facts, skipped = await asyncio.to_thread(read_pack, blob_id, data,
                                                 max_key_size=max_key_size)
    except PackFormatError as exc:
        return BlobResult(blob_id, "refused", error=f"not a valid walrusds packfile: {exc}")
    del data
    result = BlobResult(blob_id, "unchanged", entries=len(facts.entries) + len(skipped),
                        skipped=len(skipped), notes=skipped[:MAX_NOTES])
    try:
        if dry_run:
            done: Restored = await index.plan(facts)
        else:
            assert end_epoch is not None
            done = await index.apply(facts, end_epoch)
    except CorruptData as exc:
        result.status, result.error = "refused", str(exc)
        return result
    result.pack_id, result.created_pack = done.pack_id, done.created_pack
    result.inserted, result.kept, result.counters_fixed = done.inserted, done.kept, \
        done.counters_fixed
    if done.inserted:
        result.status = "restored"
    return result
