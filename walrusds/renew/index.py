"""The renewal worker's SQL: the packs to consider, the epoch estimate, leases, and the
compare-and-set updates that make every step safe to repeat after a crash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run
from walrusds.renew.policy import PackView

__all__ = ["LiveEntry", "RenewIndex"]

_PACK_COLUMNS = ("id, blob_id, end_epoch, registered_epoch, pack_bytes, data_bytes, "
                 "live_bytes, live_entries, cost")


def _q(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


def _view(row: Sequence[Any]) -> PackView:
    return PackView(int(row[0]), str(row[1]), int(row[2]),
                    None if row[3] is None else int(row[3]), int(row[4]), int(row[5]),
                    int(row[6]), int(row[7]), None if row[8] is None else int(row[8]))


@dataclass(frozen=True)
class LiveEntry:
    key: bytes
    offset: int
    size: int
    digest: bytes


class RenewIndex:
    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        s = schema
        self._due = _q(f"SELECT {_PACK_COLUMNS} FROM {{s}}.packs WHERE state = 'stored' "
                       "AND end_epoch <= %s ORDER BY end_epoch, id", s)
        self._sha = _q("SELECT pack_sha256 FROM {s}.packs WHERE id = %s", s)
        self._one = _q(f"SELECT {_PACK_COLUMNS} FROM {{s}}.packs WHERE id = %s", s)
        self._epoch = _q(
            "SELECT current_epoch, floor(extract(epoch FROM now() - epoch_observed_at) / %s) "
            "FROM {s}.walrus_state", s)
        self._observe = _q(
            "UPDATE {s}.walrus_state SET current_epoch = greatest(current_epoch, %s), "
            "epoch_observed_at = CASE WHEN current_epoch IS NULL OR %s > current_epoch "
            "THEN now() ELSE epoch_observed_at END, updated_at = now()", s)
        self._lease = _q(
            "UPDATE {s}.packs SET lease_owner = %s, lease_until = now() + make_interval("
            "secs => %s), updated_at = now() WHERE id = %s AND state = 'stored' "
            "AND end_epoch = %s AND (lease_until IS NULL OR lease_until < now()) RETURNING id",
            s)
        self._release = _q(
            "UPDATE {s}.packs SET lease_owner = NULL, lease_until = NULL WHERE id = %s "
            "AND lease_owner = %s", s)
        self._extended = _q(
            "UPDATE {s}.packs SET end_epoch = greatest(end_epoch, %s), cost = coalesce(cost, 0)"
            " + coalesce(%s, 0), lease_owner = NULL, lease_until = NULL, updated_at = now() "
            "WHERE id = %s AND blob_id = %s AND state = 'stored' AND lease_owner = %s", s)
        self._retire = _q(
            "UPDATE {s}.packs SET state = 'retired', lease_owner = NULL, lease_until = NULL, "
            "updated_at = now() WHERE id = %s AND state = 'stored' AND live_entries = 0 "
            "RETURNING id", s)
        self._lose = _q(
            "UPDATE {s}.packs SET state = 'lost', lease_owner = NULL, lease_until = NULL, "
            "updated_at = now() WHERE id = %s AND state = 'stored' AND live_entries > 0 "
            "AND end_epoch <= %s RETURNING id", s)
        self._live = _q(
            "SELECT key, pack_offset, size, digest FROM {s}.entries WHERE pack_id = %s "
            "AND pack_offset >= %s AND (pack_offset, key) > (%s, %b) "
            "ORDER BY pack_offset, key LIMIT %s", s)
        self._restage = _q(
            "UPDATE {s}.entries e SET value = m.value, pack_id = NULL, pack_offset = NULL, "
            "claim_pack_id = NULL, staged_at = now() "
            "FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[]) AS m(key, value, digest) "
            "WHERE e.key = m.key AND e.pack_id = %s AND e.digest = m.digest", s)

    async def current_epoch(self, epoch_seconds: float) -> int | None:
        """The last epoch a store reported, advanced by the time since at the epoch length."""
        async def go(conn: AsyncConn) -> int | None:
            cur = await conn.execute(self._epoch, (epoch_seconds,))
            row = await cur.fetchone()
            if row is None or row[0] is None:
                return None
            return int(row[0]) + int(row[1] or 0)

        return await run(self.pool, go, "current epoch")

    async def observe_epoch(self, epoch: int) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._observe, (epoch, epoch))

        await run(self.pool, go, "observe epoch")

    async def due(self, before_epoch: int) -> list[PackView]:
        """Stored packs whose end epoch is at or before ``before_epoch``."""
        async def go(conn: AsyncConn) -> list[PackView]:
            cur = await conn.execute(self._due, (before_epoch,))
            return [_view(r) for r in await cur.fetchall()]

        return await run(self.pool, go, "packs due")

    async def pack(self, pack_id: int) -> PackView | None:
        async def go(conn: AsyncConn) -> PackView | None:
            cur = await conn.execute(self._one, (pack_id,))
            row = await cur.fetchone()
            return None if row is None else _view(row)

        return await run(self.pool, go, "load pack")

    async def pack_sha256(self, pack_id: int) -> bytes | None:
        """The packfile's SHA-256 recorded when it was built."""
        async def go(conn: AsyncConn) -> bytes | None:
            cur = await conn.execute(self._sha, (pack_id,))
            row = await cur.fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

        return await run(self.pool, go, "pack digest")

    async def lease(self, p: PackView, owner: str, seconds: float) -> bool:
        """Take the pack for this worker if it is still as planned and nobody holds it."""
        return await self._one_row(self._lease, (owner, seconds, p.pack_id, p.end_epoch),
                                   "lease pack")

    async def release(self, pack_id: int, owner: str) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._release, (pack_id, owner))

        await run(self.pool, go, "release pack")

    async def extended(self, p: PackView, owner: str, end_epoch: int, cost: int | None) -> bool:
        async def go(conn: AsyncConn) -> bool:
            cur = await conn.execute(self._extended, (end_epoch, cost, p.pack_id, p.blob_id,
                                                      owner))
            return cur.rowcount == 1

        return await run(self.pool, go, "record extension")

    async def retire(self, pack_id: int) -> bool:
        return await self._one_row(self._retire, (pack_id,), "retire pack")

    async def lose(self, pack_id: int, current_epoch: int) -> bool:
        return await self._one_row(self._lose, (pack_id, current_epoch), "mark pack lost")

    async def live_entries(self, pack_id: int, after: tuple[int, bytes] | None,
                           limit: int) -> list[LiveEntry]:
        """The next ``limit`` entries pointing at the pack, after ``after`` (offset, key) in
        (offset, key) order. The key breaks ties: an empty value shares its offset with the
        entry that follows it in the packfile."""
        offset, key = after if after is not None else (-1, b"")

        async def go(conn: AsyncConn) -> list[LiveEntry]:
            cur = await conn.execute(self._live, (pack_id, offset, offset, key, limit),
                                     binary=True)
            return [LiveEntry(bytes(k), int(o), int(n), bytes(d))
                    for k, o, n, d in await cur.fetchall()]

        return await run(self.pool, go, "live entries")

    async def restage(self, pack_id: int, moved: Sequence[tuple[bytes, bytes, bytes]]) -> int:
        """Move (key, value, digest) back to staging where the entry still points at the pack
        with the same digest; returns how many moved (a concurrent Delete or Put wins)."""
        async def go(conn: AsyncConn) -> int:
            cur = await conn.execute(self._restage, (
                [k for k, _, _ in moved], [v for _, v, _ in moved], [d for _, _, d in moved],
                pack_id))
            return cur.rowcount

        return await run(self.pool, go, "restage entries")

    async def _one_row(self, query: str, params: Sequence[Any], what: str) -> bool:
        async def go(conn: AsyncConn) -> bool:
            cur = await conn.execute(query, params)
            return await cur.fetchone() is not None

        return await run(self.pool, go, what)
