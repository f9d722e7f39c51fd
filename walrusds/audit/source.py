"""The read-only SQL behind ``walrusds verify``: what to check, page by page.

Every query is bounded: pages over indexes with keyset pagination (never SQL OFFSET), staged
values fetched in byte-bounded chunks, the sample drawn with ``TABLESAMPLE SYSTEM`` (random
pages, not a scan of the table). Nothing here writes; the pool it runs on refuses writes anyway
(:mod:`walrusds.audit.db`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.entries import Located
from walrusds.index.pool import AsyncConn, run

__all__ = ["AuditIndex", "EpochInfo", "OrphanCandidate", "PackRef", "StagedRef"]


def _q(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """The epoch walrusds last learned from a store, and that epoch advanced by the time
    elapsed since at the configured epoch length (the renewal worker's own estimate)."""

    recorded: int | None
    estimated: int | None


@dataclass(frozen=True, slots=True)
class PackRef:
    pack_id: int
    blob_id: str | None
    state: str
    end_epoch: int | None


@dataclass(frozen=True, slots=True)
class StagedRef:
    staged_at: datetime | None
    key: bytes
    size: int


@dataclass(frozen=True, slots=True)
class OrphanCandidate:
    pack_id: int
    blob_id: str
    state: str
    pack_bytes: int
    end_epoch: int | None


class AuditIndex:
    """Read-only queries over one schema's entries and packs."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        s = schema
        self._epoch = _q(
            "SELECT current_epoch, current_epoch + floor(extract(epoch FROM now() - "
            "coalesce(epoch_observed_at, now())) / %s)::int FROM {s}.walrus_state", s)
        self._totals = _q(
            "SELECT (SELECT coalesce(sum(live_entries), 0) FROM {s}.packs WHERE live_entries > 0),"
            " (SELECT count(*) FROM {s}.entries WHERE pack_id IS NULL)", s)
        self._reltuples = (
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'entries'")
        self._sample = _q("SELECT key FROM {s}.entries TABLESAMPLE SYSTEM (%s) LIMIT %s", s)
        self._locate = _q(
            "SELECT e.key, e.size, e.digest, e.pack_id, e.pack_offset, p.blob_id, p.state, "
            "p.end_epoch FROM {s}.entries e LEFT JOIN {s}.packs p ON p.id = e.pack_id "
            "WHERE e.key = ANY(%b::bytea[])", s)
        self._packs = _q(
            "SELECT id, blob_id, state, end_epoch FROM {s}.packs WHERE id > %s ORDER BY id "
            "LIMIT %s", s)
        # The pack's facts are read with its entries, not taken from the listing: a pack listed
        # while 'building' may have been committed (and entries pointed at it) since.
        self._pack_entries = _q(
            "SELECT e.key, e.size, e.digest, e.pack_offset, p.blob_id, p.state, p.end_epoch "
            "FROM {s}.entries e JOIN {s}.packs p ON p.id = e.pack_id WHERE e.pack_id = %s "
            "AND (e.pack_offset, e.key) > (%s, %b) ORDER BY e.pack_offset, e.key LIMIT %s", s)
        self._staged_first = _q(
            "SELECT staged_at, key, size FROM {s}.entries WHERE pack_id IS NULL "
            "ORDER BY staged_at, key LIMIT %s", s)
        self._staged_next = _q(
            "SELECT staged_at, key, size FROM {s}.entries WHERE pack_id IS NULL "
            "AND (staged_at, key) > (%s, %b) ORDER BY staged_at, key LIMIT %s", s)
        self._staged_values = _q(
            "SELECT key, size, digest, value FROM {s}.entries WHERE key = ANY(%b::bytea[]) "
            "AND pack_id IS NULL", s)
        # A blob is an orphan only if no pack that still serves entries names it: a build
        # abandoned after its upload and then redone with the same members names the same blob.
        self._orphans = _q(
            "SELECT p.id, p.blob_id, p.state, p.pack_bytes, p.end_epoch FROM {s}.packs p "
            "WHERE p.blob_id IS NOT NULL "
            "AND (p.state = 'abandoned' OR (p.state = 'stored' AND p.live_entries = 0)) "
            "AND NOT EXISTS (SELECT 1 FROM {s}.packs q WHERE q.blob_id = p.blob_id "
            "AND q.id <> p.id AND q.state IN ('stored', 'lost') AND q.live_entries > 0) "
            "ORDER BY p.id", s)

    async def epoch(self, epoch_seconds: float) -> EpochInfo:
        async def go(conn: AsyncConn) -> EpochInfo:
            cur = await conn.execute(self._epoch, (epoch_seconds,))
            row = await cur.fetchone()
            if row is None:
                return EpochInfo(None, None)
            return EpochInfo(row[0], row[1])

        return await run(self.pool, go, "read the current epoch")

    async def totals(self) -> tuple[int, int]:
        """(packed entries by the packs' live counters, staged entries): a full run's total
        for the progress bar, without counting the entries table."""
        async def go(conn: AsyncConn) -> tuple[int, int]:
            cur = await conn.execute(self._totals)
            row = await cur.fetchone()
            return (0, 0) if row is None else (int(row[0]), int(row[1]))

        return await run(self.pool, go, "count entries")

    async def estimated_entries(self) -> int | None:
        """The planner's estimate of the number of entries; None before the first ANALYZE."""
        async def go(conn: AsyncConn) -> int | None:
            cur = await conn.execute(self._reltuples, (self.schema,))
            row = await cur.fetchone()
            return None if row is None or row[0] is None or row[0] < 0 else int(row[0])

        return await run(self.pool, go, "estimate entries")

    async def sample_keys(self, percent: float, limit: int) -> list[bytes]:
        """Keys of the rows on about ``percent`` % of the table's pages, chosen at random."""
        async def go(conn: AsyncConn) -> list[bytes]:
            cur = await conn.execute(self._sample, (percent, limit), binary=True)
            return [bytes(r[0]) for r in await cur.fetchall()]

        return await run(self.pool, go, "sample entries")

    async def locate(self, keys: Sequence[bytes]) -> list[Located]:
        """Where each existing key is, without staged bytes (``value`` None, ``pack_id`` None
        for a staged entry); see :meth:`staged_values`."""
        async def go(conn: AsyncConn) -> list[Located]:
            cur = await conn.execute(self._locate, (list(keys),), binary=True)
            return [Located(bytes(r[0]), int(r[1]), bytes(r[2]), None, r[3], r[4], r[5], r[6],
                            r[7]) for r in await cur.fetchall()]

        return await run(self.pool, go, "locate entries")

    async def packs(self, after_id: int, limit: int) -> list[PackRef]:
        async def go(conn: AsyncConn) -> list[PackRef]:
            cur = await conn.execute(self._packs, (after_id, limit))
            return [PackRef(int(r[0]), r[1], str(r[2]), r[3]) for r in await cur.fetchall()]

        return await run(self.pool, go, "list packs")

    async def pack_entries(self, pack: PackRef, after: tuple[int, bytes],
                           limit: int) -> list[Located]:
        """The next entries of ``pack`` in offset order after (offset, key). Offsets are not
        unique (an empty value starts where the next value starts), hence the key."""
        async def go(conn: AsyncConn) -> list[Located]:
            cur = await conn.execute(self._pack_entries,
                                     (pack.pack_id, after[0], after[1], limit), binary=True)
            return [Located(bytes(k), int(n), bytes(d), None, pack.pack_id, int(o), b, st, end)
                    for k, n, d, o, b, st, end in await cur.fetchall()]

        return await run(self.pool, go, "list pack entries")

    async def staged(self, after: tuple[datetime | None, bytes] | None,
                     limit: int) -> list[StagedRef]:
        """The next staged entries, oldest first, over the staged-entries index."""
        async def go(conn: AsyncConn) -> list[StagedRef]:
            if after is None:
                cur = await conn.execute(self._staged_first, (limit,), binary=True)
            else:
                cur = await conn.execute(self._staged_next, (after[0], after[1], limit),
                                         binary=True)
            return [StagedRef(t, bytes(k), int(n)) for t, k, n in await cur.fetchall()]

        return await run(self.pool, go, "list staged entries")

    async def staged_values(self, keys: Sequence[bytes]) -> list[Located]:
        """The keys that are still staged, with their bytes (a key packed or deleted since it
        was listed is left out)."""
        async def go(conn: AsyncConn) -> list[Located]:
            cur = await conn.execute(self._staged_values, (list(keys),), binary=True)
            return [Located(bytes(k), int(n), bytes(d), bytes(v))
                    for k, n, d, v in await cur.fetchall()]

        return await run(self.pool, go, "read staged values")

    async def orphan_candidates(self) -> list[OrphanCandidate]:
        async def go(conn: AsyncConn) -> list[OrphanCandidate]:
            cur = await conn.execute(self._orphans)
            return [OrphanCandidate(int(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4])
                    for r in await cur.fetchall()]

        return await run(self.pool, go, "list orphan packs")
