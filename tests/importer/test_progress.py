"""Progress display: a redrawn status line when stderr is a terminal (a real pseudo-terminal
here), periodic log lines otherwise."""

from __future__ import annotations

import os
import pty
import subprocess
import threading

from tests.importer.support import flatfs_keys, run_import
from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS


def test_status_line_on_a_terminal_log_lines_otherwise(kubo_repo: Kubo, service: str) -> None:
    total = len(flatfs_keys(kubo_repo.repo))
    shown = dry_run_on_a_terminal(kubo_repo, service)
    assert f"\rverified {total}/{total} blocks (100.0%)" in shown, shown
    assert "\x1b[K" in shown and "blocks/s" in shown and "MiB/s" in shown
    assert "INFO" not in shown  # a terminal gets the status line, not log lines
    assert "would send" in shown

    result = run_import(kubo_repo.repo, service, "--no-switch", "--progress-interval", "0")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "INFO walrusds.import:" in line]
    assert len(lines) > 2, result.stderr
    assert f"imported {total}/{total} blocks (100.0%), " in lines[-1]
    assert lines[-1].endswith("blocks/s")
    assert "\r" not in result.stderr
    quiet = run_import(kubo_repo.repo, service, "--no-switch", "--quiet", "--restart")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def dry_run_on_a_terminal(kubo_repo: Kubo, service: str) -> str:
    """A dry run with stdout and stderr on a pseudo-terminal; everything it showed."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*WALRUSDS, "import", "--from-flatfs", str(kubo_repo.repo), "--addr", service,
         "--dry-run"], stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    assert proc.wait(timeout=120) == 0, seen.decode(errors="replace")
    reader.join(timeout=30)
    os.close(controller)
    return seen.decode(errors="replace")
