"""The flush protocol's SQL: claim staged entries into a pack, journal the upload, commit.

Each step is one short transaction, so a crash between any two leaves the index coherent:

1. :meth:`PackIndex.claim` creates a ``building`` pack row with a lease and claims the oldest
   unclaimed staged entries for it (``FOR UPDATE SKIP LOCKED``), up to a byte target.
2. :meth:`PackIndex.record_upload` journals the blob ID as soon as the publisher answers.
3. :meth:`PackIndex.commit` marks the pack ``stored`` and points every entry *still claimed by
   this pack with the same digest* at it, dropping the staged bytes. Entries overwritten or
   deleted during the upload are skipped; their bytes count as dead in the pack.

Until step 3 the staged bytes stay in Postgres: nothing acknowledged is ever lost. A pack stuck
in ``building`` past its lease is taken over by :meth:`PackIndex.take_over_stale`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run

CLAIM_PAGE = 1000


@dataclass(frozen=True)
class StagedStats:
    entries: int
    bytes: int
    oldest: datetime | None
    newest: datetime | None
    now: datetime


@dataclass(frozen=True)
class Member:
    key: bytes
    value: bytes
    digest: bytes


@dataclass(frozen=True)
class StoredBlob:
    blob_id: str
    start_epoch: int | None
    end_epoch: int
    encoded_size: int
    cost: int | None


def _q(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


class PackIndex:
    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        s = schema
        self._stats = _q(
            "SELECT count(*), coalesce(sum(size), 0), min(staged_at), max(staged_at), now() "
            "FROM {s}.entries WHERE pack_id IS NULL AND claim_pack_id IS NULL", s)
        self._new_pack = _q(
            "INSERT INTO {s}.packs (state, lease_owner, lease_until, target_bytes) "
            "VALUES ('building', %s, now() + make_interval(secs => %s), %s) RETURNING id", s)
        self._candidates = _q(
            "SELECT key, size, staged_at FROM {s}.entries "
            "WHERE pack_id IS NULL AND claim_pack_id IS NULL AND size <= %s "
            "AND (staged_at, key) > (%s, %b) "
            "ORDER BY staged_at, key LIMIT %s FOR UPDATE SKIP LOCKED", s)
        self._candidates_first = _q(
            "SELECT key, size, staged_at FROM {s}.entries "
            "WHERE pack_id IS NULL AND claim_pack_id IS NULL AND size <= %s "
            "ORDER BY staged_at, key LIMIT %s FOR UPDATE SKIP LOCKED", s)
        self._mark_claimed = _q(
            "UPDATE {s}.entries SET claim_pack_id = %s WHERE key = ANY(%b::bytea[])", s)
        self._drop_pack = _q("DELETE FROM {s}.packs WHERE id = %s", s)
        self._members = _q(
            "SELECT key, value, digest FROM {s}.entries WHERE claim_pack_id = %s "
            "AND pack_id IS NULL ORDER BY key", s)
        self._lease = _q(
            "UPDATE {s}.packs SET lease_until = now() + make_interval(secs => %s), "
            "updated_at = now() WHERE id = %s AND state = 'building' AND lease_owner = %s", s)
        self._record_build = _q(
            "UPDATE {s}.packs SET pack_bytes = %s, data_bytes = %s, entry_count = %s, "
            "pack_sha256 = %b, updated_at = now() "
            "WHERE id = %s AND state = 'building' AND lease_owner = %s", s)
        self._record_upload = _q(
            "UPDATE {s}.packs SET blob_id = %s, uploaded_at = now(), updated_at = now() "
            "WHERE id = %s AND state = 'building' AND lease_owner = %s", s)
        self._lock_pack = _q(
            "SELECT state, lease_owner FROM {s}.packs WHERE id = %s FOR UPDATE", s)
        self._store_pack = _q(
            "UPDATE {s}.packs SET state = 'stored', blob_id = %s, registered_epoch = %s, "
            "end_epoch = %s, encoded_size = %s, cost = %s, stored_at = now(), "
            "updated_at = now(), lease_owner = NULL, lease_until = NULL WHERE id = %s", s)
        self._point = _q(
            "UPDATE {s}.entries e SET pack_id = %s, pack_offset = m.off, value = NULL, "
            "claim_pack_id = NULL "
            "FROM unnest(%b::bytea[], %s::bigint[], %b::bytea[]) AS m(key, off, digest) "
            "WHERE e.key = m.key AND e.claim_pack_id = %s AND e.digest = m.digest "
            "AND e.pack_id IS NULL", s)
        self._release = _q(
            "UPDATE {s}.entries SET claim_pack_id = NULL WHERE claim_pack_id = %s", s)
        self._abandon = _q(
            "UPDATE {s}.packs SET state = 'abandoned', lease_owner = NULL, lease_until = NULL, "
            "updated_at = now() WHERE id = %s AND state = 'building'", s)
        self._stale = _q(
            "UPDATE {s}.packs SET lease_owner = %s, lease_until = now() + make_interval(secs => "
            "%s), updated_at = now() WHERE id = (SELECT id FROM {s}.packs WHERE state = "
            "'building' AND lease_until < now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING id, target_bytes", s)
        self._epoch = _q(
            "UPDATE {s}.walrus_state SET current_epoch = greatest(current_epoch, %s), "
            "epoch_observed_at = CASE WHEN current_epoch IS NULL OR %s > current_epoch "
            "THEN now() ELSE epoch_observed_at END, updated_at = now()", s)
        self._learn_limit = _q(
            "UPDATE {s}.walrus_state SET publisher_max_body = least(coalesce("
            "publisher_max_body, %s), %s), updated_at = now()", s)
        self._release_owned = _q(
            "UPDATE {s}.entries SET claim_pack_id = NULL WHERE claim_pack_id = ANY("
            "ARRAY(SELECT id FROM {s}.packs WHERE state = 'building' AND lease_owner = %s))", s)
        self._abandon_owned = _q(
            "UPDATE {s}.packs SET state = 'abandoned', lease_owner = NULL, lease_until = NULL, "
            "updated_at = now() WHERE state = 'building' AND lease_owner = %s", s)
        self._quarantine = _q(
            "WITH q AS (INSERT INTO {s}.packs (state) VALUES ('abandoned') RETURNING id) "
            "UPDATE {s}.entries SET claim_pack_id = (SELECT id FROM q) "
            "WHERE claim_pack_id = %s AND pack_id IS NULL AND key = ANY(%b::bytea[])", s)
        self._record_corrupt = _q(
            "INSERT INTO {s}.data_loss_events (kind, key, detail, node) "
            "SELECT 'corrupt', k, %s, %s FROM unnest(%b::bytea[]) AS k", s)
        self._state = _q(
            "SELECT current_epoch, publisher_max_body FROM {s}.walrus_state", s)

    async def staged_stats(self) -> StagedStats:
        async def go(conn: AsyncConn) -> StagedStats:
            cur = await conn.execute(self._stats)
            n, size, oldest, newest, now = await cur.fetchone()  # type: ignore[misc]
            return StagedStats(n, int(size), oldest, newest, now)

        return await run(self.pool, go, "staged stats")

    async def claim(self, owner: str, lease: float, target: int,
                    pack_size: Callable[[Sequence[tuple[bytes, int]]], int],
                    max_entry: int) -> tuple[int, list[tuple[bytes, int]]] | None:
        """Claim the oldest unclaimed staged entries whose pack fits ``target`` bytes (at least
        one entry). Entries larger than ``max_entry`` can never fit a pack and are left staged.
        Returns (pack id, claimed (key, size)) or None if nothing can be packed."""
        async def go(conn: AsyncConn) -> tuple[int, list[tuple[bytes, int]]] | None:
            async with conn.transaction():
                cur = await conn.execute(self._new_pack, (owner, lease, target))
                row = await cur.fetchone()
                assert row is not None
                pack_id = int(row[0])
                chosen: list[tuple[bytes, int]] = []
                last: tuple[Any, bytes] | None = None
                full = False
                # The packfile grows by a fixed amount per entry (its bytes plus its trailer
                # record), measured against the first entry: linear, not quadratic, in the
                # number of entries; the total is checked exactly at the end.
                used = 0
                while not full:
                    if last is None:
                        cur = await conn.execute(self._candidates_first,
                                                 (max_entry, CLAIM_PAGE), binary=True)
                    else:
                        cur = await conn.execute(self._candidates, (
                            max_entry, last[0], last[1], CLAIM_PAGE), binary=True)
                    rows = await cur.fetchall()
                    for key, size, staged_at in rows:
                        entry = (bytes(key), int(size))
                        grow = (pack_size([entry]) if not chosen
                                else pack_size([chosen[0], entry]) - pack_size(chosen[:1]))
                        if chosen and used + grow > target:
                            full = True
                            break
                        chosen.append(entry)
                        used += grow
                        last = (staged_at, entry[0])
                    if len(rows) < CLAIM_PAGE:
                        break
                while len(chosen) > 1 and pack_size(chosen) > target:
                    chosen.pop()
                if not chosen:
                    await conn.execute(self._drop_pack, (pack_id,))
                    return None
                await conn.execute(self._mark_claimed, (pack_id, [k for k, _ in chosen]))
                return pack_id, chosen

        return await run(self.pool, go, "claim")

    async def members(self, pack_id: int) -> list[Member]:
        """The entries still claimed by ``pack_id``, in key order (the deterministic order of
        the pack's members)."""
        async def go(conn: AsyncConn) -> list[Member]:
            cur = await conn.execute(self._members, (pack_id,), binary=True)
            return [Member(bytes(k), bytes(v), bytes(d)) for k, v, d in await cur.fetchall()]

        return await run(self.pool, go, "load pack members")

    async def extend_lease(self, pack_id: int, owner: str, lease: float) -> bool:
        return await self._update(self._lease, (lease, pack_id, owner), "extend lease")

    async def record_build(self, pack_id: int, owner: str, pack_bytes: int, data_bytes: int,
                           entries: int, sha256: bytes) -> bool:
        return await self._update(self._record_build, (pack_bytes, data_bytes, entries,
                                                       sha256, pack_id, owner), "record build")

    async def record_upload(self, pack_id: int, owner: str, blob_id: str) -> bool:
        return await self._update(self._record_upload, (blob_id, pack_id, owner),
                                  "record upload")

    async def commit(self, pack_id: int, owner: str, blob: StoredBlob,
                     placed: Sequence[tuple[bytes, int, bytes]]) -> int | None:
        """Mark the pack stored and point still-claimed entries at it.

        ``placed`` is (key, offset, digest) per member. Returns the number of entries now
        pointing at the pack, or None when the pack is no longer ours (lease lost).
        """
        async def go(conn: AsyncConn) -> int | None:
            async with conn.transaction():
                cur = await conn.execute(self._lock_pack, (pack_id,))
                row = await cur.fetchone()
                if row is None or row[0] != "building" or row[1] != owner:
                    return None
                await conn.execute(self._store_pack, (
                    blob.blob_id, blob.start_epoch, blob.end_epoch, blob.encoded_size,
                    blob.cost, pack_id))
                cur = await conn.execute(self._point, (
                    pack_id, [k for k, _, _ in placed], [o for _, o, _ in placed],
                    [d for _, _, d in placed], pack_id))
                pointed = cur.rowcount
                await conn.execute(self._release, (pack_id,))
                if blob.start_epoch is not None:
                    await conn.execute(self._epoch, (blob.start_epoch, blob.start_epoch))
                return pointed

        return await run(self.pool, go, "commit pack")

    async def abandon(self, pack_id: int) -> None:
        """Give a building pack up: its entries go back to the staged pool."""
        async def go(conn: AsyncConn) -> None:
            async with conn.transaction():
                await conn.execute(self._release, (pack_id,))
                await conn.execute(self._abandon, (pack_id,))

        await run(self.pool, go, "abandon pack")

    async def abandon_owned(self, owner: str) -> None:
        """Give up every building pack ``owner`` holds (a clean shutdown mid-flush)."""
        async def go(conn: AsyncConn) -> None:
            async with conn.transaction():
                await conn.execute(self._release_owned, (owner,))
                await conn.execute(self._abandon_owned, (owner,))

        await run(self.pool, go, "abandon owned packs")

    async def quarantine(self, pack_id: int, keys: Sequence[bytes], owner: str) -> int:
        """Take staged entries whose bytes no longer match their digest out of ``pack_id`` and
        out of the staged pool for good: they stay claimed by an abandoned pack, so no flusher
        packs (or retries) them, and each is recorded as a 'corrupt' data-loss event. A Put of
        different bytes, or a Delete, clears the claim as for any entry. Returns how many."""
        async def go(conn: AsyncConn) -> int:
            async with conn.transaction():
                cur = await conn.execute(self._quarantine, (pack_id, list(keys)))
                moved = cur.rowcount
                await conn.execute(self._record_corrupt, (
                    "staged bytes do not match the digest recorded at Put; not packed",
                    owner, list(keys)))
                return moved

        return await run(self.pool, go, "quarantine corrupt staged entries")

    async def take_over_stale(self, owner: str, lease: float) -> tuple[int, int] | None:
        """Take the lease of one building pack whose lease expired: (pack id, target)."""
        async def go(conn: AsyncConn) -> tuple[int, int] | None:
            cur = await conn.execute(self._stale, (owner, lease))
            row = await cur.fetchone()
            return None if row is None else (int(row[0]), int(row[1]))

        return await run(self.pool, go, "take over stale pack")

    async def learn_publisher_limit(self, refused_size: int, limit: int) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._learn_limit, (refused_size, limit))

        await run(self.pool, go, "learn publisher limit")

    async def walrus_state(self) -> tuple[int | None, int | None]:
        async def go(conn: AsyncConn) -> tuple[int | None, int | None]:
            cur = await conn.execute(self._state)
            row = await cur.fetchone()
            return (None, None) if row is None else (row[0], row[1])

        return await run(self.pool, go, "walrus state")

    async def _update(self, query: str, params: Sequence[Any], what: str) -> bool:
        async def go(conn: AsyncConn) -> bool:
            cur = await conn.execute(query, params)
            return cur.rowcount == 1

        return await run(self.pool, go, what)
