"""The command line, end to end: `walrusds up` as a real process, `walrusds ds` against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from walrusds.localpg import LocalCluster

WALRUSDS = [sys.executable, "-m", "walrusds"]


def cli(*args: str, stdin: bytes | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*WALRUSDS, *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)


class UpProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / "up.log"
        # Flush packs half a second after writes go idle, so the test sees the whole path.
        env = {**os.environ, "WALRUSDS_PACK_IDLE": "0.5", "WALRUSDS_PACK_INTERVAL": "0.2"}
        self.proc = subprocess.Popen([*WALRUSDS, "up", "--data-dir", str(data_dir)], env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.info = self._wait_ready()

    def _wait_ready(self) -> dict[str, str]:
        up = self.data_dir / "up.json"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"walrusds up exited: {self.log.read_text()}")
            if up.exists():
                try:
                    info: dict[str, str] = json.loads(up.read_text())
                    return info
                except json.JSONDecodeError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"walrusds up did not become ready: {self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wait_packed(dsn: str, entries: int) -> dict[str, Any]:
    """``walrusds stats --json`` once nothing is staged and ``entries`` entries are packed."""
    deadline = time.monotonic() + 60
    while True:
        out = cli("stats", "--dsn", dsn, "--json")
        assert out.returncode == 0, out.stderr
        stats: dict[str, Any] = json.loads(out.stdout)
        if (stats["staged"]["entries"] == 0
                and stats["pack_ratio"]["entries"] - entries >= 0):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)


@pytest.fixture
def data_dir(_pg_reachable: None, tmp_path: Path) -> Iterator[Path]:
    os.chmod(tmp_path, 0o711)  # the unprivileged PostgreSQL user must traverse it as root
    d = tmp_path / "up"
    yield d
    cluster = LocalCluster(d / "pg")
    if (d / "pg" / "postmaster.pid").exists():
        cluster.stop("immediate")


def test_help_lists_every_command() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for command in ("serve", "up", "migrate", "ds", "stats", "emulator"):
        assert command in out.stdout.decode()


def test_up_then_ds_then_stop_and_restart(data_dir: Path) -> None:
    up = UpProcess(data_dir)
    try:
        addr = up.info["grpc"]
        assert addr.startswith("unix:")
        assert os.stat(addr[len("unix:"):]).st_mode & 0o777 == 0o600
        assert os.stat(data_dir / "up.json").st_mode & 0o777 == 0o600
        assert cli("ds", "--addr", addr, "put", "/hello", "-", stdin=b"hello walrus\n"
                   ).returncode == 0
        got = cli("ds", "--addr", addr, "get", "/hello")
        assert (got.returncode, got.stdout) == (0, b"hello walrus\n")
        assert cli("ds", "--addr", addr, "has", "/hello").stdout == b"true\n"
        missing = cli("ds", "--addr", addr, "has", "/nope")
        assert (missing.returncode, missing.stdout) == (1, b"false\n")
        assert cli("ds", "--addr", addr, "size", "/hello").stdout == b"13\n"
        for key in ("/dir/a", "/dir/b", "/dirx"):
            assert cli("ds", "--addr", addr, "put", key, "-", stdin=b"x").returncode == 0
        ls = cli("ds", "--addr", addr, "ls", "/dir", "--sizes")
        assert ls.stdout == b"/dir/a\t1\n/dir/b\t1\n"
        assert cli("ds", "--addr", addr, "ls").stdout.splitlines() == [
            b"/dir/a", b"/dir/b", b"/dirx", b"/hello"]
        # `walrusds ds ls | head`: the reader goes away; no traceback
        reader_gone = subprocess.Popen([*WALRUSDS, "ds", "--addr", addr, "ls"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader_gone.stdout is not None
        reader_gone.stdout.close()
        _, stderr = reader_gone.communicate(timeout=60)
        assert b"Traceback" not in stderr
        assert reader_gone.returncode in (0, 141)
        assert cli("ds", "--addr", addr, "rm", "/dirx").returncode == 0
        assert cli("ds", "--addr", addr, "rm", "/dirx").returncode == 0
        gone = cli("ds", "--addr", addr, "get", "/dirx")
        assert gone.returncode == 1
        assert b"not found" in gone.stderr
        bad = cli("ds", "--addr", addr, "put", "nokey", "-", stdin=b"x")
        assert bad.returncode == 1
        assert b"INVALID_ARGUMENT" in bad.stderr
        assert b"start with '/'" in bad.stderr
        assert b"Traceback" not in bad.stderr
        assert up.info["emulator"].startswith("http://127.0.0.1:")
        stats = wait_packed(up.info["postgres_dsn"], entries=3)
        assert stats["pack_ratio"]["packs"] >= 1
        assert stats["walrus"]["current_epoch"] >= 1
        text = cli("stats", "--dsn", up.info["postgres_dsn"]).stdout.decode()
        assert "entries per pack" in text
        assert "staged in Postgres" in text
        got = cli("ds", "--addr", addr, "get", "/hello")  # now a ranged read from Walrus
        assert (got.returncode, got.stdout) == (0, b"hello walrus\n")
    finally:
        assert up.stop() == 0
    assert not (data_dir / "up.json").exists()
    assert not LocalCluster(data_dir / "pg").running()

    again = UpProcess(data_dir)
    try:
        got = cli("ds", "--addr", again.info["grpc"], "get", "/hello")
        assert got.stdout == b"hello walrus\n"
    finally:
        assert again.stop() == 0


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    out = cli("serve", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 1
    assert out.stderr.decode().strip() == (
        f"walrusds serve: config file {tmp_path / 'missing.toml'} does not exist")
    unreachable = cli("ds", "--addr", "127.0.0.1:1", "--timeout", "2", "get", "/x")
    assert unreachable.returncode == 1
    assert b"UNAVAILABLE" in unreachable.stderr
    assert b"Traceback" not in unreachable.stderr


def test_serve_from_environment_and_sigterm(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    env = {**os.environ, "WALRUSDS_POSTGRES_DSN": pg_dsn, "WALRUSDS_POSTGRES_SCHEMA": schema,
           "WALRUSDS_LISTEN": f"unix:{sock}", "WALRUSDS_DATASET": "envtest"}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([*WALRUSDS, "serve"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        addr = f"unix:{sock}"
        assert cli("ds", "--addr", addr, "put", "/k", "-", stdin=b"v").returncode == 0
        assert cli("ds", "--addr", addr, "get", "/k").stdout == b"v"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "serving dataset 'envtest'" in log.read_text()
