"""The benchmark harness end to end on its tiny configuration, so it cannot rot.

Runs ``python -m bench.run --size tiny`` for real (private PostgreSQL, emulator, service, the Go
client and the Python client), then renders the report from the JSON it wrote and checks that
every section and figure the full run reports is there and sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.stack import REPO


@pytest.mark.timeout(180)
def test_tiny_bench_run_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.run", "--size", "tiny", "--out",
                           str(tmp_path), "--no-report"], cwd=REPO, capture_output=True,
                          text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "tiny.json").read_text())

    assert results["machine"]["cores"] >= 1
    for key, figure in results["lookup"].items():
        assert figure["calls"] > 0, key
        assert 0 < figure["p50_ms"] <= figure["p99_ms"], key
    assert results["query"]["go"]["keys"] == results["config"]["lookup_keys"]
    assert results["query"]["py"]["keys"] == results["config"]["lookup_keys"]
    assert results["scale"]["small"]["query"]["go"]["keys"] == results["config"]["scale_small"]
    for kind in ("staged", "packed_cold", "packed_warm"):
        for client in ("go", "py"):
            got = results["get"][f"{client}_{kind}"]
            assert got["bytes"] == results["config"]["get_values"] * 256 * 1024, (client, kind)
    assert results["get"]["packs"]["packs"] >= 1
    assert results["get"]["packs"]["entries"] >= results["config"]["get_values"]
    for size in results["config"]["value_sizes"]:
        assert results["ingest"][f"go_{size}"]["mb_per_s"] > 0
        assert results["ingest"][f"ceiling_{size}"]["mb_per_s"] > 0

    out = tmp_path / "RESULTS.md"
    out.write_text((REPO / "bench" / "RESULTS.md").read_text())
    report.write(results, out)
    text = out.read_text()
    for heading in ("## Targets (issue 6)", "## Service level", "### Has and GetSize",
                    "## Ceilings (same run)", "## Scale", "## Pack ratio under steady ingest"):
        assert heading in text, heading
