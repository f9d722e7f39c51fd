"""`walrusds reindex`: index rows rebuilt from packfiles after the index is lost."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.audit.conftest import SQL, Rig, blocks, cli_env, snapshot, walrusds
from walrusds.errors import ConfigError
from walrusds.pack import build_pack
from walrusds.renew import RenewWorker
from walrusds.renew.policy import Action
from walrusds.verify import block_key


def kubo_blocks(n: int, size: int = 700) -> dict[bytes, bytes]:
    values = [os.urandom(size) for _ in range(n)]
    return {block_key(v): v for v in values}


async def three_packs(rig: Rig) -> None:
    for i in range(3):
        await rig.put({**kubo_blocks(6), **blocks(4, tag=f"p{i}-")})
        await rig.flush()


def counters(sql: SQL) -> list[tuple[object, ...]]:
    return sql("SELECT id, live_bytes, live_entries FROM {s}.packs ORDER BY id")


def blob_ids(sql: SQL) -> list[str]:
    return [r[0] for r in sql("SELECT blob_id FROM {s}.packs WHERE state = 'stored' "
                              "ORDER BY id")]


async def test_reindex_after_truncate_restores_every_key(rig: Rig, sql: SQL) -> None:
    await three_packs(rig)
    before = counters(sql)
    packs = sql("SELECT count(*) FROM {s}.packs")
    sql("TRUNCATE {s}.entries")
    assert sql("SELECT count(*) FROM {s}.entries") == [(0,)]

    report = await rig.reindex(from_packs=True)
    t = report.totals()
    assert (t["restored"], t["inserted"], t["kept"], t["skipped"], t["packs_created"]) == (
        3, 30, 0, 0, 0)
    assert report.exit_code == 0
    # TRUNCATE fires no trigger: the stale live counters were recounted, not doubled
    assert t["counters_fixed"] == 3
    assert counters(sql) == before
    assert sql("SELECT count(*) FROM {s}.packs") == packs
    await rig.check_all()

    # idempotent: a second run changes nothing at all
    state = snapshot(sql)
    again = await rig.reindex(from_packs=True)
    assert snapshot(sql) == state
    t = again.totals()
    assert (t["unchanged"], t["inserted"], t["kept"], t["counters_fixed"]) == (3, 0, 30, 0)


async def test_reindex_rebuilds_lost_pack_rows_for_the_renewal_worker(rig: Rig,
                                                                      sql: SQL) -> None:
    await three_packs(rig)
    blobs = blob_ids(sql)
    [(epoch,)] = sql("SELECT current_epoch FROM {s}.walrus_state")
    ends = {b: e for b, e in sql("SELECT blob_id, end_epoch FROM {s}.packs")}
    sql("TRUNCATE {s}.entries, {s}.packs")

    report = await rig.reindex(blobs)
    assert report.totals()["packs_created"] == 3
    assert report.end_epoch == epoch + 1
    rows = sql("SELECT blob_id, state, end_epoch, pack_bytes, data_bytes, entry_count, "
               "live_entries, pack_sha256 FROM {s}.packs ORDER BY id")
    for blob, state, end, pack_bytes, data_bytes, count, live, sha in rows:
        data = await rig.store.read_blob(blob)
        assert (state, end, pack_bytes, count, live) == ("stored", epoch + 1, len(data), 10, 10)
        assert bytes(sha) == hashlib.sha256(data).digest()
        assert 0 < data_bytes < pack_bytes
    await rig.check_all()

    # Due at once, and extended (not marked lost): the re-store teaches the true end epoch.
    assert rig.svc.backend is not None
    worker = RenewWorker(rig.svc.pool, rig.store, rig.config, owner="audit-test",
                         reader=rig.svc.backend.reader)
    _, plan = await worker.plan()
    assert sorted(i.action for i in plan) == [Action.EXTEND] * 3
    await worker.renew_once()
    for blob, end in sql("SELECT blob_id, end_epoch FROM {s}.packs"):
        assert end >= ends[blob]
    await rig.check_all()


async def test_reindex_never_overwrites_and_newest_pack_wins(rig: Rig, sql: SQL) -> None:
    old = blocks(6, tag="k")
    await rig.put(old)
    await rig.flush()
    rewritten = sorted(old)[0]
    await rig.put({rewritten: b"second version, in a newer pack"})
    await rig.flush()
    sql("TRUNCATE {s}.entries")
    # written after the disaster, before the reindex: newer than any pack
    fresh = sorted(old)[1]
    await rig.put({fresh: b"written after the truncate"})

    report = await rig.reindex(from_packs=True)
    t = report.totals()
    assert (t["inserted"], t["kept"]) == (5, 2)  # the fresh key, and the older rewritten copy
    await rig.check_all()
    assert await rig.get(rewritten) == b"second version, in a newer pack"
    assert sql("SELECT value FROM {s}.entries WHERE key = %s", fresh) == [
        (b"written after the truncate",)]


async def test_dry_run_changes_nothing(rig: Rig, sql: SQL) -> None:
    await three_packs(rig)
    blobs = blob_ids(sql)
    sql("TRUNCATE {s}.entries")
    state = snapshot(sql)
    report = await rig.reindex(from_packs=True, dry_run=True)
    assert snapshot(sql) == state
    t = report.totals()
    assert (report.dry_run, t["restored"], t["inserted"], t["packs_created"]) == (
        True, 3, 30, 0)

    sql("TRUNCATE {s}.entries, {s}.packs")
    state = snapshot(sql)
    report = await rig.reindex(blobs, dry_run=True)
    assert snapshot(sql) == state
    assert report.totals()["packs_created"] == 3


async def test_refuses_what_is_not_a_packfile(rig: Rig, sql: SQL) -> None:
    await rig.put(blocks(3))
    await rig.flush()
    [pack_blob] = blob_ids(sql)
    whole = await rig.store.read_blob(pack_blob)
    not_a_pack = (await rig.store.store(os.urandom(3000), epochs=3)).blob_id
    cut = (await rig.store.store(whole[:-10], epochs=3)).blob_id
    vanished = (await rig.store.store(b"soon gone", epochs=3)).blob_id
    await rig.control.delete_blob(vanished)
    sql("TRUNCATE {s}.entries")
    state = snapshot(sql)

    report = await rig.reindex([not_a_pack, cut, vanished])
    assert snapshot(sql) == state
    assert report.exit_code == 1
    [a, b, c] = report.blobs
    assert (a.status, b.status, c.status) == ("refused", "refused", "unreadable")
    assert "not a valid walrusds packfile" in str(a.error) and "magic" in str(a.error)
    assert "not a valid walrusds packfile" in str(b.error)
    assert "404" in str(c.error)


async def test_a_corrupt_value_skips_only_its_entry(rig: Rig, sql: SQL) -> None:
    items = kubo_blocks(5)
    await rig.put(items)
    await rig.flush()
    bad = sorted(items)[3]
    [(blob, offset)] = sql('SELECT blob_id, "offset" FROM {s}.entry_locations WHERE key = %s',
                           bad)
    await rig.control.corrupt(blob, offset + 5)
    sql("TRUNCATE {s}.entries")
    report = await rig.reindex(from_packs=True)
    [r] = report.blobs
    assert (r.status, r.entries, r.inserted, r.skipped) == ("restored", 5, 4, 1)
    assert not r.created_pack  # the pack row that names the blob is used
    assert "sha256" in r.notes[0] and repr(bad.decode()) in r.notes[0]
    del rig.live[bad]
    await rig.check_all()
    assert sql("SELECT count(*) FROM {s}.entries WHERE key = %s", bad) == [(0,)]


async def test_skips_entries_the_service_would_refuse(rig: Rig, sql: SQL) -> None:
    good = b"a block"
    pack = build_pack([(b"/fine", b"ok"), (block_key(good), b"not the block"),
                       (b"no-slash", b"x"), (block_key(good) + b"2", good)])
    blob = (await rig.store.store(pack.data, epochs=3)).blob_id
    report = await rig.reindex([blob], epoch=1)  # nothing flushed: the index knows no epoch
    [r] = report.blobs
    assert (r.status, r.entries, r.inserted, r.skipped) == ("restored", 4, 2, 2)
    assert any("multihash" in n for n in r.notes)
    assert any("start with '/'" in n for n in r.notes)
    assert sorted(k for (k,) in sql("SELECT key FROM {s}.entries")) == sorted([
        b"/fine", block_key(good) + b"2"])
    assert await rig.get(b"/fine") == b"ok"


async def test_an_unknown_epoch_needs_epoch(rig: Rig, sql: SQL) -> None:
    await rig.put(blocks(2))
    await rig.flush()
    blobs = blob_ids(sql)
    sql("TRUNCATE {s}.entries, {s}.packs")
    sql("UPDATE {s}.walrus_state SET current_epoch = NULL, epoch_observed_at = NULL")
    with pytest.raises(ConfigError, match="--epoch"):
        await rig.reindex(blobs)
    assert sql("SELECT count(*) FROM {s}.packs") == [(0,)]
    assert (await rig.reindex(blobs, dry_run=True)).end_epoch is None
    report = await rig.reindex(blobs, epoch=40)
    assert report.end_epoch == 41
    assert sql("SELECT end_epoch FROM {s}.packs") == [(41,)]


async def test_cli(rig: Rig, sql: SQL) -> None:
    await three_packs(rig)
    [first, *_] = blob_ids(sql)
    sql("TRUNCATE {s}.entries")
    env = cli_env(rig)

    state = snapshot(sql)
    code, out, err = await walrusds(env, "reindex", "--dry-run", first)
    assert code == 0, err
    assert "dry run: nothing was changed" in out and "10 would insert" in out
    assert snapshot(sql) == state

    code, out, err = await walrusds(env, "reindex", "--from-packs", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["totals"]["inserted"] == 30 and doc["exit_code"] == 0
    assert {b["status"] for b in doc["blobs"]} == {"restored"}
    await rig.check_all()

    code, _, err = await walrusds(env, "reindex")
    assert code == 1 and "--from-packs" in err
    code, _, err = await walrusds(env, "reindex", "not-a-blob")
    assert code == 1 and "not a Walrus blob ID" in err
