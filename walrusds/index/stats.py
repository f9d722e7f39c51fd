"""What an operator pays for, read from the index with the documented views (docs/operations.md).

Everything here reads views over the packs table (one row per Walrus blob) and the partial
index of staged entries; nothing counts the whole entries table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from walrusds.index.pool import AsyncConn, run

__all__ = ["IndexStats", "read_stats"]


@dataclass(frozen=True)
class IndexStats:
    pack_ratio: dict[str, Any]
    staged: dict[str, Any]
    packs_by_state: dict[str, int]
    walrus: dict[str, Any]
    data_loss: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, datetime):
                return value.isoformat()
            if hasattr(value, "is_finite"):  # Decimal
                return float(value)
            return value

        return plain(asdict(self))  # type: ignore[no-any-return]


async def read_stats(pool: AsyncConnectionPool[Any], schema: str) -> IndexStats:
    s = sql.Identifier(schema)

    def q(text: str) -> sql.Composed:
        return sql.SQL(text).format(s=s)

    async def go(conn: AsyncConn) -> IndexStats:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q("SELECT * FROM {s}.pack_ratio"))
            ratio = await cur.fetchone() or {}
            await cur.execute(q("SELECT * FROM {s}.staged_backlog"))
            staged = await cur.fetchone() or {}
            await cur.execute(q("SELECT state, count(*) AS n FROM {s}.packs GROUP BY state "
                                "ORDER BY state"))
            states = {r["state"]: int(r["n"]) for r in await cur.fetchall()}
            await cur.execute(q("SELECT current_epoch, epoch_observed_at, publisher_max_body "
                                "FROM {s}.walrus_state"))
            walrus = await cur.fetchone() or {}
            await cur.execute(q(
                "SELECT count(*) FILTER (WHERE kind = 'corrupt') AS corrupt, "
                "count(*) FILTER (WHERE kind = 'lost') AS lost, max(at) AS latest "
                "FROM {s}.data_loss_events"))
            loss = await cur.fetchone() or {}
        return IndexStats(dict(ratio), dict(staged), states, dict(walrus), dict(loss))

    return await run(pool, go, "read stats")
