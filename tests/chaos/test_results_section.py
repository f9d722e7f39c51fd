"""The crash and fault figures in bench/RESULTS.md survive `make bench` rewriting the file."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.stack import REPO

HEADING = "## Crash and fault figures (issue 7)"


def test_the_figures_section_sits_after_the_keep_marker() -> None:
    text = (REPO / "bench" / "RESULTS.md").read_text()
    assert report.KEEP_MARKER in text
    assert text.index(report.KEEP_MARKER) < text.index(HEADING)
    kept = "\n".join(report.kept_sections(text))
    for figure in ("Time to SERVING after SIGKILL", "Failed RPCs per Postgres restart",
                   "Verification CPU per GiB", "python -m bench.verify_cpu"):
        assert figure in kept, figure


def test_a_rewrite_keeps_the_hand_written_tail(tmp_path: Path) -> None:
    results = REPO / "bench" / "results" / "quick.json"
    out = tmp_path / "RESULTS.md"
    out.write_text((REPO / "bench" / "RESULTS.md").read_text())
    report.write(json.loads(results.read_text()), out)
    text = out.read_text()
    assert text.count(HEADING) == 1
    assert text.rstrip().endswith(
        (REPO / "bench" / "RESULTS.md").read_text().rstrip().rsplit("\n", 1)[-1])
    report.write(json.loads(results.read_text()), out)  # and again: nothing doubles
    assert out.read_text().count(report.KEEP_MARKER) == 1
