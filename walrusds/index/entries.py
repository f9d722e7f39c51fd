"""Entries: the key → (size, digest, staged bytes | pack location) index.

Every method is one Postgres round trip (a Batch is one transaction in one pipeline). SQL is
composed once per schema with ``psycopg.sql.Identifier``; nothing is built from request data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run

# Rows per statement when a Batch is written: bounded so one statement's parameters stay small.
BATCH_CHUNK_ROWS = 1000
BATCH_CHUNK_BYTES = 64 * 1024 * 1024
#: Values of this size or more are staged one statement each rather than in an array.
ROW_BY_ROW_BYTES = 128 * 1024


@dataclass(frozen=True, slots=True)
class Located:
    """Where an entry's bytes are: staged in Postgres (``value``) or inside a pack on Walrus."""

    key: bytes
    size: int
    digest: bytes
    value: bytes | None
    pack_id: int | None = None
    pack_offset: int | None = None
    blob_id: str | None = None
    pack_state: str | None = None
    end_epoch: int | None = None
    #: Size of the whole packfile (prefetch decisions); None when unknown.
    pack_bytes: int | None = None

    @property
    def staged(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class PutRow:
    key: bytes
    value: bytes
    digest: bytes


def _q(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


class Index:
    """The entries and packs tables of one schema, behind a connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        # A Put of the identical bytes (same size and digest) matches the WHERE clause of the
        # DO UPDATE as false and changes nothing; anything else restages the key and drops any
        # pack location or flusher claim.
        self._upsert = _q(
            "INSERT INTO {s}.entries AS e (key, size, digest, value, staged_at) "
            "SELECT k, length(v), d, v, now() FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[])"
            " AS t(k, v, d) "
            "ON CONFLICT (key) DO UPDATE SET size = excluded.size, digest = excluded.digest, "
            "value = excluded.value, pack_id = NULL, pack_offset = NULL, claim_pack_id = NULL, "
            "staged_at = excluded.staged_at "
            "WHERE e.size <> excluded.size OR e.digest <> excluded.digest", schema)
        self._put_one = _q(
            "INSERT INTO {s}.entries AS e (key, size, digest, value, staged_at) "
            "VALUES (%b, %s, %b, %b, now()) "
            "ON CONFLICT (key) DO UPDATE SET size = excluded.size, digest = excluded.digest, "
            "value = excluded.value, pack_id = NULL, pack_offset = NULL, claim_pack_id = NULL, "
            "staged_at = excluded.staged_at "
            "WHERE e.size <> excluded.size OR e.digest <> excluded.digest", schema)
        self._delete_one = _q("DELETE FROM {s}.entries WHERE key = %b", schema)
        self._delete_many = _q("DELETE FROM {s}.entries WHERE key = ANY(%b::bytea[])", schema)
        self._sizes = _q("SELECT key, size FROM {s}.entries WHERE key = ANY(%b::bytea[])",
                         schema)
        self._size_one = _q("SELECT size FROM {s}.entries WHERE key = %b", schema)
        self._locate = _q(
            "SELECT e.key, e.size, e.digest, e.value, e.pack_id, e.pack_offset, p.blob_id, "
            "p.state, p.end_epoch, p.pack_bytes FROM {s}.entries e "
            "LEFT JOIN {s}.packs p ON p.id = e.pack_id WHERE e.key = ANY(%b::bytea[])", schema)
        self._locate_one = _q(
            "SELECT e.key, e.size, e.digest, e.value, e.pack_id, e.pack_offset, p.blob_id, "
            "p.state, p.end_epoch, p.pack_bytes FROM {s}.entries e "
            "LEFT JOIN {s}.packs p ON p.id = e.pack_id WHERE e.key = %b", schema)
        self._disk_usage = _q(
            "SELECT (SELECT coalesce(sum(live_bytes), 0) FROM {s}.packs "
            "        WHERE state IN ('stored', 'lost'))"
            "     + (SELECT coalesce(sum(size), 0) FROM {s}.entries WHERE pack_id IS NULL)",
            schema)

    # -- writes --------------------------------------------------------------------------------

    async def put(self, row: PutRow) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._put_one, (row.key, len(row.value), row.digest, row.value))

        await run(self.pool, go, "put")

    async def delete(self, key: bytes) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._delete_one, (key,))

        await run(self.pool, go, "delete")

    async def apply_batch(self, puts: Sequence[PutRow], deletes: Sequence[bytes]) -> None:
        """Apply de-duplicated puts and deletes in one transaction (one pipeline)."""
        if not puts and not deletes:
            return

        async def go(conn: AsyncConn) -> None:
            async with conn.pipeline(), conn.transaction():
                large = [r for r in puts if len(r.value) >= ROW_BY_ROW_BYTES]
                small = [r for r in puts if len(r.value) < ROW_BY_ROW_BYTES] if large else puts
                if large:
                    # One statement per value: the bytes go to libpq as they are, not joined
                    # into an array first (one copy less of every large value).
                    async with conn.cursor() as cur:
                        await cur.executemany(self._put_one, [
                            (r.key, len(r.value), r.digest, r.value) for r in large])
                for chunk in _chunks(small):
                    await conn.execute(self._upsert, (
                        [r.key for r in chunk], [r.value for r in chunk],
                        [r.digest for r in chunk]))
                for i in range(0, len(deletes), 10_000):
                    await conn.execute(self._delete_many, (list(deletes[i:i + 10_000]),))

        await run(self.pool, go, "batch")

    # -- reads ---------------------------------------------------------------------------------

    async def sizes(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        """Sizes of the keys that exist (answers Has and GetSize for many keys at once)."""
        async def go(conn: AsyncConn) -> dict[bytes, int]:
            if len(keys) == 1:
                cur = await conn.execute(self._size_one, (keys[0],))
                row = await cur.fetchone()
                return {} if row is None else {keys[0]: row[0]}
            cur = await conn.execute(self._sizes, (list(keys),), binary=True)
            return {bytes(k): s for k, s in await cur.fetchall()}

        return await run(self.pool, go, "lookup")

    async def locate(self, keys: Sequence[bytes]) -> dict[bytes, Located]:
        """Where each existing key's bytes are, staged bytes included."""
        async def go(conn: AsyncConn) -> dict[bytes, Located]:
            if len(keys) == 1:
                cur = await conn.execute(self._locate_one, (keys[0],), binary=True)
            else:
                cur = await conn.execute(self._locate, (list(keys),), binary=True)
            return {bytes(r[0]): _located(r) for r in await cur.fetchall()}

        return await run(self.pool, go, "locate")

    async def disk_usage(self) -> int:
        async def go(conn: AsyncConn) -> int:
            cur = await conn.execute(self._disk_usage)
            row = await cur.fetchone()
            return int(row[0]) if row else 0

        return await run(self.pool, go, "disk usage")

    async def ping(self) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute("SELECT 1")

        await run(self.pool, go, "ping")


def _located(r: Sequence[Any]) -> Located:
    return Located(key=bytes(r[0]), size=r[1], digest=bytes(r[2]),
                   value=None if r[3] is None else bytes(r[3]), pack_id=r[4], pack_offset=r[5],
                   blob_id=r[6], pack_state=r[7], end_epoch=r[8], pack_bytes=r[9])


def _chunks(rows: Sequence[PutRow]) -> Iterable[Sequence[PutRow]]:
    start, size = 0, 0
    for i, row in enumerate(rows):
        if i > start and (i - start >= BATCH_CHUNK_ROWS or size + len(row.value) >
                          BATCH_CHUNK_BYTES):
            yield rows[start:i]
            start, size = i, 0
        size += len(row.value)
    if start < len(rows):
        yield rows[start:]
