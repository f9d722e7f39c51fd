"""The Go shim's own tests (``go test ./...`` in shim/) against a live walrusds service.

They include go-datastore's ``dstest.SubtestAll`` (Combinations included) and the ``RunBatch*``
tests, run against the real service on the suite's PostgreSQL, plus the shim's unit tests
(query pushdown, lookup coalescing, the Kubo config parser and its DiskSpec, the init profile).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kubo.support import SHIM, go_binary, go_env, serve


# Longer than the suite's default: without `make shim` first, go test also compiles Kubo.
@pytest.mark.timeout(1800)
def test_go_shim_suite_against_live_service(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    service, addr = serve(tmp_path, "walrusds", dsn=pg_dsn, schema=schema)
    try:
        result = subprocess.run(
            [go_binary(), "test", "-count=1", "-timeout=20m", "./..."],
            cwd=SHIM, env=go_env(WALRUSDS_TEST_ADDR=addr), capture_output=True, text=True,
            timeout=1500, check=False)
    finally:
        assert service.stop() == 0, service.log.read_text()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for package in ("shim/walrusds", "shim/plugin"):
        assert f"ok  \tgithub.com/walrusds/walrusds/{package}" in output, output
