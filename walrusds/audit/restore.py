"""The reindex SQL: one short transaction per pack that points missing keys at the pack.

What the transaction does, in this order (``walrusds.migrations`` 0001 explains the columns):

1. lock every ``packs`` row that names the blob (``FOR UPDATE``), so the live counters computed
   in step 4 cannot race a concurrent Delete's trigger;
2. find which of the pack's keys the index lacks;
3. if any: take the newest ``stored`` row for the blob, or create one (``stored``, sizes from the
   footer and trailer, the packfile's SHA-256, ``end_epoch`` as the caller decides), and insert
   the missing entries — ``ON CONFLICT (key) DO NOTHING``, so an entry written meanwhile, which
   may be newer, is never overwritten;
4. recompute ``live_bytes``/``live_entries`` of those pack rows from their entries. The insert
   triggers already count what this transaction adds, but a ``TRUNCATE entries`` (the disaster
   reindex is for) fires no trigger and leaves the old counts behind: counting once makes
   them right whatever happened before, and a second run finds nothing to change.

An entry row satisfies the table's CHECKs by construction: packed (``value`` NULL, ``pack_id``
and ``pack_offset`` set), a 32-byte digest, a size from the trailer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.costs import encoded_length
from walrusds.errors import CorruptData
from walrusds.index.pool import AsyncConn, run
from walrusds.pack import PackEntry

__all__ = ["PackFacts", "RestoreIndex", "Restored"]

#: Keys per statement when looking up or inserting entries.
CHUNK = 1000


def _q(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


@dataclass(frozen=True)
class PackFacts:
    """A verified packfile: its blob, sizes, digest, and the entries to restore."""

    blob_id: str
    pack_bytes: int
    data_bytes: int
    entry_count: int
    #: SHA-256 of the whole blob, None when a value in it failed its digest (the bytes read
    #: are then not the bytes built).
    sha256: bytes | None
    entries: tuple[PackEntry, ...]


@dataclass(frozen=True)
class Restored:
    """What one pack's transaction did (or, in a dry run, would do)."""

    pack_id: int | None
    created_pack: bool
    inserted: int
    kept: int
    counters_fixed: int


@dataclass(frozen=True)
class _PackRow:
    pack_id: int
    state: str
    pack_bytes: int
    sha256: bytes | None


