"""The ledger of what clients were told, and the checker of the reliability plan's invariants.

A test records every write's outcome in a :class:`Ledger`: acknowledged, or unknown (any error:
the call may have committed before the connection, the server or Postgres went away). For each
key the ledger keeps the set of values the key may hold now (``None`` = absent). After the
chaos, :func:`check_invariants` compares the service, its Postgres schema and the emulator with
the ledger (reliability-plan.md §8):

- I1 every key acknowledged and not later deleted reads back byte-identical;
- I2 every entry points at a ``stored`` pack whose blob the emulator certified and keeps
  past the current epoch; every stored pack's blob exists on the emulator until its end epoch
  (the index never claims a later end epoch than Walrus);
- I3 every (offset, size) fits inside its pack; no two non-empty live entries of one pack
  overlap;
- I4 no read returned bytes that differ from what was written (every Get through the ledger
  is checked as it happens, and ``walrusds verify --full`` finds nothing CORRUPT);
- I5 Has, GetSize, Get and Lookup agree for every key; Query(keys_only) lists exactly the live
  keys;
- I6 keys acknowledged as deleted stay deleted (nothing resurrects);
- I7 keys whose write had no known outcome hold one of the values they may hold, never another;
  a Batch without a known outcome is all or nothing;
- I8 every journaled blob no live entry uses (an abandoned upload, a stored pack with no live
  entry) is reported as ORPHAN by ``walrusds verify``, and nothing else is.

Plus the bookkeeping the design promises: each pack's live counters equal the entries pointing
at it; a staged entry is claimed only by a ``building`` pack, or by the abandoned pack that
quarantines entries set aside as corrupt (walrusds/index/packs.py ``quarantine``); no pack is
``lost``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import psycopg
from psycopg import sql as pgsql

from tests.chaos.ledger import (
    ABSENT,
    BatchRecord,
    EntryRow,
    Findings,
    Ledger,
    PackRow,
    Target,
    Value,
    _digest,
)
from walrusds.audit.classify import Verdict
from walrusds.audit.verifier import VerifyOptions, verify_dataset
from walrusds.config import Config, MetricsConfig, PostgresConfig, WalrusConfig
from walrusds.keys import show_key
from walrusds.v1 import datastore_pb2 as pb

__all__ = ["ABSENT", "BatchRecord", "Findings", "Ledger", "Target", "Value", "assert_invariants",
           "audit_config", "check_invariants", "quiesce"]


async def check_invariants(target: Target, ledger: Ledger, *, verify: bool = True,
                           settle: bool = True, sample: int = 400) -> Findings:
    """Check I1-I8 and the bookkeeping; return what is wrong (nothing, when all holds).

    Every key's value is checked against the index (its size and SHA-256 must be a value a
    client may have left there), ``verify`` reads every packed byte back from Walrus against
    those digests, and ``sample`` keys (all of them when there are fewer) are read through
    every read call of the API. With ``settle`` (no write in flight) keys whose writes had no
    known outcome narrow to the value they hold, so later checks are exact."""
    found = Findings()
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        found.seconds[name] = round(now - clock, 2)
        clock = now

    for line in ledger.bad_reads:
        found.add("I4/I7", f"a read returned bytes the key never held: {line}")
    async with await psycopg.AsyncConnection.connect(target.dsn) as conn:
        # one snapshot: a flush committing between two reads must not look like damage
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        async with conn.transaction():
            packs, entries, claims, quarantined = await _load(conn, target.schema)
    _check_index(found, packs, entries, claims, quarantined)
    lap("index")
    blobs: dict[str, dict[str, Any]] = {}
    epoch: int | None = None
    if target.control is not None:
        state = await target.control.state()
        epoch = int(state["epoch"])
        blobs = {b["blob_id"]: b for b in state["blobs"]}
        _check_blobs(found, packs, entries, blobs, epoch)
    lap("emulator")
    _check_held(found, entries, ledger, settle=settle)
    await _check_api(found, target.api, ledger, {e.key: e.size for e in entries},
                     sample=sample)
    _check_batches(found, ledger)
    lap("api")
    if verify and target.emulator_url is not None:
        await _check_verify(found, target, packs, entries, blobs)
    lap("verify")
    return found


async def quiesce(target: Target, *, staged: bool = True, within: float = 120.0) -> None:
    """Wait until no pack is being built and (with ``staged``) nothing waits to be packed: the
    flushers are done, so verify and the checker see the same packs."""
    deadline = time.monotonic() + within
    s = pgsql.Identifier(target.schema)
    query = pgsql.SQL(
        "SELECT (SELECT count(*) FROM {}.packs WHERE state = 'building'), "
        "(SELECT count(*) FROM {}.entries WHERE pack_id IS NULL AND claim_pack_id IS NULL)"
    ).format(s, s)
    while True:
        async with await psycopg.AsyncConnection.connect(target.dsn, autocommit=True) as conn:
            cur = await conn.execute(query)
            row = await cur.fetchone()
        assert row is not None
        building, waiting = row
        if building == 0 and (waiting == 0 or not staged):
            return
        assert time.monotonic() < deadline, (
            f"the flushers did not finish: {building} packs building, {waiting} staged")
        await asyncio.sleep(0.2)


def assert_invariants(found: Findings) -> None:
    if found.violations:
        shown = "\n  ".join(found.violations[:40])
        more = len(found.violations) - 40
        raise AssertionError(f"{len(found.violations)} invariant violations:\n  {shown}"
                             + (f"\n  ... and {more} more" if more > 0 else ""))


# -- the index --------------------------------------------------------------------------------

async def _load(conn: psycopg.AsyncConnection[Any], schema: str) -> tuple[
        dict[int, PackRow], list[EntryRow], dict[bytes, int], set[bytes]]:
    s = pgsql.Identifier(schema)
    cur = await conn.execute(pgsql.SQL(
        "SELECT id, state, blob_id, pack_bytes, data_bytes, live_bytes, live_entries, end_epoch "
        "FROM {}.packs ORDER BY id").format(s))
    packs = {int(r[0]): PackRow(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]),
                                int(r[6]), r[7]) for r in await cur.fetchall()}
    cur = await conn.execute(pgsql.SQL(
        "SELECT key, size, digest, pack_id, pack_offset, claim_pack_id FROM {}.entries"
    ).format(s), binary=True)
    entries = [EntryRow(bytes(r[0]), int(r[1]), bytes(r[2]), r[3], r[4], r[5])
               for r in await cur.fetchall()]
    claims = {e.key: e.claim for e in entries if e.claim is not None}
    cur = await conn.execute(pgsql.SQL(
        "SELECT DISTINCT key FROM {}.data_loss_events WHERE kind = 'corrupt'").format(s))
    quarantined = {bytes(r[0]) for r in await cur.fetchall()}
    return packs, entries, claims, quarantined


def _check_index(found: Findings, packs: dict[int, PackRow], entries: list[EntryRow],
                 claims: dict[bytes, int], quarantined: set[bytes]) -> None:
    by_pack: dict[int, list[EntryRow]] = {}
    for e in entries:
        if e.pack_id is not None:
            by_pack.setdefault(e.pack_id, []).append(e)
    for e in entries:
        if e.pack_id is None:
            continue
        p = packs.get(e.pack_id)
        if p is None:
            found.add("I2", f"{show_key(e.key)} points at pack {e.pack_id}, which has no row")
        elif p.state != "stored":
            found.add("I2", f"{show_key(e.key)} points at pack {p.id} in state {p.state!r}")
        if e.claim is not None:
            found.add("claims", f"packed entry {show_key(e.key)} is still claimed by pack "
                      f"{e.claim}")
    for p in packs.values():
        members = by_pack.get(p.id, [])
        live = (len(members), sum(e.size for e in members))
        if (p.live_entries, p.live_bytes) != live:
            found.add("counters", f"pack {p.id} ({p.state}) counts {p.live_entries} live "
                      f"entries / {p.live_bytes} bytes, but {live[0]} entries / {live[1]} bytes "
                      "point at it")
        if p.state == "stored" and (p.blob_id is None or p.end_epoch is None):
            found.add("I2", f"stored pack {p.id} has no blob ID or end epoch")
        if p.state == "lost":
            found.add("I2", f"pack {p.id} (blob {p.blob_id}) is lost")
        ordered = sorted((e for e in members if e.size > 0), key=lambda e: e.offset or 0)
        for e in ordered:
            assert e.offset is not None
            if e.offset < 0 or e.offset + e.size > p.data_bytes:
                found.add("I3", f"{show_key(e.key)} at {e.offset}+{e.size} lies outside the "
                          f"{p.data_bytes} data bytes of pack {p.id}")
        for a, b in itertools.pairwise(ordered):
            assert a.offset is not None and b.offset is not None
            if a.offset + a.size > b.offset:
                found.add("I3", f"{show_key(a.key)} and {show_key(b.key)} overlap in pack {p.id}")
    for key, claim in claims.items():
        p = packs.get(claim)
        if p is None:
            found.add("claims", f"{show_key(key)} is claimed by pack {claim}, which has no row")
        elif p.state == "building":
            continue
        elif p.state == "abandoned" and p.blob_id is None and key in quarantined:
            continue  # set aside as corrupt: quarantined on purpose
        else:
            found.add("claims", f"staged {show_key(key)} is claimed by pack {p.id} in state "
                      f"{p.state!r}")


def _check_blobs(found: Findings, packs: dict[int, PackRow], entries: list[EntryRow],
                 blobs: dict[str, dict[str, Any]], epoch: int) -> None:
    used = {e.pack_id for e in entries if e.pack_id is not None}
    named = {p.blob_id for p in packs.values() if p.blob_id}
    found.unjournaled_blobs = sum(1 for b in blobs if b not in named)
    for p in packs.values():
        if p.state != "stored" or p.blob_id is None:
            continue
        blob = blobs.get(p.blob_id)
        if blob is None:
            found.add("I2", f"stored pack {p.id}: the emulator never certified blob {p.blob_id}")
            continue
        if int(blob["size"]) != p.pack_bytes:
            found.add("I3", f"stored pack {p.id}: blob {p.blob_id} holds {blob['size']} bytes, "
                      f"the index says {p.pack_bytes}")
        if p.end_epoch is not None and p.end_epoch > int(blob["end_epoch"]):
            found.add("I2", f"stored pack {p.id}: the index says end epoch {p.end_epoch}, Walrus "
                      f"keeps blob {p.blob_id} only until {blob['end_epoch']}")
        if p.id in used and (p.end_epoch is None or p.end_epoch <= epoch or not blob["live"]):
            found.add("I2", f"pack {p.id} has live entries but its blob {p.blob_id} ends at "
                      f"epoch {blob['end_epoch']} (index: {p.end_epoch}), now {epoch}")


# -- the API ----------------------------------------------------------------------------------

LOOKUP_CHUNK = 256


async def _query_keys(api: Any) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    async for r in api.Query(pb.QueryRequest(keys_only=True), timeout=120):
        for e in r.entries:
            out[bytes(e.key)] = int(e.size)
    return out


async def _get(api: Any, key: bytes) -> Value:
    try:
        return bytes((await api.Get(pb.GetRequest(key=key), timeout=60)).value)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return ABSENT
        raise


class _Failed(Exception):
    """A read through the API failed with something else than NOT_FOUND."""


async def _read_three(api: Any, key: bytes) -> tuple[Value, bool, int | None]:
    """Get, Has and GetSize of one key."""
    try:
        value = await _get(api, key)
        exists = bool((await api.Has(pb.HasRequest(key=key), timeout=60)).exists)
        try:
            size: int | None = (await api.GetSize(pb.GetSizeRequest(key=key), timeout=60)).size
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            size = None
    except grpc.aio.AioRpcError as exc:
        raise _Failed(f"{exc.code().name} {exc.details()}") from None
    return value, exists, size


def _check_held(found: Findings, entries: list[EntryRow], ledger: Ledger, *,
                settle: bool) -> None:
    """I1, I6, I7 against the index: each key holds (by size and SHA-256) a value it may hold."""
    rows = {e.key: e for e in entries}
    for key in sorted(set(rows) - set(ledger.possible)):
        if not (ledger.foreign and key.startswith(ledger.foreign)):
            found.add("I5/I6", f"the index holds {show_key(key)}, which no client ever wrote "
                      "(or which was deleted)")
    for key, states in ledger.possible.items():
        row = rows.get(key)
        held: Value | bool = ABSENT
        if row is not None:
            held = next((v for v in states if v is not None and len(v) == row.size
                         and hashlib.sha256(v).digest() == row.digest), False)
        if held is False or held not in states:
            name = ("I1" if held is ABSENT else "I6" if states == {ABSENT} else "I4/I7")
            what = "nothing" if row is None else f"{row.size} bytes that no client wrote there"
            found.add(name, f"{show_key(key)} holds {what}; a client was told "
                      f"{sorted(_digest(v) for v in states)}")
        elif settle:
            assert not isinstance(held, bool)
            ledger.read(key, held, settle=True)


async def _check_api(found: Findings, api: Any, ledger: Ledger, held: dict[bytes, int], *,
                     sample: int) -> None:
    """I5 (and I1/I4 through the read path): Query lists exactly the keys the index holds with
    their sizes, Lookup SIZE agrees for every key, and for a sample of keys Lookup GET, Get,
    Has and GetSize return what the key holds."""
    listed = await _query_keys(api)
    found.keys = len(listed)
    keys = ledger.keys()
    expected = {k: next(iter(ledger.possible[k])) for k in keys
                if len(ledger.possible[k]) == 1}
    for key in sorted(set(listed) | set(held)):
        if listed.get(key) != held.get(key):
            found.add("I5", f"{show_key(key)}: Query says {listed.get(key, 'absent')}, the "
                      f"index {held.get(key, 'absent')}")
    for i in range(0, len(keys), LOOKUP_CHUNK * 16):
        chunk = keys[i:i + LOOKUP_CHUNK * 16]
        sizes = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_SIZE, keys=chunk),
                                 timeout=120)
        for key, r in zip(chunk, sizes.results, strict=True):
            size = r.size if r.status == pb.LOOKUP_STATUS_FOUND else None
            if size != listed.get(key):
                found.add("I5", f"{show_key(key)}: Lookup SIZE says {size}, Query "
                          f"{listed.get(key)}")
    picked = _sample(keys, sample)
    values: dict[bytes, Value] = {}
    for i in range(0, len(picked), LOOKUP_CHUNK):
        chunk = picked[i:i + LOOKUP_CHUNK]
        got = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=chunk), timeout=120)
        for key, r in zip(chunk, got.results, strict=True):
            if r.status == pb.LOOKUP_STATUS_ERROR:
                found.add("I1/I4", f"Lookup of {show_key(key)} failed: "
                          f"{_code(r.error_code)} {r.error_message}")
            elif r.status == pb.LOOKUP_STATUS_FOUND:
                values[key] = bytes(r.value)
            elif r.status == pb.LOOKUP_STATUS_NOT_FOUND:
                values[key] = ABSENT
    sem = asyncio.Semaphore(16)

    async def one(key: bytes) -> None:
        async with sem:
            try:
                value, exists, size = await _read_three(api, key)
            except _Failed as exc:
                found.add("I1/I4", f"reading {show_key(key)} failed: {exc}")
                return
        ledger.read(key, value)
        if key in values and value != values[key]:
            found.add("I5", f"{show_key(key)}: Get read {_digest(value)}, Lookup "
                      f"{_digest(values[key])}")
        if key in expected and value != expected[key]:
            found.add("I1/I4", f"{show_key(key)}: Get read {_digest(value)}, the key holds "
                      f"{_digest(expected[key])}")
        if exists != (value is not None) or size != (None if value is None else len(value)):
            found.add("I5", f"{show_key(key)}: Has {exists}, GetSize {size}, Get "
                      f"{_digest(value)}")

    await asyncio.gather(*(one(k) for k in picked))


def _code(number: int) -> str:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return str(code.name)
    return str(number)


def _sample(keys: Sequence[bytes], n: int) -> list[bytes]:
    if len(keys) <= n:
        return list(keys)
    step = len(keys) / n
    return [keys[int(i * step)] for i in range(n)]


def _check_batches(found: Findings, ledger: Ledger) -> None:
    """I7: an unknown Batch whose keys nobody wrote since is all or nothing. Each key was read
    back (the checker narrowed what it may hold to what it holds): an op is applied when its key
    holds the op's value, not applied when it holds a value it could hold before the Batch."""
    for b in ledger.unknown_batches:
        if len(b.ops) < 2 or any(ledger.written_at.get(k, 0) > b.seq for k in b.ops):
            continue
        if any(len(ledger.possible[k]) != 1 for k in b.ops):
            continue  # not read back since
        held = {k: next(iter(ledger.possible[k])) for k in b.ops}
        applied = sum(held[k] == v for k, v in b.ops.items())
        untouched = sum(held[k] in b.before[k] for k in b.ops)
        if applied == len(b.ops):
            found.batches_applied += 1
        elif untouched == len(b.ops):
            found.batches_absent += 1
        else:
            found.add("I7", f"a Batch of {len(b.ops)} ops whose outcome was unknown is torn: "
                      f"{applied} ops applied, {untouched} keys as before")


