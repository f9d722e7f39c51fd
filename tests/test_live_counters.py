"""packs.live_bytes / live_entries follow every change of entries.pack_id, per statement.

The statement triggers of migration 3 sum each statement's moves per pack; these checks run
statements that touch several packs at once, in every direction, and compare the counters
with a recount after each one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import psycopg

from walrusds.index.migrate import migrate

Sql = Callable[..., list[tuple[Any, ...]]]


async def _migrated(pg_dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await migrate(conn, schema, "ds")


def _counters_match(sql: Sql) -> list[tuple[int, int, int]]:
    counted = sql("SELECT p.id, p.live_bytes, p.live_entries, "
                  "coalesce(sum(e.size), 0), count(e.key) "
                  "FROM {s}.packs p LEFT JOIN {s}.entries e ON e.pack_id = p.id "
                  "GROUP BY p.id ORDER BY p.id")
    for pack, live_bytes, live_entries, bytes_, entries in counted:
        assert (live_bytes, live_entries) == (bytes_, entries), f"pack {pack}"
    return [(r[0], r[1], r[2]) for r in counted]


def _packed_rows(keys: list[bytes], pack: int) -> list[tuple[Any, ...]]:
    return [(k, len(k) * 10, hashlib.sha256(k).digest(), pack, i) for i, k in enumerate(keys)]


async def test_counters_follow_multi_pack_statements(pg_dsn: str, schema: str,
                                                     sql: Sql) -> None:
    await _migrated(pg_dsn, schema)
    a, b = (sql("INSERT INTO {s}.packs (state) VALUES ('building') RETURNING id")[0][0]
            for _ in range(2))
    rows = _packed_rows([f"/a/{i}".encode() for i in range(50)], a) + \
        _packed_rows([f"/b/{i}".encode() for i in range(30)], b)
    # One INSERT into two packs (as reindex does).
    sql("INSERT INTO {s}.entries (key, size, digest, pack_id, pack_offset) "
        "SELECT * FROM unnest(%s::bytea[], %s::bigint[], %s::bytea[], %s::bigint[], "
        "%s::bigint[])", *map(list, zip(*rows, strict=True)))
    assert [(p, n) for p, _, n in _counters_match(sql)] == [(a, 50), (b, 30)]
    # One UPDATE moving rows both ways between the packs (as compaction repoints).
    sql("UPDATE {s}.entries SET pack_id = CASE WHEN pack_id = %s THEN %s ELSE %s END "
        "WHERE key LIKE '/a/1%%' OR key LIKE '/b/2%%'", a, b, a)
    _counters_match(sql)
    # An UPDATE that does not move anything changes nothing.
    before = _counters_match(sql)
    sql("UPDATE {s}.entries SET pack_offset = pack_offset + 1")
    assert _counters_match(sql) == before
    # Restaging (a Put over packed keys): out of their packs.
    sql("UPDATE {s}.entries SET pack_id = NULL, pack_offset = NULL, "
        "value = decode(repeat('00', size::int), 'hex') WHERE key LIKE '/a/3%%'")
    _counters_match(sql)
    # The staging upsert over packed keys (ON CONFLICT DO UPDATE) and a new key in one go.
    sql("INSERT INTO {s}.entries AS e (key, size, digest, value) VALUES "
        "('/b/1', 3, %s, 'abc'), ('/new', 3, %s, 'abc') ON CONFLICT (key) DO UPDATE "
        "SET size = excluded.size, digest = excluded.digest, value = excluded.value, "
        "pack_id = NULL, pack_offset = NULL", b"d" * 32, b"d" * 32)
    _counters_match(sql)
    # One DELETE across both packs and staged rows.
    sql("DELETE FROM {s}.entries WHERE key LIKE '/a/4%%' OR key LIKE '/b/%%' OR key = '/new'")
    counters = _counters_match(sql)
    assert all(n >= 0 for _, _, n in counters)