class RestoreIndex:
    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        s = schema
        self._from_packs = _q(
            "SELECT blob_id FROM {s}.packs WHERE blob_id IS NOT NULL "
            "AND state IN ('stored', 'lost', 'abandoned') GROUP BY blob_id "
            "ORDER BY max(id) DESC", s)
        self._rows = _q("SELECT id, state, pack_bytes, pack_sha256 FROM {s}.packs "
                        "WHERE blob_id = %s ORDER BY id", s)
        self._lock_rows = self._rows + " FOR UPDATE"
        self._existing = _q("SELECT key FROM {s}.entries WHERE key = ANY(%b::bytea[])", s)
        self._new_pack = _q(
            "INSERT INTO {s}.packs (state, blob_id, pack_bytes, data_bytes, entry_count, "
            "end_epoch, encoded_size, pack_sha256, stored_at) "
            "VALUES ('stored', %s, %s, %s, %s, %s, %s, %s, now()) RETURNING id", s)
        self._insert = _q(
            "INSERT INTO {s}.entries (key, size, digest, pack_id, pack_offset) "
            "SELECT m.key, m.size, m.digest, %s, m.off "
            "FROM unnest(%b::bytea[], %s::bigint[], %b::bytea[], %s::bigint[]) "
            "AS m(key, size, digest, off) ON CONFLICT (key) DO NOTHING", s)
        self._recount = _q(
            "UPDATE {s}.packs p SET live_bytes = c.bytes, live_entries = c.n, updated_at = now() "
            "FROM (SELECT coalesce(sum(size), 0) AS bytes, count(*)::int AS n FROM {s}.entries "
            "WHERE pack_id = %s) c WHERE p.id = %s "
            "AND (p.live_bytes, p.live_entries) IS DISTINCT FROM (c.bytes, c.n)", s)

    async def blob_ids_from_packs(self) -> list[str]:
        """Every blob a pack row names in a state that may hold indexed data, newest first,
        so that when two packs hold one key the newer pack's copy is restored."""
        async def go(conn: AsyncConn) -> list[str]:
            cur = await conn.execute(self._from_packs)
            return [str(r[0]) for r in await cur.fetchall()]

        return await run(self.pool, go, "list blobs")

    async def plan(self, facts: PackFacts) -> Restored:
        """What :meth:`apply` would do, with reads only (a dry run)."""
        async def go(conn: AsyncConn) -> Restored:
            rows = await self._pack_rows(conn, facts, lock=False)
            missing = await self._missing(conn, facts.entries)
            stored = _target(rows, facts)
            return Restored(stored.pack_id if stored else None, bool(missing) and not stored,
                            len(missing), len(facts.entries) - len(missing), 0)

        return await run(self.pool, go, "plan reindex")

    async def apply(self, facts: PackFacts, end_epoch: int) -> Restored:
        """Point the keys the index lacks at the pack, in one transaction."""
        async def go(conn: AsyncConn) -> Restored:
            async with conn.transaction():
                rows = await self._pack_rows(conn, facts, lock=True)
                stored = _target(rows, facts)
                missing = await self._missing(conn, facts.entries)
                pack_id = stored.pack_id if stored else None
                inserted = 0
                if missing and pack_id is None:
                    cur = await conn.execute(self._new_pack, (
                        facts.blob_id, facts.pack_bytes, facts.data_bytes, facts.entry_count,
                        end_epoch, encoded_length(facts.pack_bytes), facts.sha256))
                    row = await cur.fetchone()
                    assert row is not None
                    pack_id = int(row[0])
                if missing:
                    assert pack_id is not None
                    for chunk in _chunks(missing):
                        cur = await conn.execute(self._insert, (
                            pack_id, [e.key for e in chunk], [e.size for e in chunk],
                            [e.digest for e in chunk], [e.offset for e in chunk]))
                        inserted += cur.rowcount
                fixed = 0
                for pid in sorted({r.pack_id for r in rows} | ({pack_id} if pack_id else set())):
                    cur = await conn.execute(self._recount, (pid, pid))
                    fixed += cur.rowcount
            return Restored(pack_id, stored is None and pack_id is not None, inserted,
                            len(facts.entries) - inserted, fixed)

        return await run(self.pool, go, "reindex pack")

    async def _pack_rows(self, conn: AsyncConn, facts: PackFacts, *,
                         lock: bool) -> list[_PackRow]:
        cur = await conn.execute(self._lock_rows if lock else self._rows, (facts.blob_id,))
        return [_PackRow(int(r[0]), str(r[1]), int(r[2]), None if r[3] is None else bytes(r[3]))
                for r in await cur.fetchall()]

    async def _missing(self, conn: AsyncConn, entries: Sequence[PackEntry]) -> list[PackEntry]:
        missing: list[PackEntry] = []
        for chunk in _chunks(entries):
            cur = await conn.execute(self._existing, ([e.key for e in chunk],), binary=True)
            present = {bytes(r[0]) for r in await cur.fetchall()}
            missing.extend(e for e in chunk if e.key not in present)
        return missing


def _target(rows: Sequence[_PackRow], facts: PackFacts) -> _PackRow | None:
    """The newest ``stored`` row for the blob, after checking it describes these very bytes."""
    stored = [r for r in rows if r.state == "stored"]
    if not stored:
        return None
    row = stored[-1]
    if row.pack_bytes != facts.pack_bytes or (
            row.sha256 is not None and facts.sha256 is not None and row.sha256 != facts.sha256):
        raise CorruptData(f"pack {row.pack_id} records blob {facts.blob_id} as "
                          f"{row.pack_bytes} bytes with another SHA-256 than the "
                          f"{facts.pack_bytes} bytes read: not pointing entries at it")
    return row


def _chunks(entries: Sequence[PackEntry]) -> Iterator[Sequence[PackEntry]]:
    for i in range(0, len(entries), CHUNK):
        yield entries[i:i + CHUNK]