# -- walrusds verify --------------------------------------------------------------------------

def audit_config(target: Target) -> Config:
    assert target.emulator_url is not None
    return Config(dataset=target.dataset,
                  postgres=PostgresConfig(dsn=target.dsn, schema=target.schema, pool_min=1,
                                          pool_max=2),
                  walrus=WalrusConfig(aggregators=(target.emulator_url,), deadline=30.0),
                  metrics=MetricsConfig(listen="")).validate()


async def _check_verify(found: Findings, target: Target, packs: dict[int, PackRow],
                        entries: Iterable[EntryRow], blobs: dict[str, dict[str, Any]]) -> None:
    """I8 (and I1/I4 once more, from Walrus itself): ``walrusds verify`` over every entry."""
    report = await verify_dataset(audit_config(target), VerifyOptions(sample=None))
    for verdict in (Verdict.CORRUPT, Verdict.LOST):
        if report.counts[verdict]:
            shown = "; ".join(f.line() for f in report.problems if f.verdict is verdict)
            found.add("I1/I4", f"verify finds {report.counts[verdict]} {verdict.value}: {shown}")
    pointed = {e.pack_id for e in entries if e.pack_id is not None}
    in_use = {p.blob_id for p in packs.values() if p.id in pointed}
    expected = {p.id for p in packs.values()
                if p.blob_id is not None and p.blob_id not in in_use
                and (p.state == "abandoned" or (p.state == "stored" and p.id not in pointed))
                and blobs.get(p.blob_id, {}).get("live", target.control is None)}
    reported = {f.pack_id for f in report.problems if f.verdict is Verdict.ORPHAN}
    found.orphans = len(reported)
    if reported != expected:
        found.add("I8", f"verify reports orphan packs {sorted(p for p in reported if p)}, the "
                  f"journal has {sorted(expected)}")
