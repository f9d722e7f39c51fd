"""`walrusds verify`: every class is found, nothing is changed, sample and full walks."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest

from tests.audit.conftest import SQL, Rig, audit_config, blocks, cli_env, snapshot, walrusds
from walrusds.audit import verifier
from walrusds.audit.classify import Finding, Verdict
from walrusds.audit.db import open_audit_pool
from walrusds.config import Config
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.rpc import open_aio_channel
from walrusds.server.app import Service
from walrusds.verify import block_key


def kubo_blocks(n: int) -> dict[bytes, bytes]:
    values = [os.urandom(900) for _ in range(n)]
    return {block_key(v): v for v in values}


def one(sql: SQL, query: str, *params: object) -> Any:
    [(value,)] = sql(query, *params)
    return value


async def packed_round(rig: Rig, sql: SQL, items: dict[bytes, bytes]) -> tuple[int, str]:
    """Put ``items`` and pack them into one new pack: (pack id, blob ID)."""
    await rig.put(items)
    await rig.flush()
    [(pack_id, blob_id)] = sql("SELECT DISTINCT pack_id, blob_id FROM {s}.entries e JOIN "
                               "{s}.packs p ON p.id = e.pack_id WHERE key = ANY(%s)",
                               list(items))
    return int(pack_id), str(blob_id)


@dataclass
class Damage:
    bad_key: bytes
    b_corrupt: str
    offset: int
    p_corrupt: int
    p_emptied: int
    p_orphan: int
    bad_staged: bytes
    probe: bytes


async def damaged_dataset(rig: Rig, sql: SQL) -> Damage:
    """A dataset with entries of every class."""
    control = rig.control
    corrupt = kubo_blocks(5)
    p_corrupt, b_corrupt = await packed_round(rig, sql, corrupt)
    bad_key = sorted(corrupt)[2]
    offset = int(one(sql, "SELECT pack_offset FROM {s}.entries WHERE key = %s", bad_key))
    await control.corrupt(b_corrupt, offset + 17)

    gone = blocks(3, tag="gone")
    _, b_gone = await packed_round(rig, sql, gone)
    await control.delete_blob(b_gone)

    marked = blocks(2, tag="marked")
    p_marked, _ = await packed_round(rig, sql, marked)
    sql("UPDATE {s}.packs SET state = 'lost' WHERE id = %s", p_marked)

    emptied = blocks(2, tag="emptied")
    p_emptied, _ = await packed_round(rig, sql, emptied)
    await rig.delete(list(emptied))

    # Abandoned builds: one whose blob is live (a paid orphan), one whose blob expired, and
    # one redone as a stored pack with the same blob (referenced: not an orphan).
    orphan_blob = (await rig.store.store(b"an uploaded build, never committed", epochs=3)).blob_id
    expired_blob = (await rig.store.store(b"an old orphan", epochs=3)).blob_id
    await control.delete_blob(expired_blob)
    for blob in (orphan_blob, expired_blob, b_corrupt):
        sql("INSERT INTO {s}.packs (state, blob_id) VALUES ('abandoned', %s)", blob)
    p_orphan = int(one(sql, "SELECT id FROM {s}.packs WHERE blob_id = %s", orphan_blob))

    # Two epochs later every pack bought for 3 epochs has one left; a store teaches it.
    await control.advance_epoch(2)
    probe = blocks(1, tag="probe")
    await packed_round(rig, sql, probe)

    staged = blocks(3, tag="staged")
    await rig.put(staged)
    bad_staged = sorted(staged)[0]
    sql("UPDATE {s}.entries SET value = set_byte(value, 4, get_byte(value, 4) # 1) "
        "WHERE key = %s", bad_staged)
    return Damage(bad_key, b_corrupt, offset, p_corrupt, p_emptied, p_orphan, bad_staged,
                  next(iter(probe)))


async def test_verify_finds_every_class_and_changes_nothing(rig: Rig, sql: SQL) -> None:
    d = await damaged_dataset(rig, sql)
    before = snapshot(sql)
    report = await rig.verify()
    assert snapshot(sql) == before  # read-only: not even a data-loss event is recorded
    assert sql("SELECT count(*) FROM {s}.data_loss_events") == [(0,)]

    assert report.mode == "full"
    assert {v.value: n for v, n in report.counts.items()} == {
        "OK": 3, "EXPIRING": 4, "LOST": 5, "CORRUPT": 2, "ORPHAN": 2}
    assert (report.packed, report.staged, report.skipped) == (11, 3, 0)
    assert report.orphans_expired == 1
    assert report.exit_code == 1
    assert report.epoch.estimated == report.epoch.recorded
    assert set(report.expiring) == {d.p_corrupt}
    assert report.expiring[d.p_corrupt].entries == 4

    by_class: dict[Verdict, list[Finding]] = {}
    for f in report.problems:
        by_class.setdefault(f.verdict, []).append(f)
    [packed_bad, staged_bad] = sorted(by_class[Verdict.CORRUPT], key=lambda f: f.pack_id is None)
    assert (packed_bad.key, packed_bad.blob_id, packed_bad.offset) == (
        d.bad_key, d.b_corrupt, d.offset)
    assert "SHA-256" in packed_bad.reason and "every aggregator" in packed_bad.reason
    assert staged_bad.key == d.bad_staged
    assert staged_bad.reason.startswith("staged value")
    lost = by_class[Verdict.LOST]
    assert sum("404" in f.reason for f in lost) == 3
    assert sum("marked lost" in f.reason for f in lost) == 2
    assert {f.pack_id for f in by_class[Verdict.ORPHAN]} == {d.p_emptied, d.p_orphan}

    # The read path agrees with the verdicts.
    assert await rig.get(d.probe) == rig.live[d.probe]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.get(d.bad_key)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS


async def test_json_shape(rig: Rig, sql: SQL) -> None:
    await rig.put(blocks(4))
    await rig.flush()
    await rig.put(blocks(2, tag="s"))
    report = await rig.verify(expiring_within=5)
    doc = json.loads(json.dumps(report.as_json()))
    assert set(doc) == {"mode", "ok", "exit_code", "current_epoch", "recorded_epoch",
                        "expiring_within", "entries", "staged", "packed", "skipped", "counts",
                        "expiring_packs", "orphans_expired", "problems", "problems_omitted",
                        "reads", "rereads"}
    # bought for 3 epochs, so within 5 epochs every packed entry is EXPIRING (still exit 0)
    assert doc["counts"] == {"OK": 2, "EXPIRING": 4, "LOST": 0, "CORRUPT": 0, "ORPHAN": 0}
    assert doc["ok"] is True and doc["exit_code"] == 0
    assert doc["expiring_within"] == 5
    [pack] = doc["expiring_packs"]
    assert set(pack) == {"pack_id", "blob_id", "end_epoch", "entries"}
    assert pack["entries"] == 4
    assert pack["end_epoch"] == doc["current_epoch"] + 3


async def test_problem_lines_are_capped_but_all_counted(rig: Rig, sql: SQL) -> None:
    items = blocks(6)
    await rig.put(items)
    await rig.flush()
    [(blob,)] = sql("SELECT DISTINCT blob_id FROM {s}.entry_locations")
    await rig.control.delete_blob(blob)
    report = await rig.verify(max_problems=2)
    assert report.counts[Verdict.LOST] == 6
    assert len(report.problems) == 2
    assert report.problems_omitted == 4
    f = report.problems[0].as_json()
    assert set(f) == {"class", "key", "key_hex", "blob_id", "pack_id", "offset", "size",
                      "end_epoch", "reason"}
    assert f["class"] == "LOST" and f["blob_id"] == blob
    assert bytes.fromhex(f["key_hex"]) in items


async def test_sample_checks_the_number_asked(rig: Rig, sql: SQL) -> None:
    await rig.put(blocks(40, size=300))
    await rig.flush()
    await rig.put(blocks(5, size=300, tag="s"))
    unanalyzed = await rig.verify(sample=10)  # no row estimate yet: every page is sampled
    assert unanalyzed.entries == 10
    sql("ANALYZE {s}.entries")  # now a percentage of the pages, grown until enough rows
    small = await rig.verify(sample=10)
    assert small.mode == "sample"
    assert small.entries == 10
    assert small.counts[Verdict.OK] == 10
    everything = await rig.verify(sample=1000)
    assert (everything.entries, everything.packed, everything.staged) == (45, 40, 5)
    full = await rig.verify()
    assert (full.mode, full.entries) == ("full", 45)
    assert full.reads < 40  # entries of one pack share ranged reads


async def test_full_walk_pages_through_packs_and_staged_entries(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny pages: every entry is checked once, including empty values, which share their
    offset with the next value in the pack, and staged entries staged in the same instant."""
    monkeypatch.setattr(verifier, "ENTRY_PAGE", 3)
    monkeypatch.setattr(verifier, "PACK_PAGE", 2)
    monkeypatch.setattr(verifier, "STAGED_CHUNK_BYTES", 700)
    for round_ in range(3):
        items = blocks(7, size=500, tag=f"r{round_}-")
        items.update({f"/audit/r{round_}-{i:04d}e".encode(): b"" for i in range(0, 7, 2)})
        await rig.put(items)
        await rig.flush()
    await rig.put(blocks(8, size=400, tag="staged"))
    report = await rig.verify()
    assert report.entries == len(rig.live) == 3 * 11 + 8
    assert report.counts[Verdict.OK] == report.entries
    assert report.staged == 8


