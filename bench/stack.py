"""The processes one benchmark run measures: a private PostgreSQL cluster, the Walrus emulator
and the walrusds service, each its own process so the harness (a client) never shares their
CPU time or GIL, and the service's memory can be read from /proc. Everything is stopped by its
PID or handle when the run ends, whatever happened."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from walrusds.localpg import LocalCluster, cluster_os_user
from walrusds.rpc import open_channel, stub
from walrusds.v1 import datastore_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
WALRUSDS = [sys.executable, "-m", "walrusds"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    """A child process with its log in a file; ``stop`` signals its PID and waits."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(argv, env=env, stdout=log.open("ab"),
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def peak_rss(self) -> int:
        """Peak resident set (VmHWM) in bytes since the start or the last ``reset_peak``."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def reset_peak(self) -> None:
        """Start a new peak-RSS window (Linux ``clear_refs`` 5); a no-op where refused."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")


def wait_for(check: object, what: str, proc: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"{what} exited: {proc.log.read_text(errors='replace')[-2000:]}")
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, grpc.RpcError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {proc.log.read_text(errors='replace')}")
        time.sleep(0.1)


@dataclass
class Stack:
    """The running stack of one benchmark run."""

    tmp: Path
    cluster: LocalCluster
    emulator: Process
    emulator_url: str
    service: Process | None = None
    address: str = ""
    processes: list[Process] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return self.cluster.dsn()

    def start_service(self, **settings: str) -> None:
        """``walrusds serve`` on a unix socket; settings are more ``WALRUSDS_*`` variables."""
        self.stop_service()
        self.address = f"unix:{self.tmp / 'walrusds.sock'}"
        env = {**os.environ, "WALRUSDS_POSTGRES_DSN": self.dsn, "WALRUSDS_LISTEN": self.address,
               "WALRUSDS_WALRUS_PUBLISHERS": self.emulator_url,
               "WALRUSDS_WALRUS_AGGREGATORS": self.emulator_url,
               "WALRUSDS_METRICS_LISTEN": "", "WALRUSDS_RENEW_ENABLED": "false",
               "WALRUSDS_POSTGRES_POOL_MAX": "16"}
        env.update({f"WALRUSDS_{k.upper()}": v for k, v in settings.items()})
        self.service = Process([*WALRUSDS, "serve"], self.tmp / "service.log", env)

        def answers() -> bool:
            with open_channel(self.address) as channel:
                stub(channel).Info(pb.InfoRequest(), timeout=2.0)
            return True
        wait_for(answers, "walrusds serve", self.service)

    def stop_service(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@contextlib.contextmanager
def running_stack(keep: Path | None = None) -> Iterator[Stack]:
    """Start PostgreSQL and the emulator (the service is started by the caller)."""
    with tempfile.TemporaryDirectory(prefix="walrusds-bench-", dir=keep) as name:
        tmp = Path(name)
        if cluster_os_user() is not None:
            os.chmod(tmp, 0o711)
        cluster = LocalCluster(tmp / "pg")
        cluster.ensure_created()
        cluster.start()
        stack: Stack | None = None
        try:
            port = free_port()
            emulator = Process([*WALRUSDS, "emulator", "--listen", f"127.0.0.1:{port}",
                                "--max-body-size", str(256 * 2**20)], tmp / "emulator.log")
            url = f"http://127.0.0.1:{port}"

            def listening() -> bool:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            stack = Stack(tmp, cluster, emulator, url)
            wait_for(listening, "walrusds emulator", emulator)
            yield stack
        finally:
            if stack is not None:
                stack.stop_service()
                for p in stack.processes:
                    p.stop()
                stack.emulator.stop()
            cluster.stop()
