"""``walrusds stats``: the pack ratio, dead bytes, staged backlog and data-loss counters."""

from __future__ import annotations

import argparse
import json
from typing import Any

from walrusds.cli.common import add_config_arguments, config_from_args, run_async
from walrusds.config import Config
from walrusds.index import open_pool
from walrusds.index.stats import IndexStats, read_stats


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "stats", help="show what is stored and what it costs",
        description="Read the pack ratio (entries and bytes per pack, fill against the target), "
        "dead bytes, the staged backlog and data-loss counters from the index, with the views "
        "documented in docs/operations.md.")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return run_async(lambda: _stats(config, as_json=args.json))


async def _stats(config: Config, *, as_json: bool) -> int:
    pool = await open_pool(config.postgres, min_size=1, max_size=1)
    try:
        stats = await read_stats(pool, config.postgres.schema)
    finally:
        await pool.close()
    if as_json:
        print(json.dumps(stats.as_json(), indent=2, sort_keys=True))
    else:
        print(render(stats))
    return 0


def _mib(n: Any) -> str:
    return f"{int(n or 0) / (1 << 20):,.1f} MiB"


def render(stats: IndexStats) -> str:
    r, st, w, loss = stats.pack_ratio, stats.staged, stats.walrus, stats.data_loss
    states = ", ".join(f"{k} {v}" for k, v in stats.packs_by_state.items()) or "none"
    lines = [
        "packs (stored)",
        f"  packs               {r.get('packs', 0)}",
        f"  entries             {r.get('entries', 0)}",
        f"  entries per pack    {r.get('entries_per_pack') or 0}",
        f"  average fill        {r.get('avg_fill_pct') or 0}% of the target size",
        f"  pack bytes          {_mib(r.get('pack_bytes'))}",
        f"  live bytes          {_mib(r.get('live_bytes'))}",
        f"  dead bytes          {_mib(r.get('dead_bytes'))}",
        f"  encoded on Walrus   {_mib(r.get('encoded_bytes'))} "
        f"({r.get('encoded_per_live_byte') or '-'} per live byte)",
        f"  cost (FROST)        {r.get('cost', 0)}",
        f"  by state            {states}",
        "staged in Postgres",
        f"  entries             {st.get('entries', 0)} ({st.get('claimed', 0)} claimed by a "
        "pack being built)",
        f"  bytes               {_mib(st.get('bytes'))}",
        f"  oldest              {st.get('oldest') or '-'}",
        "walrus",
        f"  current epoch       {w.get('current_epoch') or 'unknown (no store yet)'}",
        f"  publisher max body  {w.get('publisher_max_body') or 'not limited so far'}",
        "data loss",
        f"  corrupt reads       {loss.get('corrupt', 0)}",
        f"  lost blobs          {loss.get('lost', 0)}",
    ]
    if loss.get("latest"):
        lines.append(f"  latest              {loss['latest']}")
    return "\n".join(lines)
