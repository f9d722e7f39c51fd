"""Data-loss events: reads that ended in DATA_LOSS, recorded for operators."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run

__all__ = ["LossLog"]


class LossLog:
    def __init__(self, pool: AsyncConnectionPool[Any], schema: str, node: str) -> None:
        self.pool = pool
        self.node = node
        self._insert = sql.SQL(
            "INSERT INTO {s}.data_loss_events (kind, key, blob_id, detail, node) "
            "VALUES (%s, %b, %s, %s, %s)").format(s=sql.Identifier(schema)).as_string(None)

    async def record(self, kind: str, key: bytes, blob_id: str, detail: str) -> None:
        async def go(conn: AsyncConn) -> None:
            await conn.execute(self._insert, (kind, key, blob_id, detail, self.node))

        await run(self.pool, go, "record data loss")
