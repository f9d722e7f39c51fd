"""Indexed keys generated directly in PostgreSQL, shaped like real packed Kubo blocks.

Inserting millions of rows through the service would measure ingest, not lookups. Row ``i``
under prefix ``P`` has the key ``P || hex(sha256(int8send(i)))`` (a 64-character block-like
name; shim/cmd/walrusds-bench and bench/pyclient.py compute the same key), a 256 KiB size, a
digest, and a place in one stored pack, as a flushed entry has. The rows are inserted in key
order with triggers off (the pack live counters are set once at the end), which is what
makes 10M rows take minutes instead of an hour.
"""

from __future__ import annotations

import hashlib
import time

import psycopg

BLOCK = 256 * 1024
PACK_BLOB = "bench-generated-pack"


def gen_key(prefix: str, i: int) -> bytes:
    return prefix.encode() + hashlib.sha256(i.to_bytes(8, "big")).hexdigest().encode()


def generated_pack(conn: psycopg.Connection) -> int:
    """The stored pack the generated rows point at (created once)."""
    row = conn.execute("SELECT id FROM walrusds.packs WHERE blob_id = %s",
                       (PACK_BLOB,)).fetchone()
    if row is not None:
        return int(row[0])
    row = conn.execute(
        "INSERT INTO walrusds.packs (state, blob_id, end_epoch, registered_epoch, stored_at) "
        "VALUES ('stored', %s, 1000, 1, now()) RETURNING id", (PACK_BLOB,)).fetchone()
    assert row is not None
    return int(row[0])


def generate(dsn: str, prefix: str, lo: int, hi: int, chunk: int = 1_000_000) -> float:
    """Insert rows ``lo`` ≤ i < ``hi`` under ``prefix``; the seconds it took."""
    start = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pack = generated_pack(conn)
        conn.execute("SET session_replication_role = replica")  # skip the live-counter triggers
        conn.execute("SET synchronous_commit = off")
        for first in range(lo, hi, chunk):
            last = min(first + chunk, hi)
            conn.execute(
                "INSERT INTO walrusds.entries (key, size, digest, pack_id, pack_offset) "
                "SELECT k, %(block)s, sha256(k), %(pack)s, (i - %(lo)s) * %(block)s FROM ("
                "  SELECT i, convert_to(%(prefix)s, 'UTF8') "
                "         || convert_to(encode(sha256(int8send(i)), 'hex'), 'UTF8') AS k"
                "  FROM generate_series(%(first)s::bigint, %(last)s::bigint - 1) AS i"
                ") AS g ORDER BY k",
                {"block": BLOCK, "pack": pack, "lo": lo, "prefix": prefix, "first": first,
                 "last": last})
        conn.execute("SET session_replication_role = origin")
        conn.execute(
            "UPDATE walrusds.packs p SET live_entries = c.n, live_bytes = c.b, entry_count = c.n,"
            " data_bytes = c.b, pack_bytes = c.b FROM (SELECT count(*) AS n, "
            " coalesce(sum(size), 0) AS b FROM walrusds.entries WHERE pack_id = %s) c "
            "WHERE p.id = %s", (pack, pack))
        conn.execute("VACUUM ANALYZE walrusds.entries")
    return time.monotonic() - start


def count(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM walrusds.entries").fetchone()
        assert row is not None
        return int(row[0])
