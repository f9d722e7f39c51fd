"""``walrusds emulator`` as a real process: starts, prints its URL, answers, stops on a signal."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from walrusds.cli.cmd_emulator import parse_listen
from walrusds.cli.main import main
from walrusds.emulator.runner import is_loopback

WALRUSDS = [sys.executable, "-m", "walrusds"]


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [*WALRUSDS, "emulator", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
         "--max-body-size", "100", "--start-epoch", "7", "--connection-bandwidth", "1GB/s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+) ", line)
        assert match, f"unexpected first line {line!r}"
        yield proc, match[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_cli_serves_and_stops_on_sigterm(
        emulator_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = emulator_process
    assert proc.stdout is not None
    assert "distant network: 0 ms, 1 GB/s per connection" in proc.stdout.readline()
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/status").text == "OK"
        assert client.put("/v1/blobs", content=b"x" * 101).status_code == 413
        created = client.put("/v1/blobs", content=b"x" * 100).json()["newlyCreated"]
        assert created["blobObject"]["registeredEpoch"] == 7
        assert client.get("/_emulator/epoch").json() == {"epoch": 7}
        assert client.get("/_emulator/network").json() == {
            "latency": 0.0, "bandwidth": None, "connection_bandwidth": 1e9}
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped" in out


def test_cli_stops_on_sigint(emulator_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = emulator_process
    assert httpx.get(url + "/status", timeout=10).status_code == 200
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_cli_refuses_a_public_address_without_public() -> None:
    done = subprocess.run([*WALRUSDS, "emulator", "--listen", "0.0.0.0:0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "--public" in done.stderr and "no authentication" in done.stderr


@pytest.mark.parametrize("listen", ["nope", "127.0.0.1:http", "127.0.0.1:70000", ":80"])
def test_cli_refuses_a_malformed_listen_address(listen: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--listen", listen]) == 1
    assert "HOST:PORT" in capsys.readouterr().err


def test_cli_reports_a_bad_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--listen", "127.0.0.1:0", "--max-body-size", "0"]) == 1
    assert "max_body_size must be positive" in capsys.readouterr().err


def test_listen_parsing_and_loopback_rule() -> None:
    assert parse_listen("127.0.0.1:31415") == ("127.0.0.1", 31415)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:8080") == ("localhost", 8080)
    for host in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "10.0.0.1", "::", "example.org", ""):
        assert not is_loopback(host), host