async def test_a_good_aggregator_answers_when_another_corrupts(
        config: Config, emulator: RunningEmulator, control: EmulatorControl) -> None:
    cfg = audit_config(config, emulator.url)
    cfg = dataclasses.replace(cfg, walrus=dataclasses.replace(
        cfg.walrus, aggregators=(f"{emulator.url}/bad", f"{emulator.url}/good")))
    svc = await Service.start(cfg)
    channel = open_aio_channel(svc.address)
    try:
        rig = Rig(svc, cfg, control, channel)
        await rig.put(blocks(6))
        await rig.flush()
        await control.add_fault("read", "bitflip", prefix="bad")
        report = await rig.verify()
        assert report.counts[Verdict.OK] == 6
        assert report.exit_code == 0
        assert report.rereads >= 1
    finally:
        await channel.close()
        await svc.stop(grace=0.5)


async def test_the_audit_pool_refuses_writes(rig: Rig) -> None:
    pool = await open_audit_pool(rig.config, read_only=True)
    try:
        async with pool.connection() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await conn.execute(f'DELETE FROM "{rig.config.postgres.schema}".entries')
    finally:
        await pool.close()


async def test_cli_exit_codes_json_and_text(rig: Rig, sql: SQL) -> None:
    items = blocks(5)
    await rig.put(items)
    await rig.flush()
    env = cli_env(rig)

    code, out, err = await walrusds(env, "verify", "--full")
    assert code == 0, err
    assert "result: OK (exit 0)" in out
    assert "\r" not in err  # no progress line when stderr is not a terminal
    assert "HTTP Request" not in err

    # The aggregator may come from the command line instead of the configuration.
    code, out, err = await walrusds(cli_env(rig, aggregators=False), "verify", "--json",
                                    "--sample", "3", "--aggregator",
                                    rig.config.walrus.aggregators[0])
    assert code == 0, err
    assert json.loads(out)["entries"] == 3

    code, _, err = await walrusds(cli_env(rig, aggregators=False), "verify")
    assert code == 2
    assert "--aggregator" in err

    # No aggregator answers: no verdict about the data, exit 2 (not 1).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out, err = await walrusds({**env, "WALRUSDS_WALRUS_DEADLINE": "1"}, "verify",
                                    "--full", "--aggregator", dead)
    assert code == 2, out
    assert "incomplete" in err and "Traceback" not in err and out == ""

    key = sorted(items)[1]
    [(blob, offset)] = sql('SELECT blob_id, "offset" FROM {s}.entry_locations WHERE key = %s',
                           key)
    await rig.control.corrupt(blob, offset)
    before = snapshot(sql)
    code, out, err = await walrusds(env, "verify", "--full", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["counts"]["CORRUPT"] == 1 and doc["ok"] is False
    assert doc["problems"][0]["key"] == key.decode()
    code, out, _ = await walrusds(env, "verify", "--full")
    assert code == 1
    assert "CORRUPT" in out and blob in out and "1 problems (exit 1)" in out
    assert snapshot(sql) == before
