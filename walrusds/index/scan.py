"""Keyset pagination over the entries table: ``WHERE key > last ORDER BY key LIMIT page``.

No SQL OFFSET, no long-lived cursor or transaction: every page is an independent indexed range
scan, so memory is bounded by the page size whatever the number of keys, and a slow consumer
holds nothing open in Postgres. Key filters become SQL predicates on ``bytea`` (bytewise, like
Go's ``strings.Compare``); the prefix becomes a range, never a ``LIKE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run
from walrusds.keys import KeyRange
from walrusds.query.spec import CompareOp, KeyCompare

_SQL_OPS = {
    CompareOp.EQUAL: "=",
    CompareOp.NOT_EQUAL: "<>",
    CompareOp.GREATER: ">",
    CompareOp.GREATER_OR_EQUAL: ">=",
    CompareOp.LESS: "<",
    CompareOp.LESS_OR_EQUAL: "<=",
}


class Scanner:
    """Fetches pages of (key, size) in key order from one schema's entries."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self._cache: dict[tuple[Any, ...], str] = {}

    async def page(self, rng: KeyRange, filters: Sequence[KeyCompare], after: bytes | None,
                   descending: bool, limit: int) -> list[tuple[bytes, int]]:
        """Up to ``limit`` (key, size) rows in ``rng`` passing ``filters``, strictly after
        ``after`` in scan order (ascending, or descending)."""
        shape = (rng.low is not None, rng.high is not None, after is not None, descending,
                 tuple(f.op for f in filters))
        query = self._cache.get(shape)
        if query is None:
            query = self._cache[shape] = self._compose(shape)
        params: list[Any] = []
        if rng.low is not None:
            params.append(rng.low)
        if rng.high is not None:
            params.append(rng.high)
        if after is not None:
            params.append(after)
        params.extend(f.key for f in filters)
        params.append(limit)

        async def go(conn: AsyncConn) -> list[tuple[bytes, int]]:
            # psycopg's C loader gives binary bytea as bytes: the rows are then returned as
            # fetched (copying every key cost a sixth of a keys-only Query's time); only the
            # pure-Python loader's buffers are copied.
            cur = await conn.execute(query, params, binary=True)
            rows: list[tuple[bytes, int]] = await cur.fetchall()
            if rows and type(rows[0][0]) is not bytes:
                return [(bytes(k), s) for k, s in rows]
            return rows

        return await run(self.pool, go, "query")

    def _compose(self, shape: tuple[Any, ...]) -> str:
        has_low, has_high, has_after, descending, ops = shape
        preds: list[sql.Composable] = []
        if has_low:
            preds.append(sql.SQL("key >= %b"))
        if has_high:
            preds.append(sql.SQL("key < %b"))
        if has_after:
            preds.append(sql.SQL("key < %b" if descending else "key > %b"))
        for op in ops:
            preds.append(sql.SQL("key " + _SQL_OPS[op] + " %b"))
        where = sql.SQL(" AND ").join(preds) if preds else sql.SQL("true")
        return sql.SQL(
            "SELECT key, size FROM {}.entries WHERE {} ORDER BY key {} LIMIT %s"
        ).format(sql.Identifier(self.schema), where,
                 sql.SQL("DESC" if descending else "ASC")).as_string(None)
