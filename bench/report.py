"""bench/RESULTS.md from one run's JSON: machine, commands, every figure, targets, ratios.

The hand-written analysis (profiles, reasons for missed targets) lives in bench/analysis.md and
is copied in verbatim, so a new run never loses it; the pack-ratio section of
bench/ingest_packing.py is regenerated when the run included it and kept otherwise. Everything
after :data:`KEEP_MARKER` (figures measured by other commands, such as the crash and fault
suite's) is kept as it is, at the end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKING_HEADING = "## Pack ratio under steady ingest"
#: RESULTS.md from this line on is hand-written and survives every rewrite.
KEEP_MARKER = "<!-- hand-written sections follow; bench/report.py keeps them as they are -->"
COMMANDS = {"full": "make bench", "quick": "make bench-quick", "tiny": "(smoke test)"}


def n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


def size_name(size: int) -> str:
    return f"{size // 1024} KiB" if size < 2**20 else f"{size // 2**20} MiB"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def machine_section(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    return [
        f"Run of {r['started']} (`{COMMANDS[r['size']]}`, size `{r['size']}`, "
        f"{r['seconds']:.0f} s): {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; {m['postgres']}; Python {m['python']}, grpcio {m['grpcio']}, "
        f"psycopg {m['psycopg']}; {m['go']}; {m['ipfs_walrus']} (ipfs-walrus). Load average "
        f"before {m['load_before']}, after {r['load_after']}: other processes share this "
        "machine, so compare the ratios, not the absolute speeds.", "",
        "```", f"{COMMANDS[r['size']]}   # .venv/bin/python -m bench.run --size {r['size']}",
        "```", "",
        "One private PostgreSQL cluster, one emulator process and one `walrusds serve` process "
        "(unix socket, renewals and metrics off) for the whole run; the Go client is "
        "`shim/cmd/walrusds-bench` (the shim package, as Kubo uses it), the Python client "
        "`bench/pyclient.py` (grpc.aio, one unary call per lookup). Lookup keys are rows "
        "generated in PostgreSQL (`bench/dataset.py`: 64-character hashed names, 256 KiB "
        "packed entries).", ""]


def targets(r: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(what: str, goal: str, got: str, ok: bool) -> None:
        rows.append([what, goal, got, "met" if ok else "**missed**"])
    k = r.get("kubo")
    if k:
        add_ratio = k["flatfs"]["add_big_s"] / k["walrusds"]["add_big_s"]
        cat_ratio = k["flatfs"]["cat_big_s"] / k["walrusds"]["cat_big_s"]
        add("`ipfs add` (large file) vs flatfs", "≥ 0.5×", f"{add_ratio:.2f}×", add_ratio >= 0.5)
        add("`ipfs cat` packed, cold, vs flatfs", "≥ 0.5×", f"{cat_ratio:.2f}×", cat_ratio >= 0.5)
    top = max(r["config"]["concurrency"])
    h = r["lookup"][f"go_has_c{top}"]
    add(f"Has/s through the shim, {top} callers", "≥ 20,000/s", n(h["calls_per_s"]),
        h["calls_per_s"] >= 20_000)
    add(f"Has p99 through the shim, {top} callers", "≤ 20 ms", f"{h['p99_ms']:.2f} ms",
        h["p99_ms"] <= 20)
    one = r["lookup"]["go_has_c1"]
    add("Has p50 through the shim, 1 caller", "≤ 1 ms", f"{one['p50_ms']:.2f} ms",
        one["p50_ms"] <= 1)
    q = r["query"]["go"]
    add(f"keys-only Query ({n(q['keys'])} keys, shim)", "≥ 300,000 keys/s",
        n(q["keys_per_s"]), q["keys_per_s"] >= 300_000)
    small = r["scale"]["small"]["query"]["go"]["service_peak_rss"]
    big = q["service_peak_rss"]
    add("service peak RSS during Query, 100k → 1M keys", "flat",
        f"{mib(small)} → {mib(big)}", big <= small * 1.2 + 16 * 2**20)
    for size in r["config"]["value_sizes"]:
        g, c = r["ingest"][f"go_{size}"], r["ingest"][f"ceiling_{size}"]
        frac = g["mb_per_s"] / c["mb_per_s"]
        add(f"Batch ingest {size_name(size)} (shim) vs Postgres staging", "≥ 50%",
            f"{frac:.0%}", frac >= 0.5)
    return rows


def service_sections(r: dict[str, Any]) -> list[str]:
    out = ["## Service level", "", "### Batch ingest", "",
           f"{mib(r['config']['ingest_bytes'])} per value size and client, 4 writers × "
           "batches of 64 puts; the ceiling is a binary COPY of the same values (with their "
           "SHA-256) into a table shaped like `entries`, from 4 connections, 64 rows per "
           "synchronous commit (`bench/ceilings.py`). The service's flusher is off for these "
           "runs, so staging is compared with staging; the last columns are the shim again "
           "with the flusher on, packing and uploading 64 MiB packs while the writes arrive "
           "(the sustained rate; it starts with nothing staged).", ""]
    rows = []
    for size in r["config"]["value_sizes"]:
        g, p, c = (r["ingest"][f"{k}_{size}"] for k in ("go", "py", "ceiling"))
        packing = r["ingest"].get(f"go_packing_{size}")
        rows.append([size_name(size), n(g["blocks_per_s"]), n(g["mb_per_s"], 1),
                     n(p["blocks_per_s"]), n(p["mb_per_s"], 1), n(c["mb_per_s"], 1),
                     f"{g['mb_per_s'] / c['mb_per_s']:.0%}",
                     f"{p['mb_per_s'] / c['mb_per_s']:.0%}",
                     n(packing["mb_per_s"], 1) if packing else "—",
                     f"{packing['mb_per_s'] / c['mb_per_s']:.0%}" if packing else "—"])
    out += table(["value", "shim blocks/s", "shim MB/s", "Python blocks/s", "Python MB/s",
                  "Postgres staging MB/s", "shim / ceiling", "Python / ceiling",
                  "shim MB/s while packing", "while packing / ceiling"], rows)
    c = r["ceilings"]
    out += ["### Has and GetSize", "",
            f"{n(r['config']['lookup_keys'])} keys indexed; each caller loops over random "
            f"existing keys for {r['config']['lookup_seconds']} s. Ceilings: one psycopg "
            f"client, prepared `key = $1` in a loop: {n(c['pg_point']['lookups_per_s'])}/s; "
            f"`key = ANY` with 100 keys per query: {n(c['pg_any']['lookups_per_s'])} "
            "lookups/s.", ""]
    rows = []
    for op in ("has", "getsize"):
        for conc in r["config"]["concurrency"]:
            g, p = r["lookup"][f"go_{op}_c{conc}"], r["lookup"][f"py_{op}_c{conc}"]
            rows.append([{"has": "Has", "getsize": "GetSize"}[op], str(conc),
                         n(g["calls_per_s"]), f"{g['p50_ms']:.2f}", f"{g['p99_ms']:.2f}",
                         f"{g['calls_per_s'] / c['pg_any']['lookups_per_s']:.0%}",
                         n(p["calls_per_s"]), f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}"])
    out += table(["op", "callers", "shim calls/s", "shim p50 ms", "shim p99 ms",
                  "shim / ANY ceiling", "Python calls/s", "Python p50 ms", "Python p99 ms"],
                 rows)
    gt = r["get"]
    out += ["### Get", "",
            f"{r['config']['get_values']} values of 256 KiB, 32 concurrent readers. Staged: "
            "bytes in PostgreSQL. Packed-cold: a freshly started service with the pack prefetch "
            "off (`walrus.prefetch_reads = 0`), every value a ranged read from the emulator. "
            "Packed-prefetch: a freshly started service with the default prefetch (a pack read "
            "8 times within 10 s is read whole into the cache). Packed-warm: the emulator "
            "ignores `Range`, so whole packs land in the service's pack cache on a first pass; "
            "the second pass is measured. "
            f"Ceiling: loopback HTTP GET of whole 8 MiB blobs, {n(c['http']['get_mb_per_s'])} "
            f"MB/s; SHA-256 {n(c['sha256']['mb_per_s'])} MB/s.", ""]
    rows = []
    for kind in ("staged", "packed_cold", "packed_prefetch", "packed_warm"):
        if f"go_{kind}" not in gt:
            continue  # a run from before the prefetch
        g, p = gt[f"go_{kind}"], gt[f"py_{kind}"]
        rows.append([kind.replace("_", "-"), n(g["blocks_per_s"]), n(g["mb_per_s"], 1),
                     n(p["blocks_per_s"]), n(p["mb_per_s"], 1),
                     f"{g['mb_per_s'] / c['http']['get_mb_per_s']:.0%}"])
    out += table(["entries", "shim blocks/s", "shim MB/s", "Python blocks/s", "Python MB/s",
                  "shim / HTTP GET ceiling"], rows)
    pk = gt["packs"]
    full = pk.get("full_packs", 0)
    out += ["### Packs", "",
            f"Every pack the run stored by then: the ingest runs' values (all three sizes, both "
            f"clients), packed by a flusher with the size trigger (64 MiB staged) and, between "
            f"runs, the idle trigger; then the Get values. {pk['packs']} packs, "
            f"{pk['entries_per_pack']:.1f} entries per pack on average, average pack "
            f"{mib(pk['avg_pack_bytes'])} "
            f"({pk['avg_pack_bytes'] / 2**26:.0%} of the target); {full} packs of at least 95% "
            f"of the target, holding {pk.get('full_entries_per_pack', 0):.1f} entries each on "
            "average. The 256 KiB steady-ingest figure is the pack-ratio section below.", ""]
    out += ["### Keys-only Query", "",
            "All generated keys under one prefix, `keys_only`; the service's peak RSS is its "
            "VmHWM, reset before each query.", ""]
    rows = []
    for _label, q in (("small", r["scale"]["small"]["query"]), ("lookup", r["query"])):
        for client in ("go", "py"):
            rows.append([n(q[client]["keys"]), {"go": "shim", "py": "Python"}[client],
                         n(q[client]["keys_per_s"]), mib(q[client]["service_rss_before"]),
                         mib(q[client]["service_peak_rss"])])
    out += table(["keys", "client", "keys/s", "service RSS before", "service peak RSS"], rows)
    return out


def ceilings_section(r: dict[str, Any]) -> list[str]:
    c = r["ceilings"]
    rows = [["PostgreSQL point lookups (psycopg loop)", f"{n(c['pg_point']['lookups_per_s'])}/s"],
            ["PostgreSQL `key = ANY`, 100 keys per query", f"{n(c['pg_any']['lookups_per_s'])}"
             " lookups/s"],
            ["loopback HTTP PUT to the emulator (8 MiB blobs)",
             f"{n(c['http']['put_mb_per_s'])} MB/s"],
            ["loopback HTTP GET from the emulator (8 MiB blobs)",
             f"{n(c['http']['get_mb_per_s'])} MB/s"],
            ["SHA-256 (256 KiB chunks, one core)", f"{n(c['sha256']['mb_per_s'])} MB/s"]]
    for size in r["config"]["value_sizes"]:
        rows.append([f"PostgreSQL staging COPY, {size_name(size)} values",
                     f"{n(r['ingest'][f'ceiling_{size}']['mb_per_s'], 1)} MB/s"])
    return ["## Ceilings (same run)", "", *table(["ceiling", "measured"], rows)]


def kubo_section(r: dict[str, Any]) -> list[str]:
    k = r.get("kubo")
    if not k:
        return []
    f, w = k["flatfs"], k["walrusds"]
    rows = []
    for key, what, size in (("add_big", f"`ipfs add` {mib(k['big_bytes'])} random file",
                             k["big_bytes"]),
                            ("cat_big", "`ipfs cat` of it (walrusds: packed, cold)",
                             k["big_bytes"]),
                            ("add_tree", f"`ipfs add -r` {k['small_files']} small files",
                             k["tree_bytes"]),
                            ("cat_tree", f"`ipfs cat` of the {k['small_files']} files (one "
                             "command; walrusds: packed, cold)", k["tree_bytes"])):
            fs, ws = f[f"{key}_s"], w[f"{key}_s"]
            rows.append([what, f"{fs:.2f} s ({size / fs / 1e6:,.1f} MB/s)",
                         f"{ws:.2f} s ({size / ws / 1e6:,.1f} MB/s)", f"{fs / ws:.2f}×"])
    intro = ("The same `bin/ipfs-walrus`, offline, on a default flatfs repo and on a repo "
             "made by `walrusds kubo-init` (both `--profile test`); wall time of each command "
             "including Kubo's start. Both repos gave the same CIDs. Ratio = walrusds "
             "throughput / flatfs throughput.")
    return ["## Kubo level", "", intro, "",
            *table(["operation", "flatfs", "walrusds", "ratio"], rows)]


def scale_section(r: dict[str, Any]) -> list[str]:
    s = r["scale"]
    points = [s[k] for k in ("small", "medium", "large") if k in s]
    rows = []
    for p in points:
        rows.append([n(p["keys"]), f"{p['has_c32']['p50_ms']:.2f}",
                     f"{p['has_c32']['p99_ms']:.2f}", n(p["has_c32"]["calls_per_s"]),
                     n(p["query"]["go"]["keys"]), f"{p['query']['go']['seconds']:.2f}",
                     n(p["query"]["go"]["keys_per_s"]), mib(p["query"]["go"]["service_peak_rss"])])
    a, b = points[0], points[-1]
    grow = b["keys"] / a["keys"]
    lookup_ratio = b["has_c32"]["p99_ms"] / a["has_c32"]["p99_ms"]
    scan_ratio = b["query"]["go"]["seconds"] / a["query"]["go"]["seconds"]
    head = ["indexed keys", "Has p50 ms", "Has p99 ms", "Has/s", "keys scanned", "Query s",
            "Query keys/s", "service peak RSS"]
    summary = (
        f"From {n(a['keys'])} to {n(b['keys'])} keys ({grow:.0f}× the rows): Has p99 × "
        f"{lookup_ratio:.2f} (a B-tree's depth grows by log(n): "
        f"log {n(b['keys'])} / log {n(a['keys'])} = "
        f"{math.log(b['keys']) / math.log(a['keys']):.2f}), Query time × {scan_ratio:.1f} for "
        f"{b['query']['go']['keys'] / a['query']['go']['keys']:.0f}× the keys (linear).")
    return ["## Scale", "",
            "Has through the shim with 32 callers, and a keys-only Query of every generated "
            "key, as the table grows (rows generated in PostgreSQL).", "",
            *table(head, rows), summary, ""]


def packing_section(r: dict[str, Any], old: str) -> list[str]:
    p = r.get("packing")
    if not p:
        start = old.find(PACKING_HEADING)
        if start < 0:
            return []
        end = old.find("\n## ", start + 1)
        return [old[start:end if end >= 0 else len(old)].rstrip(), ""]
    head = ["packs", "entries", "entries per pack", "average fill",
            "encoded bytes per live byte", "ingest MiB/s"]
    row = [str(p["packs"]), str(p["entries"]), f"**{p['entries_per_pack']:.1f}**",
           f"**{p['avg_fill_pct']:.1f}%**", f"{p['encoded_per_live_byte']:.2f}",
           f"{p['ingest_mib_per_second']}"]
    return [PACKING_HEADING + " (issue: Walrus storage)", "",
            "Goal: with 256 KiB values and the default 64 MiB target, at least 250 entries per "
            "pack and packs filled to at least 95% of the target, as the documented "
            "`pack_ratio` view shows. Its own stack, in the same run:", "",
            "```", ".venv/bin/python -m bench.ingest_packing --values "
            f"{r['config']['packing_values']} --value-size 262144", "```", "",
            *table(head, [row])]


def write(r: dict[str, Any], path: Path) -> None:
    old = path.read_text() if path.exists() else ""
    lines = ["# Benchmark results", "",
             "Every figure below comes from ONE run of the command shown, on the machine shown; "
             "ratios taken side by side are the figures to compare. Raw numbers: "
             f"`bench/results/{r['size']}.json`. Regenerate with `make bench` (or "
             "`make bench-quick`).", ""]
    lines += machine_section(r)
    lines += ["## Targets (issue 6)", "", *table(["target", "goal", "measured", ""], targets(r))]
    lines += kubo_section(r) + service_sections(r) + ceilings_section(r) + scale_section(r)
    lines += packing_section(r, old)
    analysis = HERE / "analysis.md"
    if analysis.exists():
        lines += [analysis.read_text().rstrip(), ""]
    lines += kept_sections(old)
    path.write_text("\n".join(lines).rstrip() + "\n")


def kept_sections(old: str) -> list[str]:
    """The hand-written tail of the previous RESULTS.md, from :data:`KEEP_MARKER` on."""
    start = old.find(KEEP_MARKER)
    return [] if start < 0 else [old[start:].rstrip(), ""]
