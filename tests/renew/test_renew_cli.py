"""`walrusds renew` as a real process: the dry run changes nothing and predicts the real pass;
a SIGKILL inside a pass loses nothing and the next pass converges; two processes renew each
pack exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import pytest

from tests.renew.conftest import Rig
from walrusds.emulator.runner import RunningEmulator


def cli_env(rig: Rig, emulator: RunningEmulator, **extra: str) -> dict[str, str]:
    cfg = rig.config
    return {**os.environ,
            "WALRUSDS_POSTGRES_DSN": cfg.postgres.dsn,
            "WALRUSDS_POSTGRES_SCHEMA": cfg.postgres.schema,
            "WALRUSDS_WALRUS_PUBLISHERS": emulator.url,
            "WALRUSDS_WALRUS_AGGREGATORS": emulator.url,
            "WALRUSDS_WALRUS_EPOCHS": str(cfg.walrus.epochs),
            "WALRUSDS_RENEW_EPOCHS": str(cfg.renew.epochs),
            "WALRUSDS_RENEW_MARGIN_EPOCHS": str(cfg.renew.margin_epochs),
            "WALRUSDS_RENEW_EPOCH_SECONDS": str(cfg.renew.epoch_seconds), **extra}


async def renew(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walrusds", "renew", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def due_mix(rig: Rig) -> None:
    """Packs due for each action: extend, compact, lapse."""
    keep = await rig.put(10)
    await rig.flush()
    sparse = await rig.put(10)
    await rig.flush()
    gone = await rig.put(5)
    await rig.flush()
    await rig.delete(sparse[:7] + gone)
    assert keep
    await rig.next_epoch()
    await rig.learn_epoch()


def snapshot(sql: Any) -> Any:
    return (sql("SELECT id, state, blob_id, end_epoch, live_entries, cost FROM {s}.packs "
                "ORDER BY id"),
            sql("SELECT key, pack_id, pack_offset, value IS NULL FROM {s}.entries ORDER BY key"))


async def test_dry_run_changes_nothing_and_predicts_the_pass(
        rig: Rig, emulator: RunningEmulator, sql: Any) -> None:
    await due_mix(rig)
    env = cli_env(rig, emulator)
    before, stores = snapshot(sql), (await rig.control.counters())["routes"]["store"]
    code, out, err = await renew(env, "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert snapshot(sql) == before
    assert (await rig.control.counters())["routes"]["store"] == stores
    assert plan["epoch"] == 2
    actions = sorted((p["pack_id"], p["action"]) for p in plan["plan"])
    assert {a for _, a in actions} == {"extend", "compact", "lapse"}
    assert plan["totals"]["unit_epochs"] > 0

    code, text, err = await renew(env, "--dry-run")
    assert code == 0, err
    assert "dry run: nothing was changed" in text
    assert "extend" in text
    assert "compact" in text

    code, out, err = await renew(env, "--json")
    assert code == 0, err
    done = sorted((d["pack_id"], d["action"]) for d in json.loads(out)["done"])
    assert done == actions
    await rig.flush()
    await rig.check_all_readable()
    code, out, _ = await renew(env, "--dry-run", "--json")
    assert json.loads(out)["plan"] == []


@pytest.mark.parametrize("failpoint", ["renew_after_upload", "renew_before_repoint"])
async def test_a_crash_inside_a_pass_loses_nothing(
        failpoint: str, rig: Rig, emulator: RunningEmulator, sql: Any) -> None:
    await due_mix(rig)
    env = cli_env(rig, emulator, WALRUSDS_RENEW_LEASE="1")
    code, _, err = await renew({**env, "WALRUSDS_FAILPOINTS": failpoint})
    assert code == -signal.SIGKILL, err
    await rig.check_all_readable()
    await asyncio.sleep(1.2)  # the dead worker's lease on its pack runs out
    code, out, err = await renew(env, "--json")
    assert code == 0, err
    code, out, err = await renew(env, "--dry-run", "--json")
    assert json.loads(out)["plan"] == []  # the passes converged
    await rig.flush()
    await rig.next_epoch(2)  # the original lifetimes are over
    await rig.learn_epoch()
    await rig.check_all_readable()
    assert sql("SELECT count(*) FROM {s}.packs WHERE state = 'lost'") == [(0,)]


async def test_two_processes_renew_each_pack_once(
        rig: Rig, emulator: RunningEmulator, sql: Any) -> None:
    for _ in range(12):
        await rig.put(10)
        await rig.flush()
    await rig.next_epoch()
    await rig.learn_epoch()
    env = cli_env(rig, emulator)
    stores = (await rig.control.counters())["routes"]["store"]
    (c1, o1, e1), (c2, o2, e2) = await asyncio.gather(renew(env, "--json"),
                                                      renew(env, "--json"))
    assert (c1, c2) == (0, 0), e1 + e2
    one = {(d["pack_id"], d["action"]) for d in json.loads(o1)["done"]}
    two = {(d["pack_id"], d["action"]) for d in json.loads(o2)["done"]}
    extended = {p for p, a in one | two if a == "extend"}
    assert len(extended) == 12
    assert not one & two, "a pack was renewed by both processes"
    assert (await rig.control.counters())["routes"]["store"] - stores == 12
