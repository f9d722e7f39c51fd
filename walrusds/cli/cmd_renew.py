"""``walrusds renew [--dry-run] [--json]``: one renewal pass, or its plan."""

from __future__ import annotations

import argparse
import json
from typing import Any

from walrusds.cli.common import add_config_arguments, config_from_args, run_async
from walrusds.client import open_blob_store
from walrusds.config import Config
from walrusds.flusher import node_owner
from walrusds.index import open_pool
from walrusds.renew import PlanItem, RenewWorker
from walrusds.renew.worker import Done


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "renew", help="renew or compact packs nearing their end epoch",
        description="Plan (--dry-run) or carry out one renewal pass: packs whose end epoch is "
        "within renew.margin_epochs are extended (re-stored for a new lifetime), compacted "
        "(live entries moved to new packs when dead bytes exceed renew.dead_threshold), left "
        "to lapse (no live entries) or marked lost (expired while indexed).")
    add_config_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return run_async(lambda: _renew(config, dry_run=args.dry_run, as_json=args.json))


async def _renew(config: Config, *, dry_run: bool, as_json: bool) -> int:
    pool = await open_pool(config.postgres, min_size=1, max_size=4)
    store = None if dry_run else open_blob_store(config.walrus)
    try:
        worker = RenewWorker(pool, store, config, owner=f"renew-cli:{node_owner()}")
        epoch, items = await worker.plan()
        if dry_run:
            print(json.dumps(plan_json(worker, epoch, items), indent=2) if as_json
                  else render_plan(worker, epoch, items))
            return 0
        done = await worker.renew_once()
    finally:
        if store is not None:
            await store.aclose()
        await pool.close()
    print(json.dumps({"epoch": epoch, "done": [done_json(d) for d in done]}, indent=2)
          if as_json else render_done(done))
    return 0


def totals(items: list[PlanItem]) -> dict[str, Any]:
    counts = {a: sum(1 for i in items if i.action.value == a)
              for a in ("extend", "compact", "lapse", "lost")}
    costs = [i.cost_estimate for i in items if i.cost_estimate is not None]
    return {**counts, "unit_epochs": sum(i.unit_epochs for i in items),
            "cost_estimate": sum(costs) if costs else None,
            "live_bytes": sum(i.pack.live_bytes for i in items),
            "dead_bytes": sum(i.pack.dead_bytes for i in items)}


def plan_json(worker: RenewWorker, epoch: int | None, items: list[PlanItem]) -> dict[str, Any]:
    s = worker.settings
    return {"epoch": epoch, "margin_epochs": s.margin_epochs, "epochs": s.epochs,
            "dead_threshold": s.dead_threshold, "plan": [i.as_json() for i in items],
            "totals": totals(items)}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


def render_plan(worker: RenewWorker, epoch: int | None, items: list[PlanItem]) -> str:
    s = worker.settings
    if epoch is None:
        return "no epoch known yet (nothing was ever stored): nothing to renew"
    lines = [f"epoch {epoch}: acting on packs ending by epoch {epoch + s.margin_epochs}; "
             f"buying {s.epochs} epochs per renewal; compacting above "
             f"{s.dead_threshold:.0%} dead bytes", ""]
    header = (f"{'pack':>6}  {'blob':<43}  {'end':>5}  {'entries':>7}  {'live MiB':>8}  "
              f"{'dead MiB':>8}  {'action':<8}  {'unit-epochs':>11}  {'est. FROST':>12}")
    lines += [header, "-" * len(header)]
    for i in items:
        p = i.pack
        cost = "?" if i.cost_estimate is None else str(i.cost_estimate)
        lines.append(f"{p.pack_id:>6}  {p.blob_id:<43}  {p.end_epoch:>5}  {p.live_entries:>7}  "
                     f"{_mib(p.live_bytes):>8}  {_mib(p.dead_bytes):>8}  "
                     f"{i.action.value:<8}  {i.unit_epochs:>11}  {cost:>12}")
    t = totals(items)
    cost = "unknown" if t["cost_estimate"] is None else f"{t['cost_estimate']} FROST"
    lines += ["", f"totals: {t['extend']} extend, {t['compact']} compact, {t['lapse']} lapse, "
              f"{t['lost']} lost; {t['unit_epochs']} unit-epochs (MiB of encoded size × "
              f"epochs); estimated cost {cost}",
              "dry run: nothing was changed"]
    return "\n".join(lines)


def done_json(d: Done) -> dict[str, Any]:
    return {"pack_id": d.pack_id, "action": d.action.value, "detail": d.detail}


def render_done(done: list[Done]) -> str:
    if not done:
        return "nothing to renew"
    return "\n".join(f"pack {d.pack_id}: {d.action.value}: {d.detail}" for d in done)
